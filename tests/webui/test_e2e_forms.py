"""Number boxes in real Chromium: an arrow key nudges a learning rate, unset values show empty."""

from __future__ import annotations

from typing import Any

import pytest

from tunelab.webui.forms import UNSET_PLACEHOLDER


def test_arrow_key_nudges_the_learning_rate_and_unset_boxes_are_empty(page: Any) -> None:
    lr = page.locator("#field-learning_rate input")
    lr.wait_for()
    assert float(lr.input_value()) == pytest.approx(1e-4)
    lr.focus()
    lr.press("ArrowUp")
    assert float(lr.input_value()) == pytest.approx(1.1e-4)  # was 1.0001 with Gradio's step of 1

    page.get_by_text("LoRA settings", exact=True).click()
    alpha = page.locator("#field-lora_alpha").locator("input, textarea").first
    alpha.wait_for()
    assert alpha.input_value() == "" and alpha.get_attribute("placeholder") == UNSET_PLACEHOLDER

    page.get_by_role("tab", name="Tune").click()
    budget = page.locator("#tl-tune-gpu-mem").locator("input, textarea").first
    budget.wait_for()
    assert budget.input_value() == "" and budget.get_attribute("placeholder") == UNSET_PLACEHOLDER
