"""The reports in a real browser: Debian's Chromium, headless, driven by playwright (clipbook.report.browser),
loading the fixture report (conftest.py: two profiles, a failed paper, the calibration page) from file://.

Without Chromium or playwright these tests are skipped on a developer's machine, and fail in CI (CI set), where
.ci/run installs both: a browser check must never pass by not running.
"""
import os
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from clipbook.report.browser import BrowserUnavailable, headless_chromium, print_pdfs, wait_until_rendered

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts"
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
# the figures a reader sees: those of the view shown (the other views are hidden)
FIGURE_SIZES = """() => Array.from(document.querySelectorAll('figure img, .jp-OutputArea-output img'))
  .filter(img => !img.closest('[hidden]')).map(img => {
    const box = img.getBoundingClientRect();
    return {alt: img.alt, width: box.width, height: box.height, decoded: img.naturalWidth};
})"""
VISIBLE_ROWS = "id => Array.from(document.getElementById(id).tBodies[0].rows).filter(row => !row.hidden)"


@dataclass
class Visit:
    """What one page did while it loaded."""
    console_errors: list = field(default_factory=list)
    requests: list = field(default_factory=list)
    equations: int = 0
    typeset_errors: int = 0
    figures: dict = field(default_factory=dict)  # {view: [{alt, width, height, decoded}]}


@pytest.fixture(scope="module")
def browser():
    stack = ExitStack()
    try:
        chromium = stack.enter_context(headless_chromium())
    except BrowserUnavailable as err:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"the browser tests need Chromium and playwright in CI: {err}")
        pytest.skip(f"no headless browser here: {err}")
    with stack:
        yield chromium


def _open(browser, path: Path, visit: Visit):
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    tab.on("console", lambda message: visit.console_errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: visit.console_errors.append(str(error)))
    tab.on("request", lambda request: visit.requests.append(request.url))
    # anything that would leave the machine is recorded above and never sent
    tab.route(lambda url: not url.startswith(LOCAL_SCHEMES), lambda route: route.abort())
    tab.goto(path.as_uri())
    wait_until_rendered(tab)
    return tab


@pytest.fixture(scope="module")
def visits(browser, fixture_report) -> dict[Path, Visit]:
    """Every index and page of the fixture report, loaded once; an index's figures are measured in each view."""
    found = {}
    for path in sorted(fixture_report.glob("*/*.html")):
        visit = found[path] = Visit()
        tab = _open(browser, path, visit)
        visit.equations = tab.locator("mjx-container").count()
        visit.typeset_errors = tab.locator("mjx-merror").count()
        views = [button.get_attribute("value") for button in tab.locator(".profile-switch button").all()]
        for view in views or ["page"]:
            if views:
                tab.click(f".profile-switch button[value='{view}']")
            visit.figures[view] = tab.evaluate(FIGURE_SIZES)
        tab.close()
    return found


def test_the_fixture_report_has_both_indexes_and_every_page(visits, fixture_report):
    names = {str(path.relative_to(fixture_report)) for path in visits}
    assert names == {f"{profile}/{page}.html" for profile in ("offline", "paper")
                     for page in ("index", "gda", "coop", "calibration")}


def test_no_page_logs_a_console_error(visits):
    errors = {str(path): visit.console_errors for path, visit in visits.items() if visit.console_errors}
    assert errors == {}


def test_no_request_leaves_the_machine(visits):
    offsite = {str(path): [url for url in visit.requests if not url.startswith(LOCAL_SCHEMES)]
               for path, visit in visits.items()}
    assert {path: urls for path, urls in offsite.items() if urls} == {}
    # the pages did load their local MathJax: the check above saw real requests
    assert all(any(url.endswith("_static/tex-svg-full.js") for url in visit.requests)
               for path, visit in visits.items() if path.name != "index.html")


def test_mathjax_typesets_the_equations_of_every_page(visits):
    pages = {path: visit for path, visit in visits.items() if path.name != "index.html"}
    # each fixture notebook has one display and one inline equation (conftest.EQUATION and $K$)
    assert {str(path): visit.equations for path, visit in pages.items()} == {str(path): 2 for path in pages}
    assert all(visit.typeset_errors == 0 for visit in pages.values())


