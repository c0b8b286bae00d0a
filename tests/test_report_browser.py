"""The HTML report in a real browser: Debian's headless Chromium, driven over its DevTools protocol by
Playwright (which never downloads a browser here: it runs the system's ``chromium``)."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from runner.cli import app
from tests._report_fixtures import make_results

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's `chromium`; apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    with sync_api.sync_playwright() as pw:
        # launch() runs headless with a fresh temporary profile (user data dir) every time
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


def _column(page, index: int) -> list[float]:
    return page.eval_on_selector_all(
        "#per-image-table tbody tr",
        f"rows => rows.map(r => parseFloat(r.cells[{index}].getAttribute('data-v')))",
    )


def test_report_in_chromium(browser, tmp_path):
    out = make_results(tmp_path, n=4)
    html = tmp_path / "report.html"
    assert CliRunner().invoke(app, ["report", str(out), "--out", str(html)]).exit_code == 0
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else problems.append(r.url))
    page.goto(html.as_uri(), wait_until="load")

    # every picture decoded (thumbnails, hidden full-size views, chart, histograms)
    sizes = page.eval_on_selector_all("img", "imgs => imgs.map(i => [i.complete, i.naturalWidth])")
    assert len(sizes) >= 1 + 2 * 4 + 4
    assert all(done and width > 0 for done, width in sizes), sizes

    # sorting: click the accuracy header, ascending then descending; names follow their rows
    headers = page.eval_on_selector_all("#per-image-table th", "ths => ths.map(t => t.textContent)")
    col = headers.index("accuracy@0.5")
    before = _column(page, col)
    page.click(f"#per-image-table th:nth-child({col + 1})")
    assert _column(page, col) == sorted(before)
    assert page.get_attribute(f"#per-image-table th:nth-child({col + 1})", "aria-sort") == "ascending"
    page.click(f"#per-image-table th:nth-child({col + 1})")
    assert _column(page, col) == sorted(before, reverse=True)
    page.click("#per-image-table th:nth-child(1)")
    names = page.eval_on_selector_all(
        "#per-image-table tbody tr", "rows => rows.map(r => r.cells[0].textContent)"
    )
    assert names == sorted(names)

    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    # full size on click: the first (worst) thumbnail opens its large view
    first = page.get_attribute(".gallery .item", "id")
    page.click(f"#{first} a")
    assert page.is_visible(f"#full-{first} img")
    page.screenshot(path=str(tmp_path / "report_full_view.png"))
    page.close()
    assert problems == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
