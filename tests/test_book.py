"""The book: sources, offline rendering in headless Chromium, and the results tables against their CSV.

Chromium runs with every host name except 127.0.0.1 unresolvable, so nothing can leave the machine;
its network log then shows whether a page even tried. The built HTML, CSS and JavaScript are also
scanned for external resources that a browser would fetch.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import html.parser
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import pipeline  # noqa: E402
from sdn import study  # noqa: E402

RESULTS_RUN = pipeline.Run("05_results.ipynb", "05_results")
CONFIGURATIONS = list(study.PAPER_CONFIGURATIONS)
BASELINES = list(study.BASELINES)
DECIMALS = 2  # as displayed by notebooks/05_results.ipynb
TEXT_COLUMNS = {"config_hash"}  # shown as written; every other column is a number


def displayed(column: str, value: str) -> str:
    """A summary.csv cell as the results page shows it: numbers rounded, NaN as n/a, text as is."""
    if column in TEXT_COLUMNS:
        return value
    number = float(value)
    return "n/a" if number != number else f"{number:.{DECIMALS}f}"


# ---------------------------------------------------------------------------------------------
# Sources


def test_api_reference_lists_every_module():
    listed = re.findall(r"^\.\. automodule:: (sdn\.\w+)\s*$", (REPO / "book" / "api.md").read_text(), re.M)
    modules = {f"sdn.{p.stem}" for p in (REPO / "sdn").glob("*.py") if not p.name.startswith("_")}
    assert sorted(set(listed)) == sorted(listed), "a module is listed twice in book/api.md"
    assert set(listed) == modules, (f"book/api.md: add {sorted(modules - set(listed))}, "
                                    f"remove {sorted(set(listed) - modules)}")


def test_toc_pages_exist_and_generated_pages_come_from_the_pipeline():
    toc = yaml.safe_load((REPO / "book" / "_toc.yml").read_text())
    entries = [c for part in toc["parts"] for c in part["chapters"]]
    entries += [s for c in entries for s in c.get("sections", [])]
    files = [toc["root"]] + [c["file"] for c in entries if "file" in c]
    written = [name for name in files if not name.startswith("generated/")]
    for name in written:
        assert (REPO / "book" / f"{name}.md").is_file(), f"_toc.yml names missing page {name}"
    # every executed notebook has exactly one place: by name, or (training runs) by the one glob
    runs = [run.name for run in pipeline.RUNS]
    generated = [name.removeprefix("generated/") for name in files if name.startswith("generated/")]
    assert [c["glob"] for c in entries if "glob" in c] == ["generated/02_train_*"]
    assert sorted(generated + [r for r in runs if r.startswith("02_train_")]) == sorted(runs)


def test_staged_toc_lists_the_training_runs_in_the_study_order_and_only_pages_that_were_run(tmp_path):
    toc = tmp_path / "_toc.yml"
    shutil.copy2(REPO / "book" / "_toc.yml", toc)
    names = ["05_results", "02_train_untrained", "02_train_prior_fir0"]  # not alphabetical
    pipeline.stage_toc(toc, names)
    content = yaml.safe_load(toc.read_text())
    entries = [c for part in content["parts"] for c in part["chapters"]]
    entries += [s for c in entries for s in c.get("sections", [])]
    generated = [c["file"] for c in entries if c.get("file", "").startswith("generated/")]
    assert generated == ["generated/05_results", "generated/02_train_untrained", "generated/02_train_prior_fir0"]
    assert not any("glob" in c for c in entries)


# ---------------------------------------------------------------------------------------------
# Browser helpers


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    message = "headless Chromium not found (CI installs it: apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def serve(folder: Path):
    """Serve ``folder`` on 127.0.0.1 (a free port) for the duration of the block."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def chromium(url: str, work: Path, *, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """Load ``url`` headless; returns (DOM after scripts ran, URLs the page requested off 127.0.0.1)."""
    work.mkdir(parents=True, exist_ok=True)
    netlog = work / "netlog.json"
    base = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-extensions", "--hide-scrollbars",
            # Every host but the local server is unresolvable: nothing can leave the machine.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000", "--window-size=1280,1600"]
    shot_args = [f"--screenshot={screenshot}"] if screenshot else []
    subprocess.run(base + [f"--user-data-dir={work / 'profile-shot'}", f"--log-net-log={netlog}"]
                   + shot_args + [url], capture_output=True, timeout=120, check=True)
    dom = subprocess.run(base + [f"--user-data-dir={work / 'profile-dom'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    return dom, page_requests_off_host(netlog)


def page_requests_off_host(netlog: Path) -> list[str]:
    """URLs of requests made on behalf of a page (not by the browser itself) to a host that is not 127.0.0.1.

    Chromium's own service requests (update checks, clock, accounts) carry the initiator
    "not an origin" and the request type "other"; whatever a page loads has the page's origin as
    initiator, or is a frame.
    """
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    outside = []
    for event in log["events"]:
        params = event.get("params", {})
        if event["type"] != start_job or "url" not in params:
            continue
        browser_own = params.get("initiator") == "not an origin" and params.get("request_type") == "other"
        host = urlparse(params["url"]).hostname
        if not browser_own and host not in ("127.0.0.1", None):
            outside.append(params["url"])
    return outside


# Attributes whose URL the browser fetches, CSS url()/@import, and URL literals in JavaScript that
# point at a loadable file.
_FETCHING_ATTR = re.compile(r"""<(?P<tag>[a-zA-Z]+)\b[^>]*?\s(?P<attr>src|srcset|poster|data|href)\s*=\s*["']\s*(?P<url>(?:https?:)?//[^"'\s>]+)""")
_CSS_URL = re.compile(r"""(?:url\(\s*["']?|@import\s+["'])(?P<url>(?:https?:)?//[^"')\s]+)""")
_JS_URL = re.compile(r"""["'`](?P<url>(?:https?:)?//[a-zA-Z0-9.-]+\.[a-z]{2,}/[^"'`\s]*\.(?:js|mjs|css|woff2?|ttf|otf|eot)(?:\?[^"'`\s]*)?)["'`]""")


# External URLs that ship inside vendored files but are never requested by a current browser.
NEVER_FETCHED = {
    # MathJax's speech rule engine loads this XPath polyfill only where document.evaluate is
    # missing (Internet Explorer); in other browsers its maps come from _static/mathjax/sre.
    "https://cdn.jsdelivr.net/npm/wicked-good-xpath@1.3.0/dist/wgxpath.install.js",
}


def external_resources(html_root: Path) -> list[str]:
    """Static scan of the built book for external resources that a page would load."""
    found = []
    for path in html_root.rglob("*"):
        if path.suffix not in (".html", ".css", ".js") or "_sources" in path.parts:
            continue
        text = path.read_text(errors="replace")
        where = path.relative_to(html_root)
        if path.suffix == ".html":
            for m in _FETCHING_ATTR.finditer(text):
                if m["tag"].lower() == "a":
                    continue  # a link is followed only when clicked
                if m["attr"] == "href" and m["tag"].lower() != "link":
                    continue
                found.append(f"{where}: <{m['tag']} {m['attr']}={m['url']}>")
        for m in _CSS_URL.finditer(text):
            found.append(f"{where}: {m['url']}")
        if path.suffix == ".js":
            found += [f"{where}: {m['url']}" for m in _JS_URL.finditer(text) if m["url"] not in NEVER_FETCHED]
    return found


class Tables(html.parser.HTMLParser):
    """Collect the text of every cell of every <table id=...>, row by row."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._table = self._row = self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id"):
            self._table = self.tables.setdefault(attrs["id"], [])
        elif tag == "tr" and self._table is not None:
            self._row = []
            self._table.append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def check_results_page(dom: str, summary_csv: Path) -> None:
    """The results page shows both tables, and every number equals the CSV value as displayed."""
    parser = Tables()
    parser.feed(dom)
    with summary_csv.open(newline="") as f:
        summary = {row.pop("model"): row for row in csv.DictReader(f)}
    for table_id, models in (("table-configurations", CONFIGURATIONS), ("table-baselines", BASELINES),
                             ("table-converged", list(study.CONVERGED))):
        assert table_id in parser.tables, f"results page lacks table {table_id}"
        rows = {r[0]: r for r in parser.tables[table_id] if r and r[0] in summary}
        assert sorted(rows) == sorted(models), f"{table_id}: rows {sorted(rows)}"
        header = next(r for r in parser.tables[table_id] if len(r) > 2)
        n_metrics = len(next(iter(summary.values())))
        for model in models:
            shown = rows[model][-n_metrics:]
            expected = [displayed(column, v) for column, v in summary[model].items()]
            assert shown == expected, f"{table_id}/{model}: page {shown} != CSV {expected} ({header})"
    first = list(next(iter(summary.values())))[0]
    best = min(CONFIGURATIONS, key=lambda m: float(summary[m][first]))
    assert f"{float(summary[best][first]):.{DECIMALS}f}, reached by" in dom


def check_page(url: str, work: Path, shot: Path) -> str:
    dom, outside = chromium(url, work, screenshot=shot)
    assert shot.is_file() and shot.stat().st_size > 1000, f"no screenshot of {url}"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert outside == [], f"{url} requested resources off 127.0.0.1: {outside}"
    assert "</html>" in dom.lower() and "<main" in dom.lower(), f"{url}: page did not render"
    return dom


# ---------------------------------------------------------------------------------------------
# The results page, from a summary table made up for this test (it checks how the page is made,
# not the study's numbers)


@functools.lru_cache(maxsize=None)
def book_with_fixture_summary(root: Path) -> tuple[Path, Path]:
    results = root / "results"
    (results / "tables").mkdir(parents=True)
    summary = results / "tables" / "summary.csv"
    with summary.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", "edc_error_db", "t30_error_pct", "t20_error_pct", "edt_error_pct"])
        for i, model in enumerate(study.EVALUATED):
            writer.writerow([model, 4.126 - 0.5 * i, 31.0 / (i + 1), 12.344 + i, 7.005 * (i + 1)])
    pipeline.run_notebooks([RESULTS_RUN], pipeline.Study(results, quick=True))
    html = pipeline.build_book(results, root / "book", runs=[RESULTS_RUN])
    return summary, html


@pytest.mark.slow
def test_results_page_in_browser_shows_the_tables_of_its_csv(tmp_path_factory):
    chromium_binary()  # skips (fails in CI) without a browser
    summary, html = book_with_fixture_summary(tmp_path_factory.mktemp("fixture-book"))
    work = tmp_path_factory.mktemp("chromium")
    with serve(html) as base:
        dom = check_page(f"{base}/generated/{RESULTS_RUN.name}.html", work / "results",
                         work / "results.png")
        check_results_page(dom, summary)
        model_dom = check_page(f"{base}/model.html", work / "model", work / "model.png")
    assert model_dom.count("<mjx-container") > 10, "MathJax did not typeset the model page"
    assert "<mjx-merror" not in model_dom, "MathJax reported a TeX error"
    assert external_resources(html) == []


def test_external_resource_scan_catches_what_a_browser_would_fetch(tmp_path):
    (tmp_path / "a.html").write_text(
        '<a href="https://doi.org/x">ok</a><link rel="stylesheet" href="https://cdn.example.org/x.css">'
        '<script src="//cdn.example.org/x.js"></script><img src="https://example.org/i.png">')
    (tmp_path / "b.css").write_text("@font-face{src:url(https://fonts.example.org/f.woff2)}")
    (tmp_path / "c.js").write_text('var s = "https://cdn.example.org/lib/require.min.js";')
    found = external_resources(tmp_path)
    assert len(found) == 5 and not any("doi.org" in f for f in found)


# ---------------------------------------------------------------------------------------------
# The book of the quick study (the quick_study fixture of conftest.py runs it once per session)


@pytest.mark.slow
def test_quick_book_in_browser(tmp_path_factory, quick_study):
    chromium_binary()
    results, html = quick_study
    assert external_resources(html) == []
    work = tmp_path_factory.mktemp("chromium-quick")
    with serve(html) as base:
        check_page(f"{base}/index.html", work / "index", work / "index.png")
        for run in pipeline.RUNS:
            dom = check_page(f"{base}/generated/{run.name}.html", work / run.name, work / f"{run.name}.png")
            if run.name == RESULTS_RUN.name:
                check_results_page(dom, results / "tables" / "summary.csv")


def _table_with_header(dom: str, first_headers: list[str]) -> list[list[str]]:
    parser = Tables()
    parser.feed(dom)
    found = [rows for rows in parser.tables.values() if rows and rows[0][:len(first_headers)] == first_headers]
    assert found, f"no table headed {first_headers}"
    return found[0]


@pytest.mark.slow
def test_intro_opens_with_the_headline_table_and_its_numbers_are_summary_csv(quick_study):
    """The first page shows the headline (issue: a reader sees it without scrolling past the
    navigation), for the baselines and the paper's configurations, each number as in summary.csv."""
    from sdn import notebook, tables

    results, html = quick_study
    dom = (html / "intro.html").read_text()
    main = dom[dom.index("<main"):]
    assert main.index(notebook.CAVEAT_CLASS) < main.index('id="what-the-paper-does"')  # the first section
    keys = tables.HEADLINE_PCT
    rows = _table_with_header(main, ["model", *(tables.COLUMNS[k].header for k in keys)])
    shown = {row[0]: row[1:] for row in rows[1:]}
    with (results / "tables" / "summary.csv").open(newline="") as f:
        summary = {row["model"]: row for row in csv.DictReader(f)}
    for name in [*study.BASELINES, *study.PAPER_CONFIGURATIONS]:
        expected = []
        for key in keys:
            value = float(summary[name][key])
            expected.append("n/a" if value != value else f"{value:.{tables.COLUMNS[key].decimals}f}")
        assert shown[study.label(name)][:len(keys)] == expected, name  # the medians; their ranges follow


@pytest.mark.slow
def test_every_page_with_errors_carries_the_target_caveat(quick_study):
    from sdn import notebook

    _, html = quick_study
    pages = [run.name for run in pipeline.RUNS if run.name.startswith(("02_train_", "03_", "05_", "07_", "08_"))]
    assert len(pages) >= len(study.FITS) + 4
    for name in pages:
        assert notebook.CAVEAT_CLASS in (html / "generated" / f"{name}.html").read_text(), name


@pytest.mark.slow
def test_sensitivity_page_covers_at_least_three_microphone_positions(quick_study):
    _, html = quick_study
    rows = _table_with_header((html / "generated" / "08_sensitivity.html").read_text(),
                              ["model", "error", "calibrated position"])
    counts = [int(row[-1]) for row in rows[1:]]
    assert len(rows) > 1 and min(counts) >= 3