def test_every_figure_has_a_rendered_size(visits, fixture_report):
    for path, visit in visits.items():
        for view, figures in visit.figures.items():
            if view == "side by side":
                continue  # the comparison view is a table
            assert figures, f"{path} ({view}) shows no figure"
            empty = [figure for figure in figures if not (figure["width"] > 0 and figure["height"] > 0
                                                          and figure["decoded"] > 0)]
            assert empty == [], f"{path} ({view})"
    index = visits[fixture_report / "paper" / "index.html"].figures
    assert [figure["alt"] for figure in index["paper"]] == [
        "reproduced against reported", "effects", "toy-suite calibration"]
    assert [figure["alt"] for figure in index["offline"]] == ["effects on the toy world", "toy-suite calibration"]


def test_the_filter_narrows_the_table_and_the_headers_sort_it(browser, fixture_report):
    visit = Visit()
    tab = _open(browser, fixture_report / "offline" / "index.html", visit)
    rows = lambda: tab.evaluate(f"({VISIBLE_ROWS})('claims-offline').map(row => row.textContent)")  # noqa: E731
    everything = rows()
    assert len(everything) == 4
    tab.fill("input[data-filter-for='claims-offline']", "linear probe")
    assert len(rows()) == 1 and "GDA beats a linear probe" in rows()[0]
    tab.fill("input[data-filter-for='claims-offline']", "")
    tab.select_option("select[data-filter-for='claims-offline'][data-column='verdict']", "not tested")
    assert len(rows()) == 2 and all("not tested" in row for row in rows())
    assert tab.text_content("[data-count-for='claims-offline']") == "2 of 4 claims"
    tab.select_option("select[data-filter-for='claims-offline'][data-column='verdict']", "")
    assert rows() == everything

    effects = f"() => ({VISIBLE_ROWS})('claims-offline').map(row => row.cells[5].dataset.value).filter(Boolean)"
    header = "#claims-offline th:has-text('effect')"
    tab.click(header)
    ascending = [float(value) for value in tab.evaluate(effects)]
    tab.click(header)
    descending = [float(value) for value in tab.evaluate(effects)]
    assert len(ascending) == 2 and ascending == sorted(ascending) and descending == ascending[::-1]
    assert visit.console_errors == []
    tab.close()


def test_the_switch_shows_one_profile_at_a_time_and_both_side_by_side(browser, fixture_report):
    tab = _open(browser, fixture_report / "offline" / "index.html", Visit())
    shown = ("() => Array.from(document.querySelectorAll('section.view'))"
             ".filter(section => !section.hidden).map(section => section.dataset.viewName)")
    assert tab.evaluate(shown) == ["offline"]
    tab.click(".profile-switch button[value='paper']")
    assert tab.evaluate(shown) == ["paper"]
    assert tab.get_attribute(".profile-switch button[value='paper']", "aria-pressed") == "true"
    tab.click(".profile-switch button[value='side by side']")
    assert tab.evaluate(shown) == ["side by side"]
    compared = tab.locator("section[data-view-name='side by side'] tbody tr")
    assert compared.count() == 4
    row = compared.filter(has_text="GDA beats zero-shot CLIP at every shot count")
    assert row.locator(".badge").all_text_contents() == ["holds", "holds"]  # offline, paper
    # a link into the other profile resolves from here
    href = tab.get_attribute("section[data-view-name='paper'] a:has-text('gda')", "href")
    assert (fixture_report / "offline" / href).resolve() == (fixture_report / "paper" / "gda.html").resolve()
    tab.close()


def test_a_screenshot_of_the_index_is_saved_as_a_test_artifact(browser, fixture_report):
    tab = _open(browser, fixture_report / "offline" / "index.html", Visit())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "index-offline.png"
    path.unlink(missing_ok=True)
    tab.screenshot(path=str(path), full_page=True)
    tab.close()
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000


def test_print_pdfs_prints_the_index_and_every_page(browser, fixture_report):
    written = print_pdfs(fixture_report / "paper", browser=browser)
    assert [path.name for path in written] == ["index.pdf", "calibration.pdf", "coop.pdf", "gda.pdf"]
    assert all(path.read_bytes()[:5] == b"%PDF-" and path.stat().st_size > 10_000 for path in written)
