"""``stabbench report``: one self-contained static HTML page from results.

The page holds the leaderboard (a sortable table: set and protocol shown), per eval result
its headline and diagnostics, the stability-against-severity plot (a base64 PNG), the
perturbation x severity table, the worst sequences and the clips and heatmaps of its
``visuals/visuals.json``, and the real-video comparisons with their intervals. CSS and the
few lines of JavaScript (table sorting; a check that every image decoded) are inline; a
Content-Security-Policy forbids every request (images are ``data:`` URIs), so the page
needs no network when viewed. Every string from an input is escaped. The same inputs give
the same bytes: no date, inputs in the order given, the stabbench version and every
input's sha256 in the page.
"""

from __future__ import annotations

import base64
import hashlib
import math
from html import escape
from pathlib import Path

from stabbench.errors import DataError, OutputConflictError
from stabbench.fileio import atomic_write_text
from stabbench.report.plot import render_stability_vs_severity, short_model_name
from stabbench.report.sources import EvalInput, ReportInputs, ResultInput, VideoInput, VisualItem

PAGE_NAME = "index.html"
#: Columns of the real-video comparison table shown first, in this order (others follow, sorted).
VIDEO_COLUMNS = ("model", "video", "reference", "S_global", "S_boundary", "coverage", "difference", "diff",
                 "ci_low", "ci_high", "verdict")

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:2em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0 1em}th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left}
td{overflow-wrap:anywhere}td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f2f2f2}
table.sortable th{cursor:pointer}table.sortable th[aria-sort=ascending]::after{content:" \\25B2"}
table.sortable th[aria-sort=descending]::after{content:" \\25BC"}
.note{color:#666;font-style:italic}.gallery{display:flex;flex-wrap:wrap;gap:1em}
figure{margin:0;border:1px solid #ddd;padding:.5em}figcaption{font-size:.85em}
figure img{width:320px;height:auto;display:block}img.plot{max-width:100%}code{font-size:.9em}
svg.ci{vertical-align:middle}
""".strip()

JS = """
function cellKey(row, col) {
  var cell = row.cells[col], v = cell.getAttribute("data-sort");
  if (v === null) { v = cell.textContent.trim(); }
  if (v === "") { return null; }
  var n = Number(v);
  return isNaN(n) ? v.toLowerCase() : n;
}
function sortBy(th) {
  var table = th.closest("table"), col = th.cellIndex, body = table.tBodies[0];
  var asc = th.getAttribute("aria-sort") !== "ascending";
  var rows = Array.prototype.slice.call(body.rows);
  rows.sort(function (a, b) {
    var x = cellKey(a, col), y = cellKey(b, col);
    if (x === null || y === null) { return (x === null) - (y === null); }
    var c = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
    return asc ? c : -c;
  });
  rows.forEach(function (r) { body.appendChild(r); });
  table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
  th.setAttribute("aria-sort", asc ? "ascending" : "descending");
}
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () { sortBy(th); });
});
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (im) { return !(im.complete && im.naturalWidth > 0); });
  document.body.setAttribute("data-images", broken.length ? "broken " + broken.length : "ok " + images.length);
});
""".strip()


# ----------------------------------------------------------------------------- cells


def text(value) -> str:
    """Any input string, escaped for HTML text and attributes."""
    return escape("" if value is None else str(value), quote=True)


def number(value):
    """``value`` as a finite float, else ``None`` (missing, NaN, not a number)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def num_cell(value, digits: int = 2) -> str:
    """A right-aligned numeric cell; ``n/a`` (sorted last) when missing."""
    v = number(value)
    if v is None:
        return '<td class="num" data-sort="">n/a</td>'
    return f'<td class="num" data-sort="{v!r}">{v:.{digits}f}</td>'


def cell(value, title: str | None = None) -> str:
    attr = f' title="{text(title)}"' if title else ""
    return f"<td{attr}>{text(value)}</td>"


def table(headers: list[str], rows: list[str], sortable: bool = False, cls: str = "") -> str:
    classes = " ".join(c for c in ("sortable" if sortable else "", cls) if c)
    attr = f' class="{classes}"' if classes else ""
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"


