"""stabbench.report.html and .sources: the page is self-contained, deterministic and escaped; visuals
are embedded only from inside their folder and within the cap; real-video comparisons render."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import stabbench
from stabbench.errors import DataError
from stabbench.report.html import CSS, JS, interval_svg, render_page
from stabbench.report.sources import read_inputs
from tests.helpers import sha256, tiny_gif, tiny_png, write_visuals

MIB = 2**20


def page_of(*results, leaderboards=(), cap: int = 64 * MIB, worst: int = 5) -> str:
    return render_page(read_inputs([str(r) for r in results], [str(p) for p in leaderboards], cap), worst)


class Collect(HTMLParser):
    """Tags with their attributes, and the text of every table cell, per table."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> Collect:
    parser = Collect()
    parser.feed(page)
    return parser


def csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def test_page_is_self_contained_and_deterministic(result_copy: Path) -> None:
    write_visuals(result_copy)
    page = page_of(result_copy)
    assert page == page_of(result_copy)  # same inputs, same bytes (no date)
    tags = parse(page).tags
    csp = next(a["content"] for t, a in tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "img-src data:" in csp
    assert csp_hash(JS) in csp and csp_hash(CSS) in csp  # the inline script and style are the ones allowed
    assert f"<script>{JS}</script>" in page and f"<style>{CSS}</style>" in page
    sources = [a.get("src") or a.get("href") for t, a in tags if "src" in a or "href" in a]
    assert sources and all(s.startswith(("data:image/gif;base64,", "data:image/png;base64,")) for s in sources)
    assert not re.search(r"https?://|url\(|@import", page.replace("http-equiv", ""))
    assert {t for t, _ in tags} >= {"table", "img", "script", "style"} and "link" not in {t for t, _ in tags}
    assert f'content="stabbench {stabbench.__version__}"' in page
    # every input is recorded with its sha256
    assert sha256(result_copy / "results.json") in page and sha256(result_copy / "visuals" / "visuals.json") in page


def test_leaderboard_cells_and_diagnostics(result_copy: Path, tmp_path: Path) -> None:
    results = json.loads((result_copy / "results.json").read_text())
    lb = tmp_path / "lb.csv"
    lb.write_text("model,set,set_sha256,protocol,protocol_version,dataset,sequences,S_global,S_boundary,mIoU_syn\n"
                  "better/deep/path/model.pt2,other,0123456789abcdef,grid,v1,davis,30,99.5,99.0,80.0\n"
                  "nan-model,other,0123456789abcdef,grid,v1,davis,30,99.5,,80.0\n")
    parsed = parse(page_of(result_copy, leaderboards=[lb]))
    board = parsed.tables[0]
    assert board[0][:8] == ["model", "set", "protocol", "dataset", "sequences", "S_global", "S_boundary", "mIoU_syn"]
    # sorted by S_boundary, highest first, missing last; a path shows as its file name; set and protocol shown
    assert [r[0] for r in board[1:]] == ["model.pt2", "builtin:flicker,band=15,rate=0.1,seed=0", "nan-model"]
    assert board[1][1:3] == ["other 01234567", "grid v1"] and board[3][6] == "n/a"
    m = results["metrics"]
    assert board[2][6] == f"{m['S_boundary']:.2f}" and board[2][8] == f"{m['S_boundary_no_gt_rule']:.2f}"
    headline = parsed.tables[1]
    assert headline[1][4] == f"{100 * m['gt_rule_removed_fraction']:.2f}" and headline[1][6] == str(m["boundary_sequences"])
    cells = parsed.tables[2]
    assert len(cells) == 1 + len(results["per_perturbation_severity"])
    assert cells[0][-4:] == ["sequences", "boundary sequences", "pairs", "boundary pairs"]
    worst = parsed.tables[3]
    values = [float(r[4]) for r in worst[1:]]
    assert len(values) == 5 and values == sorted(values)
    assert values[0] == pytest.approx(min(r["S_boundary"] for r in results["per_sequence"]), abs=0.005)


def test_every_string_from_a_result_is_escaped(result_copy: Path) -> None:
    results = json.loads((result_copy / "results.json").read_text())
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    results["model"]["name"] = evil
    results["set"]["path"] = f"sets/{evil}"
    results["per_sequence"][0]["sequence"] = evil
    (result_copy / "results.json").write_text(json.dumps(results))
    page = page_of(result_copy)
    assert evil not in page and "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert page.count("<script>") == 1


def test_visuals_are_embedded(result_copy: Path) -> None:
    write_visuals(result_copy)
    page = page_of(result_copy)
    for data in (tiny_gif(), tiny_png(), tiny_gif(2)):
        assert base64.b64encode(data).decode() in page
    parsed = parse(page)
    worst = parsed.tables[3]
    assert worst[1][-1] == "yes"  # the least stable sequence has its clip below
    assert sum(1 for t, a in parsed.tags if t == "img" and a["alt"].startswith(("clip", "flicker heatmap"))) == 3


def test_visuals_past_the_cap_keep_their_numbers_only(result_copy: Path) -> None:
    write_visuals(result_copy)
    inputs = read_inputs([str(result_copy)], [], 100)  # 100 bytes: nothing fits
    page = render_page(inputs)
    assert base64.b64encode(tiny_gif()).decode() not in page
    assert len(inputs.notes) == 1 and "would pass the cap of 0.0 MiB (--max-embed-mb)" in inputs.notes[0]
    assert "images left out" in page and inputs.evals[0].visuals[0].S_boundary is not None


@pytest.mark.parametrize("bad, problem", [
    ("../results.json", "leaves the visuals folder"),
    ("/etc/hostname", "is an absolute path"),
    ("missing.gif", "not found in the visuals folder"),
    ("link.gif", "leaves the visuals folder"),
    ("heat.png", "is not a GIF file"),
    ("sub", "is not a regular file"),
    (7, "not a file name"),
])
def test_visuals_paths_are_checked(result_copy: Path, bad, problem) -> None:
    (result_copy / "visuals").mkdir()
    (result_copy / "visuals" / "sub").mkdir()
    (result_copy / "visuals" / "link.gif").symlink_to(result_copy / "results.json")
    item = {"sequence": "seq_00000", "perturbation": "rotation", "severity": 1, "S_global": 1.0, "S_boundary": 1.0,
            "clip_gif": bad, "clip_mp4": None, "heatmap": None, "compare": None}
    visuals = write_visuals(result_copy, items=[item], files={"heat.png": tiny_png()})
    with pytest.raises(DataError) as info:
        page_of(result_copy)
    assert info.value.path == visuals and problem in str(info.value) and "item 0 clip_gif" in str(info.value)


@pytest.mark.parametrize("change, problem", [
    ({"kind": "other"}, "not a stabbench visuals file"),
    ({"format_version": 2}, "format_version 2 is not supported"),
    ({"items": {"a": 1}}, "items must be a list of objects"),
])
def test_malformed_visuals_file_is_bad_data(result_copy: Path, change, problem) -> None:
    visuals = write_visuals(result_copy)
    visuals.write_text(json.dumps({**json.loads(visuals.read_text()), **change}))
    with pytest.raises(DataError, match=re.escape(problem)):
        page_of(result_copy)


def test_real_video_comparisons_render_with_intervals(tmp_path: Path) -> None:
    video = tmp_path / "video.json"
    video.write_text(json.dumps({"kind": "real-video", "comparisons": [
        {"model": "cl.pt2", "video": "<clip 1>", "S_global": 99.1, "S_boundary": 95.5, "coverage": 0.83,
         "reference": "base.pt2", "difference": 1.2, "ci_low": 0.4, "ci_high": 2.0, "verdict": "more stable"},
        {"model": "cl.pt2", "video": "clip 2", "S_global": 98.0, "S_boundary": 94.0, "coverage": 0.8,
         "reference": "base.pt2", "difference": -0.1, "ci_low": -0.9, "ci_high": 0.7, "verdict": "no difference",
         "extra": {"frames": 120}},
    ]}))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"kind": "real-video", "videos": []}))
    parsed = parse(page_of(video, empty))
    (table,) = [t for t in parsed.tables if t[0][:2] == ["model", "video"]]
    assert table[0] == ["model", "video", "reference", "S_global", "S_boundary", "coverage", "difference", "ci_low",
                        "ci_high", "verdict", "extra.frames", "interval (0 at the centre line)"]
    assert table[1][:3] == ["cl.pt2", "<clip 1>", "base.pt2"] and table[2][-3:-1] == ["no difference", "120.00"]
    assert sum(1 for t, _ in parsed.tags if t == "svg") == 2
    page = page_of(video, empty)
    assert "this real-video result has neither overall/per_video rows nor a comparisons list: skipped" in page


