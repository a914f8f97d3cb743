"""Headless Chromium for the reports: the browser tests load the pages through it from file://, and
`invoke reports --pdf` prints the index and the pages with it.

The browser is the system's Chromium (Debian: `apt-get install -y chromium`), driven by playwright with
`executable_path`; playwright's own browser download is never used (it cannot work offline).
"""
from __future__ import annotations

import os
import shutil
from contextlib import ExitStack, contextmanager
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# /dev/shm is 64 MB in many containers (CI's included): Chromium's renderer then crashes on large pages
CHROMIUM_ARGS = ("--disable-dev-shm-usage",)
PDF_DIR = "pdf"


class BrowserUnavailable(RuntimeError):
    """No Chromium, or no playwright to drive it; the message says how to install what is missing."""


def chromium_executable() -> str:
    """The Chromium to drive: $CLIPBOOK_CHROMIUM, else the first of CHROMIUM_NAMES on PATH."""
    explicit = os.environ.get("CLIPBOOK_CHROMIUM")
    if explicit:
        if not Path(explicit).is_file():
            raise BrowserUnavailable(f"CLIPBOOK_CHROMIUM={explicit!r} is not a file")
        return explicit
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise BrowserUnavailable(f"no Chromium on PATH (looked for {', '.join(CHROMIUM_NAMES)} and $CLIPBOOK_CHROMIUM); "
                             "install Debian's with `apt-get update && apt-get install -y chromium`")


@contextmanager
def headless_chromium():
    """A headless Chromium browser (playwright's Browser), closed on exit.

    Raises:
        BrowserUnavailable: playwright is not installed, or no Chromium was found.
    """
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise BrowserUnavailable("playwright is not installed: pip install -e '.[dev]' "
                                 "(its browser download is not needed)") from None
    executable = chromium_executable()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def wait_until_rendered(page, timeout_s: float = 30.0) -> None:
    """Wait until a loaded page is what a reader sees: MathJax has typeset (where the page loads it) and the fonts
    are ready.

    Raises:
        TimeoutError: not rendered within `timeout_s` (MathJax stuck on a missing file, say).
    """
    page.wait_for_load_state("load")
    state = page.evaluate("""timeout => Promise.race([
        (window.MathJax && MathJax.startup ? MathJax.startup.promise : Promise.resolve())
            .then(() => document.fonts.ready).then(() => "rendered"),
        new Promise(resolve => setTimeout(() => resolve("timed out"), timeout))])""", timeout_s * 1000)
    if state != "rendered":
        raise TimeoutError(f"{page.url} was not rendered within {timeout_s:g} s (MathJax typesetting or fonts)")


def print_pdfs(report_dir: Path, browser=None) -> list[Path]:
    """Print a report folder's index.html and every page to <report_dir>/pdf/<name>.pdf.

    Args:
        report_dir: reports/<profile>.
        browser: a running `headless_chromium()` to print with (default: one started here).

    Returns:
        The PDFs written, the index first.
    """
    report_dir = Path(report_dir)
    index = report_dir / "index.html"
    if not index.exists():
        raise FileNotFoundError(f"{index} does not exist; run `invoke batch` or `invoke reports` first")
    pages = [index] + sorted(path for path in report_dir.glob("*.html") if path != index)
    out_dir = report_dir / PDF_DIR
    out_dir.mkdir(exist_ok=True)
    written = []
    with ExitStack() as stack:
        browser = browser or stack.enter_context(headless_chromium())
        tab = browser.new_page()
        for html_path in pages:
            tab.goto(html_path.resolve().as_uri())
            wait_until_rendered(tab)
            # a claim's sentence sits in a closed <details> on the index: paper shows it open
            tab.evaluate("document.querySelectorAll('details').forEach(details => { details.open = true; })")
            written.append(out_dir / f"{html_path.stem}.pdf")
            # at 80 % an A4 page lays the notebook out about as wide as a laptop screen does
            tab.pdf(path=str(written[-1]), format="A4", print_background=True, scale=0.8,
                    margin={"top": "12mm", "bottom": "12mm", "left": "10mm", "right": "10mm"})
        tab.close()
    return written
