"""The report in a real browser: Debian's chromium driven by Playwright, with all network blocked.

`make test` installs chromium with apt-get when it is missing; this test never skips. The
screenshot it takes is kept in tests/artifacts/report.png (CI can upload it).
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import psutil
import pytest
from conftest import REPO
from test_report import study

from weightlab import report

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO / "tests" / "artifacts"


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), (
        "no chromium: `make test` installs Debian's package (apt-get install chromium)"
    )
    args = ["--host-resolver-rules=MAP * ~NOTFOUND"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # chromium refuses to run as root with its sandbox
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        # A page that hangs (a script looping) would hang the suite: past the limit the browser
        # is killed, so the waiting call raises and the test fails instead.
        watchdog = threading.Timer(WATCHDOG_S, _kill_browsers)
        watchdog.start()
        try:
            yield b
        finally:
            watchdog.cancel()
            b.close()


WATCHDOG_S = 300


def _kill_browsers() -> None:
    for child in psutil.Process().children(recursive=True):
        if "chrom" in child.name():
            child.kill()


def test_the_page_renders_offline_and_the_slider_moves_the_histograms(store, tmp_path, browser):
    study(store, seeds=2, epochs=4)
    records = store.verified(store.select([], default="latest-batch"))
    out = tmp_path / "report.html"
    report.write(store, records, out, command=f"weightlab report -o {out}")

    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    off_page: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    def only_files(route):
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            off_page.append(url)
            route.abort()

    page.route("**/*", only_files)
    page.goto(out.as_uri())
    page.wait_for_function("document.querySelectorAll('[data-chart] .main-svg').length > 0")

    charts = page.evaluate(
        "[...document.querySelectorAll('[data-chart]')].map(d => "
        "[d.dataset.chart, !!d.querySelector('svg, canvas')])"
    )
    names = [name for name, _ in charts]
    assert [name for name, drawn in charts if not drawn] == []
    for name in ("loss-train", "loss-val", "pair-0-distance", "dot-product"):
        assert name in names
    assert {"hist-dense_1/kernel", "weights-out/kernel", "bias-dense_1/bias"} <= set(names)

    def histogram() -> list:
        return page.evaluate(
            "(() => { const d = document.querySelector('[data-chart=\"hist-dense_1/kernel\"]');"
            " return [d.layout.title.text, d.data.map(t => Array.from(t.y))]; })()"
        )

    title, last = histogram()
    assert title == "dense_1/kernel at epoch 4"
    page.evaluate(
        "(() => { const s = document.getElementById('epoch-slider'); s.value = 0;"
        " s.dispatchEvent(new Event('input', {bubbles: true})); })()"
    )
    title, first = histogram()
    assert title == "dense_1/kernel at epoch 0"
    assert first != last
    assert page.locator("#epoch-value").inner_text() == "0"
    assert "epoch 0" in page.evaluate(
        "document.querySelector('[data-chart=\"dot-product\"]').layout.title.text"
    )

    def dot_terms() -> list:
        return page.evaluate(
            "Array.from(document.querySelector('[data-chart=\"dot-product\"]').data[0].y)"
        )

    before = dot_terms()
    page.select_option("#dot-unit", "1")
    assert dot_terms() != before  # another unit: other weights, other terms

    # Zooming one weights chart zooms them all (linked x axes).
    page.evaluate(
        "Plotly.relayout(document.querySelector('[data-chart=\"weights-out/kernel\"]'),"
        " {'xaxis.range': [1, 2]})"
    )
    page.wait_for_timeout(300)
    linked = page.evaluate(
        "Array.from(document.querySelector('[data-chart=\"weights-dense_1/kernel\"]')"
        ".layout.xaxis.range)"
    )
    assert linked == [1, 2]
    page.evaluate(
        "Plotly.relayout(document.querySelector('[data-chart=\"weights-out/bias\"]'),"
        " {'xaxis.autorange': true})"
    )
    page.wait_for_timeout(300)
    assert page.evaluate(
        "document.querySelector('[data-chart=\"weights-out/kernel\"]').layout.xaxis.autorange"
    )

    with page.expect_download() as got:
        page.click("#download-runs-csv")
    lines = Path(got.value.path()).read_text().splitlines()
    assert lines[0].startswith("id,experiment,seed,model.use_bias,status")
    assert len(lines) == 1 + len(records)

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report.png")
    assert shot.stat().st_size > 50_000
    assert errors == []
    assert off_page == []