def real_video_result(folder: Path, items: list[dict] | None) -> Path:
    """A real-video results.json (the rows the page shows) with, unless ``items`` is None, a visuals.json."""
    row = {"model": "<m>", "reference": "annotations", "S_global": 98.0, "S_boundary": 90.0, "coverage_pct": 80.0}
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({"kind": "real-video", "reference": {"name": "annotations"},
                                                     "overall": [{**row, "videos": 1}],
                                                     "per_video": [{**row, "video": "camel", "pairs": 3}]}))
    if items is not None:
        (folder / "visuals" / "camel").mkdir(parents=True)
        (folder / "visuals" / "camel" / "m.gif").write_bytes(tiny_gif())
        (folder / "visuals" / "visuals.json").write_text(json.dumps(
            {"format_version": 1, "kind": "stabbench-visuals", "source": "real-video", "items": items}))
    return folder


def test_real_video_clips_are_embedded_and_checked(tmp_path: Path) -> None:
    item = {"kind": "real-video", "video": "camel", "model": "<m>", "S_global": 98.0, "S_boundary": 90.0,
            "clip_gif": "camel/m.gif", "clip_mp4": None, "compare": None}
    page = page_of(real_video_result(tmp_path / "a", [item]))
    gif = base64.b64encode(tiny_gif()).decode()
    assert page.count(f'src="data:image/gif;base64,{gif}"') == 1 and "<h3>Clips</h3>" in page
    assert "<figcaption>camel: &lt;m&gt;, S_global 98.00, S_boundary 90.00</figcaption>" in page
    page = page_of(real_video_result(tmp_path / "b", None))
    assert "no visuals/visuals.json beside this result (stabbench video --visuals writes one)" in page
    result = real_video_result(tmp_path / "c", [{**item, "clip_gif": "../results.json"}])
    with pytest.raises(DataError, match="leaves the visuals folder") as info:
        page_of(result)
    assert info.value.path == result / "visuals" / "visuals.json"


