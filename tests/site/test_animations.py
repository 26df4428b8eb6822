"""The book's animations play in a reader's browser without a kernel.

Each animation is matplotlib's JavaScript player (``to_jshtml``) with its frames embedded,
rewritten by ``companion.diagrams.animation_html`` so that it fetches nothing. In headless
Chromium, with every other host refused, each one must show its controls and a loaded
frame, and stepping or playing must change the frame shown, with no console error.
"""

from __future__ import annotations

import pytest
from conftest import SITE, offline_context
from test_site import ENTRIES, page_url, watch

PAGES = [
    entry.file
    for entry in ENTRIES
    if (SITE / f"{entry.file}.html").exists()
    and 'class="animation"' in (SITE / f"{entry.file}.html").read_text(encoding="utf-8")
]


def test_the_book_has_animations():
    assert "book/02_tf_nn_conv2d" in PAGES, f"no animation found in chapter 2 (pages: {PAGES})"


def _frame(page, index: int) -> str:
    return page.evaluate(
        "i => document.querySelectorAll('div.animation img')[i].getAttribute('src') || ''", index
    )


@pytest.mark.parametrize("file", PAGES)
def test_animations_play_without_a_kernel(browser, site_url, file):
    context = offline_context(browser, site_url)
    page = context.new_page()
    record: dict = {"console": [], "failed": []}
    watch(page, record)
    try:
        page.goto(page_url(site_url, file), wait_until="load")
        animations = page.locator("div.animation")
        count = animations.count()
        assert count > 0
        for index in range(count):
            animation = animations.nth(index)
            animation.scroll_into_view_if_needed()
            for title in ("Play", "Pause", "Next frame", "Previous frame", "First frame"):
                assert animation.locator(f'button[title="{title}"]').count() == 1, title
            assert animation.locator("input.anim-slider").count() == 1
            page.wait_for_function(
                "i => { const img = document.querySelectorAll('div.animation img')[i];"
                " return img.complete && img.naturalWidth > 0; }",
                arg=index,
                timeout=10_000,
            )
            animation.locator('button[title="Pause"]').click()
            animation.locator('button[title="First frame"]').click()
            first = _frame(page, index)
            assert first.startswith("data:image/"), first[:40]
            animation.locator('button[title="Next frame"]').click()
            second = _frame(page, index)
            assert second != first, "stepping did not change the frame"
            animation.locator('button[title="First frame"]').click()
            assert _frame(page, index) == first
            animation.locator('button[title="Play"]').click()
            page.wait_for_function(
                "([i, src]) => document.querySelectorAll('div.animation img')[i]"
                ".getAttribute('src') !== src",
                arg=[index, first],
                timeout=10_000,
            )
            animation.locator('button[title="Pause"]').click()
            width = page.evaluate(
                "i => document.querySelectorAll('div.animation img')[i].naturalWidth", index
            )
            assert width > 0
    finally:
        page.close()
        context.close()
    assert record["console"] == [], f"{file}: console errors {record['console']}"
    assert record["failed"] == [], f"{file}: failed requests {record['failed']}"
