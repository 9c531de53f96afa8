"""The report in a real headless browser: Debian's Chromium driven by Playwright.

Opens reports of tiny real runs, checks that every chart was drawn with one path per series, that
hovering (and the arrow keys) show the values of the data, plays the quiz (clicks and Space, reveal,
score) and saves screenshots into pytest's tmp dir (their paths are printed; `pytest -s` shows them).
Skipped cleanly without Playwright (`pip install -e ".[browser]"`) or a Chromium
(`apt-get install chromium`); .ci/run installs both.
"""
import os
import shutil

import pytest

from test_report import _no_user_data, build, runs  # noqa: F401  (fixtures and a helper)

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium_executable():
    """$SCRATCHGAN_CHROMIUM, or the first Chromium on PATH (Debian's package installs /usr/bin/chromium)."""
    candidates = [os.environ.get("SCRATCHGAN_CHROMIUM")] + [shutil.which(n) for n in ("chromium", "chromium-browser")]
    return next((c for c in candidates if c and os.path.isfile(c)), None)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed (pip install playwright)")
    executable = chromium_executable()
    if executable is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def open_page(browser, path, width=1280, height=900):
    """The report opened from disk; records page errors and every URL the page asks for."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.problems, page.requests = [], []
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda message: page.problems.append(message.text) if message.type == "error" else None)
    page.on("request", lambda request: page.requests.append(request.url))
    page.goto(path.as_uri())
    page.wait_for_selector("html[data-ready='true']", timeout=10_000)
    return page


def check_charts_drawn(page):
    data = page.evaluate("JSON.parse(document.getElementById('report-data').textContent)")
    figures = page.locator("figure[data-chart]")
    assert figures.count() == len(data["charts"]) > 0
    for i in range(figures.count()):
        figure = figures.nth(i)
        chart = data["charts"][figure.get_attribute("data-chart")]
        paths = figure.locator("svg path.series")
        assert paths.count() == len(chart["series"])
        for j, series in enumerate(chart["series"]):
            d = paths.nth(j).get_attribute("d")
            assert d.startswith("M") and d.count("L") == len(series["x"]) - 1
        assert figure.locator(".legend button").count() == len(chart["series"])
    return data


def check_hover_shows_the_data(page, data, chart_id):
    chart = data["charts"][chart_id]
    svg = page.locator(f"#{chart_id} svg")
    svg.scroll_into_view_if_needed()
    box = svg.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    tooltip = page.locator(f"#{chart_id} .tooltip")
    assert tooltip.is_visible()
    shown = page.locator(f"#{chart_id} .tip-value")
    assert shown.count() == len(chart["series"])
    for k, series in enumerate(chart["series"]):
        line = shown.nth(k)
        assert line.get_attribute("data-series") == series["name"]
        x, y = float(line.get_attribute("data-x")), float(line.get_attribute("data-value"))
        assert y == series["y"][series["x"].index(x)]  # exactly the value of the data at that x
        assert series["name"] in line.inner_text()
    page.mouse.move(0, 0)
    assert not tooltip.is_visible()
    # the keyboard reads the same values: End jumps to the last point
    svg.focus()
    page.keyboard.press("End")
    last = chart["series"][0]
    assert float(shown.first.get_attribute("data-value")) == last["y"][-1]
    assert float(shown.first.get_attribute("data-x")) == last["x"][-1]
    page.keyboard.press("Escape")
    assert not tooltip.is_visible()


def play_quiz(page, quiz_id, answers):
    quiz = page.locator(f"#{quiz_id}")
    tiles = quiz.locator("button.tile")
    assert tiles.count() == len(answers)
    for i in (0, 1, 2, 3, 5, 8):
        tiles.nth(i).click()
    tiles.nth(1).click()                          # changed my mind
    tiles.nth(10).focus()
    page.keyboard.press("Space")                  # the keyboard marks a tile too
    marked = {0, 2, 3, 5, 8, 10}
    for i in range(len(answers)):
        assert tiles.nth(i).get_attribute("aria-pressed") == ("true" if i in marked else "false")
    assert quiz.locator(".marked").inner_text() == f"{len(marked)} marked as fake."
    quiz.locator("button.reveal").click()
    right = sum((i in marked) == fake for i, fake in enumerate(answers))
    found = sum(fake for i, fake in enumerate(answers) if i in marked)
    false_alarms = len(marked) - found
    score = quiz.locator(".score")
    assert score.get_attribute("data-right") == str(right)
    assert score.inner_text() == (f"Score: {right} of {len(answers)} right. You found {found} of {sum(answers)} fakes "
                                  f"and marked {false_alarms} of {len(answers) - sum(answers)} real images as fake.")
    for i, fake in enumerate(answers):
        verdict = tiles.nth(i).locator(".verdict").inner_text()
        assert verdict.startswith("fake" if fake else "real")
        assert verdict.endswith("✓" if (i in marked) == fake else "✗")
    tiles.nth(4).click(force=True)                # no more changes once revealed (aria-disabled)
    assert tiles.nth(4).get_attribute("aria-pressed") == "false"
    return right


@pytest.mark.slow
def test_report_in_chromium_draws_charts_and_plays_the_quiz(browser, runs, tmp_path):  # noqa: F811
    build(tmp_path, [runs["a"]], data_dir=runs["data"])
    page = open_page(browser, tmp_path / "report.html")
    data = check_charts_drawn(page)
    check_hover_shows_the_data(page, data, "run0-loss")
    legend = page.locator("#run0-loss .legend button", has_text="G loss")
    legend.click()
    assert legend.get_attribute("aria-pressed") == "false"
    assert page.locator("#run0-loss g[data-series='G loss']").get_attribute("class") == "hidden"
    legend.click()
    play_quiz(page, "run0-quiz", data["quizzes"]["run0-quiz"])
    screenshot = tmp_path / "report.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"report screenshot: {screenshot}")
    page.locator("#run0-quiz button.reset").click()
    assert page.locator("#run0-quiz .score").inner_text() == ""
    assert page.locator("#run0-quiz button.tile[aria-pressed='true']").count() == 0
    assert not page.problems, page.problems
    assert all(url.startswith(("file:", "data:")) for url in page.requests), page.requests
    # a phone: one column, nothing wider than the screen, charts redrawn to its width
    phone = open_page(browser, tmp_path / "report.html", width=390, height=844)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    svg_width = phone.locator("#run0-loss svg").bounding_box()["width"]
    assert 250 < svg_width <= 390
    phone_shot = tmp_path / "report-phone.png"
    phone.screenshot(path=str(phone_shot), full_page=True)
    print(f"phone screenshot: {phone_shot}")
    assert not phone.problems, phone.problems


@pytest.mark.slow
def test_comparison_in_chromium_overlays_the_runs(browser, runs, tmp_path):  # noqa: F811
    build(tmp_path, [runs["a"], runs["b"]], data_dir=runs["data"])
    page = open_page(browser, tmp_path / "report.html")
    data = check_charts_drawn(page)
    assert [s["name"] for s in data["charts"]["cmp-h-d_loss"]["series"]] == ["a", "b"]
    check_hover_shows_the_data(page, data, "cmp-h-d_loss")
    play_quiz(page, "run1-quiz", data["quizzes"]["run1-quiz"])
    screenshot = tmp_path / "comparison.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"comparison screenshot: {screenshot}")
    assert not page.problems, page.problems
    assert all(url.startswith(("file:", "data:")) for url in page.requests), page.requests