def note(message: str) -> str:
    return f'<p class="note">{text(message)}</p>'


# ----------------------------------------------------------------------------- leaderboard


LEADERBOARD_HEADERS = ["model", "set", "protocol", "dataset", "sequences", "S_global", "S_boundary", "mIoU_syn",
                       "S_boundary without GT rule", "definitions", "from"]


def eval_row(entry: EvalInput) -> dict:
    """An eval result as a leaderboard row (the leaderboard CSV's columns, no date)."""
    r = entry.results
    model, dset, m = r["model"], r["set"], r["metrics"]
    return {
        "model": model.get("name") or model.get("id", ""), "set": Path(str(dset.get("path", ""))).name,
        "set_sha256": dset.get("sha256", ""), "protocol": dset.get("protocol", ""),
        "protocol_version": dset.get("protocol_version", ""), "dataset": dset.get("dataset", ""),
        "sequences": m.get("sequences"), "S_global": m.get("S_global"), "S_boundary": m.get("S_boundary"),
        "mIoU_syn": m.get("mIoU_syn"), "S_boundary_no_gt_rule": m.get("S_boundary_no_gt_rule"),
        "definitions": r["settings"].get("definitions", ""),
    }


def leaderboard_html(rows: list[tuple[str, dict]]) -> str:
    """The sortable leaderboard, first sorted by S_boundary (highest first, missing last), then model."""
    def order(item):
        v = number(item[1].get("S_boundary"))
        return (v is None, -(v or 0.0), str(item[1].get("model", "")), item[0])

    body = [_leaderboard_tr(source, row) for source, row in sorted(rows, key=order)]
    return table(LEADERBOARD_HEADERS, body, sortable=True, cls="leaderboard")


def protocol_text(protocol, version) -> str:
    """``paper v1`` from a protocol name and version (``"v1"``, ``1`` or ``"real-video/1"``)."""
    version, protocol = ("" if version in (None, "") else str(version)), str(protocol or "")
    if version.isdigit():
        version = f"v{version}"
    if protocol and version.startswith(f"{protocol}/"):  # real-video/1: the name is in the version
        return version
    return f"{protocol} {version}".strip()


def _leaderboard_tr(source: str, row: dict) -> str:
    name = str(row.get("model", ""))
    set_text = f"{row.get('set', '')} {str(row.get('set_sha256', ''))[:8]}".strip()
    protocol = protocol_text(row.get("protocol"), row.get("protocol_version"))
    cells = [
        cell(short_model_name(name), title=name), cell(set_text, title=row.get("set_sha256")), cell(protocol),
        cell(row.get("dataset")), num_cell(row.get("sequences"), 0), num_cell(row.get("S_global")),
        num_cell(row.get("S_boundary")), num_cell(row.get("mIoU_syn")), num_cell(row.get("S_boundary_no_gt_rule")),
        cell(row.get("definitions")), cell(source),
    ]
    return "<tr>" + "".join(cells) + "</tr>"


# ----------------------------------------------------------------------------- one eval result


def eval_section(index: int, entry: EvalInput, worst: int) -> str:
    r = entry.results
    name = r["model"].get("name") or r["model"].get("id", "")
    parts = [f'<section id="result-{index}"><h2>{text(short_model_name(name))} on '
             f'{text(Path(str(r["set"].get("path", ""))).name)}</h2>',
             f"<p>model <code>{text(name)}</code>, set sha256 <code>{text(r['set'].get('sha256'))}</code>, "
             f"protocol {text(protocol_text(r['set'].get('protocol'), r['set'].get('protocol_version')))}, band width "
             f"{text(r['settings'].get('boundary_width'))}, definitions {text(r['settings'].get('definitions'))}</p>",
             headline_html(r["metrics"]), "<h3>Stability against severity</h3>",
             plot_html(r.get("per_perturbation_severity") or [], name), cells_html(r.get("per_perturbation_severity") or []),
             *([f"<h3>The {worst} least stable sequences (S_boundary)</h3>",
                worst_html(r.get("per_sequence") or [], worst, {item.sequence for item in entry.visuals})]
               if worst else []),
             "<h3>Clips and heatmaps</h3>", visuals_html(entry), "</section>"]
    return "\n".join(parts)


