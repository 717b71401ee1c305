"""The report page in a real browser: headless Chromium renders the tables, decodes every image,
logs nothing on its console (no script error, no blocked request), sorts a table on a click,
and leaves a screenshot in the test's temporary folder.

Needs Debian's ``chromium`` (``.ci/run`` installs it when missing); skipped when no Chromium is
found. Console messages are read from Chromium's own log (``--enable-logging=stderr``), where
each one is a ``CONSOLE`` line; the page itself logs nothing, so any such line is a failure
(``test_console_messages_are_caught`` shows the check sees a broken page).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from stabbench.report.html import render_page
from stabbench.report.sources import read_inputs
from tests.helpers import tiny_gif, write_visuals

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((path for path in map(shutil.which, BROWSERS) if path), None)
    if found is None:
        pytest.skip(f"no headless browser found (looked for {', '.join(BROWSERS)}; apt-get install chromium)")
    return found


def run_browser(browser: str, tmp_path: Path, page: Path, *args: str) -> tuple[str, list[str]]:
    """Open ``page`` headless; returns (stdout, the console lines of Chromium's log)."""
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--disable-background-networking", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
               "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", *args, page.resolve().as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


class Dom(HTMLParser):
    """The body's attributes and the cell texts of each table (by its class)."""

    def __init__(self):
        super().__init__()
        self.body: dict = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._table: list[list[str]] | None = None
        self._cell: list[str] | None = None
        self.images = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        elif tag == "img":
            self.images += 1
        elif tag == "table":
            self._table = self.tables.setdefault(attrs.get("class") or f"table{len(self.tables)}", [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag == "td" and self._table is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._table[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def dom_of(html: str) -> Dom:
    dom = Dom()
    dom.feed(html)
    return dom


@pytest.fixture
def report_page(flicker_result: Path, tmp_path: Path) -> Path:
    result = tmp_path / "eval"
    result.mkdir()
    shutil.copy(flicker_result / "results.json", result / "results.json")
    write_visuals(result)
    video = tmp_path / "video" / "results.json"  # the shape of stabbench video's results.json (the fields the page shows)
    (video.parent / "visuals" / "camel").mkdir(parents=True)
    (video.parent / "visuals" / "camel" / "osvos.gif").write_bytes(tiny_gif())
    (video.parent / "visuals" / "visuals.json").write_text(json.dumps({  # as stabbench video --visuals writes it
        "format_version": 1, "kind": "stabbench-visuals", "source": "real-video", "reference": "annotations",
        "items": [{"kind": "real-video", "video": "camel", "model": "osvos", "S_global": 98.1, "S_boundary": 90.2,
                   "clip_gif": "camel/osvos.gif", "clip_mp4": None, "compare": None}]}))
    row = {"model": "osvos", "reference": "annotations", "S_global": 98.1, "S_boundary": 90.2, "coverage_pct": 80.5,
           "dS_global": -1.2, "dS_global_lo": -2.0, "dS_global_hi": -0.4, "S_global_verdict": "less stable",
           "dS_boundary": 0.3, "dS_boundary_lo": -0.5, "dS_boundary_hi": 1.1, "S_boundary_verdict": "no clear difference"}
    video.write_text(json.dumps({"kind": "real-video", "reference": {"name": "annotations"},
                                 "set": {"sha256": "ab" * 32, "protocol": "real-video", "protocol_version": "real-video/1"},
                                 "overall": [{**row, "videos": 1}], "per_video": [{**row, "video": "camel", "pairs": 14}]}))
    page = tmp_path / "report" / "index.html"
    page.parent.mkdir()
    page.write_text(render_page(read_inputs([str(result), str(video)], [], 64 << 20)))
    return page


def test_page_renders_in_chromium(browser: str, report_page: Path, tmp_path: Path) -> None:
    dom_text, console = run_browser(browser, tmp_path, report_page, "--dump-dom")
    assert console == []  # no script error, no request blocked by the page's policy, no log
    dom = dom_of(dom_text)
    # 1 plot + clip + heatmap + comparison clip + a real-video clip, all decoded (complete and naturalWidth > 0)
    assert dom.images == 5 and dom.body.get("data-images") == "ok 5", dom.body
    board = [row for row in dom.tables["sortable leaderboard"] if row]
    assert [r[0] for r in board] == ["osvos", "builtin:flicker,band=15,rate=0.1,seed=0"]  # by S_boundary
    video = [row for row in dom.tables["sortable video"] if row]  # overall + per video
    assert [r[0] for r in video] == ["osvos", "camel"] and "[-2.00, -0.40]" in video[0]
    shot = tmp_path / "report.png"
    run_browser(browser, tmp_path, report_page, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_tables_sort_on_a_click(browser: str, report_page: Path, tmp_path: Path) -> None:
    """The page's own sorting script, driven by clicks from a harness script (the copy drops the
    page's policy, which allows no other script)."""
    html = report_page.read_text()
    start = html.index('<meta http-equiv="Content-Security-Policy"')
    html = html[:start] + html[html.index(">", start) + 1:]
    harness = """<script>
window.addEventListener("load", function () {
  var table = document.querySelectorAll("table.sortable")[1], th = table.tHead.rows[0].cells[3];
  var read = function () { return Array.prototype.map.call(table.tBodies[0].rows, function (r) {
    return r.cells[3].textContent; }).join(" "); };
  th.click(); document.body.setAttribute("data-up", read());
  th.click(); document.body.setAttribute("data-down", read());
});
</script></body>"""
    harness_page = tmp_path / "harness.html"
    harness_page.write_text(html.replace("</body>", harness))
    dom_text, console = run_browser(browser, tmp_path, harness_page, "--dump-dom")
    assert console == []
    body = dom_of(dom_text).body
    up = [float(v) for v in body["data-up"].split()]
    down = [float(v) for v in body["data-down"].split()]
    assert len(up) > 2 and up == sorted(up) and down == sorted(up, reverse=True) and len(set(up)) > 1


def test_console_messages_are_caught(browser: str, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
                    "'none'; script-src 'unsafe-inline'\"></head><body><img src=\"https://example.invalid/x.png\">"
                    "<script>missingFunction();</script></body></html>")
    _, console = run_browser(browser, tmp_path, page, "--dump-dom")
    assert any("missingFunction is not defined" in line for line in console), console
    assert any("Content Security Policy" in line for line in console), console