def test_interval_svg_places_the_interval_against_zero() -> None:
    svg = interval_svg(0.4, 2.0)
    assert 'x1="64.4"' in svg and 'x2="82.0"' in svg and "#2a7" in svg  # above 0: green
    assert "#c33" in interval_svg(-3, -1) and "#888" in interval_svg(-1, 1)
    assert interval_svg(None, 1) == "" and 'x1="5.0"' in interval_svg(-50, 1)  # clipped at -5


def test_bad_inputs_name_the_file(tmp_path: Path, result_copy: Path) -> None:
    with pytest.raises(DataError, match="results file not found"):
        page_of(tmp_path / "nothing")
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(DataError, match="cannot read JSON"):
        page_of(broken)
    results = json.loads((result_copy / "results.json").read_text())
    results["per_perturbation_severity"] = [{"perturbation": "x", "severity": "high"}]
    (result_copy / "results.json").write_text(json.dumps(results))
    with pytest.raises(DataError) as info:
        page_of(result_copy)
    assert info.value.path == Path(str(result_copy)) and "malformed result" in str(info.value)


def test_a_result_and_its_own_leaderboard_row_appear_once() -> None:
    from stabbench.report.html import unseen_rows

    shown = [{"model": "m", "set_sha256": "abc", "protocol_version": "1", "S_global": 99.5, "S_boundary": 97.25}]
    same = {"model": "m", "set_sha256": "abc", "protocol_version": "1", "S_global": "99.5", "S_boundary": "97.25", "date": "x"}
    older = {**same, "S_boundary": "96.0"}  # the same model's earlier numbers: another result, kept
    other = {**same, "model": "n"}
    assert unseen_rows([("lb.csv", same), ("lb.csv", older), ("lb.csv", other)], shown) == [("lb.csv", older), ("lb.csv", other)]