def headline_html(m: dict) -> str:
    fraction = number(m.get("gt_rule_removed_fraction"))
    rows = [
        "<tr>" + num_cell(m.get("S_global")) + num_cell(m.get("S_boundary")) + num_cell(m.get("mIoU_syn"))
        + num_cell(m.get("S_boundary_no_gt_rule")) + num_cell(None if fraction is None else 100 * fraction)
        + num_cell(m.get("sequences"), 0) + num_cell(m.get("boundary_sequences"), 0) + "</tr>"
    ]
    headers = ["S_global", "S_boundary", "mIoU(syn)", "S_boundary without GT rule", "band pixels the GT rule removed (%)",
               "sequences", "sequences counted for S_boundary"]
    return table(headers, rows)


def plot_html(rows: list[dict], name: str) -> str:
    png = render_stability_vs_severity(rows, name) if rows else None
    if png is None:
        return note("no plot (no per-severity rows, or matplotlib is not installed: pip install 'stabbench[plot]')")
    uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return f'<img class="plot" alt="S_global and S_boundary against severity" src="{uri}">'


def cells_html(rows: list[dict]) -> str:
    headers = ["perturbation", "severity", "S_global", "S_boundary", "mIoU(syn)", "sequences", "boundary sequences",
               "pairs", "boundary pairs"]
    body = ["<tr>" + cell(r.get("perturbation")) + num_cell(r.get("severity"), 0) + num_cell(r.get("S_global"))
            + num_cell(r.get("S_boundary")) + num_cell(r.get("mIoU_syn")) + num_cell(r.get("sequences"), 0)
            + num_cell(r.get("boundary_sequences"), 0) + num_cell(r.get("pairs"), 0)
            + num_cell(r.get("boundary_pairs"), 0) + "</tr>" for r in rows]
    return table(headers, body, sortable=True)


def worst_html(rows: list[dict], worst: int, with_visuals: set[str]) -> str:
    def order(r):
        v = number(r.get("S_boundary"))
        return (v is None, v or 0.0, str(r.get("sequence", "")))

    chosen = sorted(rows, key=order)[:worst]
    if not chosen:
        return note("no per-sequence rows in this result")
    body = ["<tr>" + cell(r.get("sequence")) + cell(r.get("perturbation")) + num_cell(r.get("severity"), 0)
            + num_cell(r.get("S_global")) + num_cell(r.get("S_boundary")) + num_cell(r.get("mIoU"))
            + cell("yes" if str(r.get("sequence")) in with_visuals else "") + "</tr>" for r in chosen]
    return table(["sequence", "perturbation", "severity", "S_global", "S_boundary", "mIoU", "clip below"], body,
                 sortable=True)


def visuals_html(entry: ResultInput) -> str:
    if not entry.visuals:
        return note(entry.visuals_note or "the visuals file lists no item")
    return '<div class="gallery">' + "\n".join(_figure(item) for item in entry.visuals) + "</div>"


def _figure(item: VisualItem) -> str:
    where = f"{item.perturbation} severity {item.severity}" if item.model is None else item.model
    caption = f"{item.sequence}: {where}, S_global {_fmt(item.S_global)}, S_boundary {_fmt(item.S_boundary)}"
    images = []
    for uri, alt in ((item.clip_gif, "clip"), (item.heatmap, "flicker heatmap"),
                     (item.compare_gif, f"clip of {item.compare_model}")):
        if uri is not None:
            images.append(f'<img alt="{text(alt)} of {text(item.sequence)}" src="{uri}">')
    extra = note(item.note) if item.note else ""
    return f"<figure>{''.join(images)}<figcaption>{text(caption)}</figcaption>{extra}</figure>"


def _fmt(value) -> str:
    v = number(value)
    return "n/a" if v is None else f"{v:.2f}"


# ----------------------------------------------------------------------------- real video


REAL_VIDEO_METRICS = ("S_global", "S_boundary")


