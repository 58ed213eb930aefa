"""The HTML report in a real browser: Debian's headless Chromium, driven by Playwright.

Never a browser downloaded at run time: Playwright is pointed at
/usr/bin/chromium (the CI script installs the `chromium` package). Without it
this test fails and says how to install it; it does not skip.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from labkit.report import write_report
from tests.helpers.report import COMPARE_RUN, REQUIREMENTS, SWEEP, stand_in_figures

pytestmark = pytest.mark.slow  # real servers for many seconds, a browser, benchmarks or Locust


CHROMIUM = Path(os.environ.get("LABKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the browser test needs Debian's Chromium. Install it with "
            "`sudo apt-get install chromium` (the CI script does); never `playwright install`.",
            pytrace=False,
        )
    return CHROMIUM


def _playwright():  # type: ignore[no-untyped-def]
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail('the Python package playwright is missing: pip install -e ".[dev]" (do not run `playwright install`)', pytrace=False)
    return sync_playwright


def _figures_for_the_browser(monkeypatch) -> str:  # type: ignore[no-untyped-def]
    """The real labkit.analysis.figures when it imports; otherwise a stand-in, so the images are still checked."""
    try:
        import labkit.analysis.figures  # noqa: F401
    except ImportError:
        monkeypatch.setitem(sys.modules, "labkit.analysis.figures", stand_in_figures())
        return "stand-in"
    return "labkit.analysis.figures"


def test_report_renders_in_headless_chromium(tmp_path, monkeypatch):
    chromium = _chromium()
    sync_playwright = _playwright()
    source = _figures_for_the_browser(monkeypatch)
    paths = write_report([COMPARE_RUN, SWEEP], out_dir=tmp_path / "report", requirements=REQUIREMENTS / "payments-provider.toml")
    assert paths.recommendation is not None

    console_errors: list[str] = []
    page_errors: list[str] = []
    outside: list[str] = []
    screenshot = tmp_path / "report.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))

            def guard(route):  # type: ignore[no-untyped-def]
                url = route.request.url
                if url.startswith(("file:", "data:")):
                    route.continue_()
                else:  # a self-contained report fetches nothing
                    outside.append(url)
                    route.abort()

            page.route("**/*", guard)
            page.goto(paths.html.as_uri(), wait_until="load")
            page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=15_000)
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.getAttribute('alt'), e.complete, e.naturalWidth, e.naturalHeight])"
            )
            title = page.title()
            option = page.inner_text(".rec .option")
            headings = page.eval_on_selector_all("h2", "els => els.map(e => e.innerText)")
            unavailable = page.eval_on_selector_all(".unavailable", "els => els.map(e => e.innerText)")
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    assert not console_errors, console_errors
    assert not page_errors, page_errors
    assert not outside, f"the report fetched {outside}"
    assert images, f"no figure rendered ({source}): {unavailable}"
    for alt, complete, width, height in images:
        assert complete and width > 0 and height > 0, f"figure {alt!r} did not load"
    assert "Decision report" in title
    assert option == paths.recommendation.option
    assert any("Coverage gaps" in h for h in headings) and any("four factors" in h for h in headings)
    assert screenshot.exists() and screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot} ({len(images)} figures from {source})")
