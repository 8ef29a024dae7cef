"""The advise table in real Chromium at 1280x800: the learning rate names its source and the other
sources, the reason column is on screen, in English and in Chinese."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _pick(page: Any, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def _visible(locator: Any) -> Any:
    """The first visible match (Gradio's table keeps a hidden copy of every cell for sizing)."""
    return next((locator.nth(i) for i in range(locator.count()) if locator.nth(i).is_visible()), None)


def _advise(page: Any, done: str, marker: str) -> Any:
    """Click Advise; once the table is filled, the learning_rate row's reason cell (it holds ``marker``)."""
    page.locator("#tl-tune-advise").click()
    _wait_for(lambda: done in page.locator("#tl-tune-summary").inner_text(), 240, "the advice")
    cells = page.locator("#tl-tune-table").get_by_text(marker)
    return _wait_for(lambda: _visible(cells), 30, "the learning_rate reason in the table")


def _on_screen(cell: Any) -> None:
    """The reason cell is visible, wide enough to read, and ends inside the 1280-pixel window."""
    cell.scroll_into_view_if_needed()
    box = cell.bounding_box()
    assert box is not None and box["width"] > 300, box
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1280, box


def test_advise_table_shows_the_source_and_a_visible_reason(page: Any, tiny_model_dir: Path) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    box = page.locator("#field-model_name_or_path input")
    box.click()
    box.fill(str(tiny_model_dir))
    box.press("Enter")
    page.keyboard.press("Escape")
    _pick(page, "field-dataset", "identity_en")
    page.locator("#field-cutoff_len input").fill("64")
    page.get_by_role("tab", name="Tune").click()
    page.locator("#tl-tune-measure input").check()
    page.locator("#tl-tune-lr-steps input").fill("20")
    cell = _advise(page, "recommended values", "source: ")
    reason = cell.inner_text()
    assert re.search(r"source: (recipe|recipe \+ lr-find|lr-find) \(recipe 0\.\d+", reason), reason
    assert re.search(r"lr-find \d", reason) and "study none found" in reason, reason  # every source
    summary = page.locator("#tl-tune-summary").inner_text()
    assert "Learning rate" in summary and "source:" in summary
    assert page.locator("#tl-tune-plot img").count() == 1  # the range test's curve
    _on_screen(cell)
    if folder := os.environ.get("TUNELAB_SCREENSHOTS"):
        page.screenshot(path=str(Path(folder) / "tune-advise-lr.png"), full_page=True)

    _pick(page, "tl-lang", "中文")
    page.locator("#tl-tune-measure input").uncheck()
    cell = _advise(page, "项推荐值", "来源：")
    reason = cell.inner_text()
    assert "来源：推荐规则" in reason and "学习率范围测试 未运行" in reason, reason
    assert "学习率" in page.locator("#tl-tune-summary").inner_text()
    _on_screen(cell)
    if folder:
        page.screenshot(path=str(Path(folder) / "tune-advise-lr-zh.png"), full_page=True)