def video_rows(entry: VideoInput) -> list[dict]:
    """The leaderboard rows of a real-video result (``stabbench video``): one per model, overall."""
    r, rows = entry.results, []
    dset = r.get("set") if isinstance(r.get("set"), dict) else {}
    for row in r.get("overall") or []:
        rows.append({"model": row.get("model"), "set": "real video", "set_sha256": dset.get("sha256", ""),
                     "protocol": dset.get("protocol", "real-video"), "protocol_version": dset.get("protocol_version"),
                     "dataset": dset.get("dataset", "real-video"), "sequences": row.get("videos"),
                     "S_global": row.get("S_global"), "S_boundary": row.get("S_boundary"),
                     "definitions": (r.get("settings") or {}).get("definitions", "")})
    return rows


def video_section(entry: VideoInput) -> str:
    """A real-video result: its ``overall`` and ``per_video`` rows (``stabbench video``), each model's
    S, coverage and paired difference to the reference with its 95 % interval and verdict; a
    result of another shape is rendered from a ``comparisons`` list, or skipped with a note."""
    r = entry.results
    if isinstance(r.get("overall"), list) and isinstance(r.get("per_video"), list):
        reference = (r.get("reference") or {}).get("name", "")
        return "\n".join([
            f"<h2>Real video: {text(entry.label)}</h2>",
            f"<p>reference <code>{text(reference)}</code>; differences are model - reference in points, "
            "with their 95 % bootstrap interval; a verdict only where it excludes 0.</p>",
            "<h3>Over all videos</h3>", paired_table(r["overall"], ["model"], "videos"),
            "<h3>Per video</h3>", paired_table(r["per_video"], ["video", "model"], "pairs"),
            "<h3>Clips</h3>", visuals_html(entry),
        ])
    return generic_video_section(entry)


def paired_table(rows: list[dict], keys: list[str], count: str) -> str:
    headers = [*keys]
    for metric in REAL_VIDEO_METRICS:
        headers += [metric, f"d{metric}", "95 % interval", "", "verdict"]
    headers += ["coverage (%)", count]
    body = []
    for row in rows:
        cells = [cell(row.get(k)) for k in keys]
        for metric in REAL_VIDEO_METRICS:
            lo, hi = row.get(f"d{metric}_lo"), row.get(f"d{metric}_hi")
            interval = "n/a" if number(lo) is None or number(hi) is None else f"[{number(lo):.2f}, {number(hi):.2f}]"
            cells += [num_cell(row.get(metric)), num_cell(row.get(f"d{metric}")), cell(interval),
                      f"<td>{interval_svg(lo, hi)}</td>", cell(row.get(f"{metric}_verdict"))]
        cells += [num_cell(row.get("coverage_pct")), num_cell(row.get(count), 0)]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return table(headers, body, sortable=True, cls="video")


