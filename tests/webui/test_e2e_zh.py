"""The Chinese web UI in real Chromium shows no English: every tab, every accordion, and the job view
after a tiny training run, scanned for ASCII words outside the allow-list (tunelab.webui.i18n_scan).

The browser reports a Chinese locale, so Gradio's own texts (footer, upload areas) are Chinese too.
Commands, YAML, logs and chat messages are code or user text and are not scanned.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tunelab.webui.i18n_scan import untranslated

# text nodes inside these are code, logs, user data or Gradio's hidden machinery
_SKIP = "code, pre, textarea, .cm-editor, .message, [data-testid='bot'], [data-testid='user'], script, style"
_VISIBLE_TEXTS = """(skip) => {
    const out = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const node = walker.currentNode, el = node.parentElement, text = node.textContent.trim();
        if (!el || !text || el.closest(skip)) continue;
        if (el.checkVisibility && !el.checkVisibility({visibilityProperty: true})) continue;
        out.push(text);
    }
    for (const input of document.querySelectorAll("input[placeholder], textarea[placeholder]")) {
        if (input.checkVisibility() && input.placeholder) out.push(input.placeholder);
    }
    return out;
}"""
_TABS = ("训练", "调参", "评估与预测", "对话", "导出", "运行记录")
_ZH_NAVIGATOR = """
Object.defineProperty(navigator, 'language', {get: () => 'zh-CN'});
Object.defineProperty(navigator, 'languages', {get: () => ['zh-CN', 'zh']});
"""


def _wait_for(predicate: Any, timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _pick(page: Any, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def _english_on_page(page: Any, where: str) -> list[str]:
    """'where: text -> words' for every visible text holding English words."""
    found = []
    for text in dict.fromkeys(page.evaluate(_VISIBLE_TEXTS, _SKIP)):
        if words := untranslated(text):
            found.append(f"{where}: {text[:120]!r} -> {words}")
    return found


def _open_accordions(page: Any) -> None:
    """Open every closed accordion of the visible tab, so that its fields are scanned too."""
    for button in page.locator("button.label-wrap:not(.open)").all():
        if button.is_visible():
            button.click()
            page.wait_for_timeout(200)


@pytest.fixture
def zh_page(browser: Any, served_app: tuple[Any, str]) -> Any:
    """A tab whose browser says it is Chinese, with the UI switched to 中文."""
    tab = browser.new_page()
    tab.set_default_timeout(30_000)
    tab.add_init_script(_ZH_NAVIGATOR)
    tab.goto(served_app[1])
    tab.locator("#tl-lang").wait_for()
    _pick(tab, "tl-lang", "中文")
    tab.get_by_role("tab", name="训练").wait_for()
    tab.locator("#field-learning_rate").get_by_text("学习率", exact=True).wait_for()
    yield tab
    tab.close()


@pytest.mark.slow
@pytest.mark.ci
def test_chinese_ui_has_no_english_before_and_after_a_training_job(
    zh_page: Any, served_app: tuple[Any, str], tiny_model_dir: Path, webui_root: Path
) -> None:
    page, ctx = zh_page, served_app[0].tunelab_context
    found: list[str] = []
    for name in _TABS:
        page.get_by_role("tab", name=name).click()
        page.wait_for_timeout(600)
        _open_accordions(page)
        found += _english_on_page(page, name)

    # a tiny training run, then what the job view shows about it
    _wait_for(lambda: ctx.jobs.latest("train", running=True) is None, 120, "no other training job")
    page.get_by_role("tab", name="训练").click()
    run_dir = webui_root / "runs" / "zh1"
    box = page.locator("#field-model_name_or_path input")
    box.click()
    box.fill(str(tiny_model_dir))
    box.press("Enter")
    page.keyboard.press("Escape")
    _pick(page, "field-dataset", "identity_zh")
    extra = page.locator("button.label-wrap", has_text="更多设置")
    if "open" not in (extra.get_attribute("class") or ""):
        extra.click()
    page.locator("#field-max_steps input").wait_for()
    page.wait_for_timeout(800)  # let the section mount before typing into it
    for key, value in (("cutoff_len", "64"), ("max_steps", "6"), ("logging_steps", "1"), ("save_steps", "3")):
        page.locator(f"#field-{key}").locator("input, textarea").first.fill(value)
    page.locator("#field-output_dir").locator("input, textarea").first.fill(str(run_dir))
    page.locator("#tl-train-start").click()
    _wait_for(
        lambda: (
            page.locator("#tl-train-progress .tl-progress").get_attribute("data-status") == "finished"
            if page.locator("#tl-train-progress .tl-progress").count()
            else False
        ),
        300,
        "the job to finish",
    )
    _wait_for(lambda: "训练完成" in page.locator("#tl-train-status").inner_text(), 30, "the finished status")
    page.locator("#tl-loss-plot img").wait_for()
    assert "第 6/6 步" in page.locator("#tl-train-progress").inner_text()
    found += _english_on_page(page, "训练（任务结束后）")

    # the curves the page shows, as the UI drew them (legend, axes, title)
    from tunelab.webui.tabs.train import poll_training

    job = ctx.jobs.latest("train")
    view = poll_training(ctx, "zh", job.id)
    for figure in (view["loss"], view["lr"]):
        for text in figure.findobj(lambda a: hasattr(a, "get_text")):
            if words := untranslated(text.get_text()):
                found.append(f"plot: {text.get_text()!r} -> {words}")

    page.get_by_role("tab", name="运行记录").click()
    page.locator("#tl-runs-refresh").click()
    _wait_for(lambda: "zh1" in page.locator("#tl-runs-table").inner_text(), 30, "the run in the table")
    found += _english_on_page(page, "运行记录（训练后）")
    assert found == [], "\n".join(found)