def generic_video_section(entry: VideoInput) -> str:
    r = entry.results
    title = f"<h2>Real video: {text(entry.label)}</h2>"
    comparisons = r.get("comparisons")
    if not isinstance(comparisons, list) or not comparisons or not all(isinstance(c, dict) for c in comparisons):
        return title + note("this real-video result has neither overall/per_video rows nor a comparisons list: skipped")
    rows = [_flatten(c) for c in comparisons]
    columns = [c for c in VIDEO_COLUMNS if any(c in row for row in rows)]
    columns += sorted({k for row in rows for k in row} - set(columns))
    with_interval = "ci_low" in columns and "ci_high" in columns
    body = []
    for row in rows:
        cells = [_video_cell(row, c) for c in columns]
        if with_interval:
            cells.append(f"<td>{interval_svg(row.get('ci_low'), row.get('ci_high'))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    headers = columns + (["interval (0 at the centre line)"] if with_interval else [])
    return title + "\n" + table(headers, body, sortable=True, cls="video")


def _flatten(record: dict, prefix: str = "") -> dict:
    """Nested objects one level deep as ``outer.inner`` keys; lists shown as text."""
    out = {}
    for key, value in record.items():
        if isinstance(value, dict) and not prefix:
            out.update(_flatten(value, f"{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _video_cell(row: dict, column: str) -> str:
    value = row.get(column)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return num_cell(value, 3 if column in ("coverage",) else 2)
    return cell("" if value is None else value)


def interval_svg(low, high, span: float = 5.0) -> str:
    """A small inline SVG of the interval ``[low, high]`` against 0 (clipped to +-span points)."""
    lo, hi = number(low), number(high)
    if lo is None or hi is None:
        return ""
    def x(v):
        return 5 + 110 * (min(max(v, -span), span) + span) / (2 * span)

    colour = "#2a7" if lo > 0 else "#c33" if hi < 0 else "#888"
    return (f'<svg class="ci" width="120" height="14" role="img" aria-label="[{lo:.2f}, {hi:.2f}]">'
            f'<line x1="60" y1="0" x2="60" y2="14" stroke="#999"/>'
            f'<line x1="{x(lo):.1f}" y1="7" x2="{x(hi):.1f}" y2="7" stroke="{colour}" stroke-width="3"/></svg>')


# ----------------------------------------------------------------------------- the page


#: What makes two leaderboard rows the same result (the model on the set under the protocol, same numbers).
ROW_IDENTITY = ("model", "set_sha256", "protocol_version", "S_global", "S_boundary")


def unseen_rows(rows: list[tuple[str, dict]], shown: list[dict]) -> list[tuple[str, dict]]:
    """Leaderboard rows that repeat no result already shown (a result given as a folder and
    its own row in ``--leaderboard`` appear once, from the folder)."""
    def identity(row: dict) -> tuple:
        return tuple(str(row.get(k, "")) for k in ROW_IDENTITY)

    seen = {identity(row) for row in shown if isinstance(row, dict)}
    return [(label, row) for label, row in rows if identity(row) not in seen]


def render_page(inputs: ReportInputs, worst: int = 5) -> str:
    """The whole page (str); deterministic for the same inputs."""
    from stabbench import __version__

    board = [(e.label, checked(e.label, eval_row, e)) for e in inputs.evals]
    board += [(v.label, row) for v in inputs.videos for row in checked(v.label, video_rows, v)]
    board += unseen_rows(inputs.leaderboard_rows, [row for _, row in board])
    body = [
        "<h1>stabbench report</h1>",
        f"<p>stabbench {text(__version__)}; {len(inputs.evals)} eval result(s), {len(inputs.videos)} real-video "
        f"result(s), {len(inputs.leaderboard_rows)} leaderboard row(s). Click a column to sort.</p>",
        *(note(n) for n in inputs.notes),
        "<h2>Leaderboard</h2>", leaderboard_html(board) if board else note("no rows"),
        *(checked(e.label, eval_section, i, e, worst) for i, e in enumerate(inputs.evals)),
        *(checked(v.label, video_section, v) for v in inputs.videos),
        "<h2>Inputs</h2>", sources_html(inputs),
    ]
    return _document("\n".join(body), __version__)


def checked(label: str, render, *args):
    """``render(*args)``; a result whose fields have the wrong shape is bad data naming ``label``."""
    try:
        return render(*args)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(label, f"malformed result ({type(exc).__name__}: {exc})") from None


def sources_html(inputs: ReportInputs) -> str:
    rows = ["<tr>" + cell(s.label) + cell(s.kind) + f"<td><code>{text(s.sha256)}</code></td></tr>"
            for s in inputs.sources]
    return table(["file", "kind", "sha256"], rows)


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _document(body: str, version: str) -> str:
    csp = (f"default-src 'none'; img-src data:; style-src {_csp_hash(CSS)}; script-src {_csp_hash(JS)}; "
           "base-uri 'none'; form-action 'none'")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        f'<meta name="generator" content="stabbench {text(version)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>stabbench report</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
        f"<script>{JS}</script>\n</body>\n</html>\n"
    )


def write_page(out: Path, page: str, overwrite: bool = False) -> Path:
    """Write ``out/index.html`` atomically; an existing page needs ``overwrite`` (else exit 4)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputConflictError(f"{out}: exists and is not a folder")
    target = out / PAGE_NAME
    if target.exists() and not overwrite:
        raise OutputConflictError(f"{target}: already exists; pass --overwrite to replace it")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, page)
    return target
