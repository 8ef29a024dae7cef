"""End to end in real headless Chromium: what a user does with `tunelab webui`, click by click.

The app is served in-process (tests/webui/conftest.py); training and export run as real `tunelab`
subprocesses on the tiny offline model. The tests run in file order: chat and export use the run the
training test stopped. A failing test saves a screenshot and names its path in the failure.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from tunelab.runs.rundir import RunDir


def _shot(page: Any, name: str) -> None:
    """With TUNELAB_SCREENSHOTS=DIR, keep a full-page picture of this moment (for docs and reviews)."""
    folder = os.environ.get("TUNELAB_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _pick(page: Any, elem_id: str, option: str) -> None:
    """Choose ``option`` in the dropdown ``#elem_id``."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def _fill(page: Any, key: str, value: str) -> None:
    """Type into the form field of config key ``key``."""
    page.locator(f"#field-{key.replace('.', '-')}").locator("input, textarea").first.fill(value)


def _open_extra_settings(page: Any) -> None:
    """Open the "Extra settings" section and let its fields mount: Gradio renders a closed accordion's
    children on first open, and a value typed while they mount is replaced by the initial one."""
    page.get_by_text("Extra settings", exact=True).click()
    box = page.locator("#field-max_steps input")
    box.wait_for()
    _wait_for(lambda: box.input_value() != "", 10, "the extra settings to mount")
    page.wait_for_timeout(500)


def _type_custom(page: Any, elem_id: str, value: str) -> None:
    """Enter a value that is not among a dropdown's choices (custom values allowed)."""
    box = page.locator(f"#{elem_id} input")
    box.click()
    box.fill(value)
    box.press("Enter")
    page.keyboard.press("Escape")


def _wait_for(predicate: Any, timeout: float, what: str, every: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _progress(page: Any) -> tuple[str, int, int]:
    node = page.locator("#tl-train-progress .tl-progress")
    if node.count() == 0:
        return "", 0, 0
    return (
        node.get_attribute("data-status") or "",
        int(node.get_attribute("data-step") or 0),
        int(node.get_attribute("data-total") or 0),
    )


def test_language_switch_relabels_the_page(page: Any) -> None:
    lr_label = page.locator("#field-learning_rate").get_by_text("Learning rate", exact=True)
    lr_label.wait_for()  # visible, within the page's default timeout (the app may still be rendering)
    _pick(page, "tl-lang", "中文")
    page.locator("#field-learning_rate").get_by_text("学习率", exact=True).wait_for()
    page.get_by_role("tab", name="训练").wait_for()
    page.locator("#field-learning_rate").get_by_text("峰值学习率。").wait_for()  # the schema's zh help
    assert page.locator("#tl-train-start").inner_text().strip() == "开始"
    _shot(page, "train-zh")
    _pick(page, "tl-lang", "English")
    page.locator("#field-learning_rate").get_by_text("Learning rate", exact=True).wait_for()


def test_train_watch_reload_and_abort(
    page: Any, served_app: tuple[Any, str], tiny_model_dir: Path, webui_root: Path
) -> None:
    run_dir = webui_root / "runs" / "e2e-train"
    _type_custom(page, "field-model_name_or_path", str(tiny_model_dir))
    _pick(page, "field-dataset", "identity_en")
    _fill(page, "cutoff_len", "128")
    _fill(page, "learning_rate", "0.002")
    _open_extra_settings(page)
    _fill(page, "max_steps", "300")
    _fill(page, "logging_steps", "1")
    _fill(page, "save_steps", "100")
    _fill(page, "output_dir", str(run_dir))

    page.locator("#tl-train-preview_cmd").click()
    _wait_for(
        lambda: "tunelab train" in page.locator("#tl-cli-line textarea").input_value(), 20, "the command line"
    )
    cli = page.locator("#tl-cli-line textarea").input_value()
    assert "max_steps=300" in cli and "dataset=identity_en" in cli and "logging_steps=1" in cli

    page.locator("#tl-train-start").click()
    _wait_for(lambda: _progress(page)[1] >= 2, 150, "the first logged steps")
    status, step, total = _progress(page)
    assert status == "running" and total == 300
    assert re.search(r"step \d+/300", page.locator("#tl-train-progress").inner_text())
    first_plot = _wait_for(
        lambda: page.locator("#tl-loss-plot img").get_attribute("src"), 30, "the loss plot"
    )
    _wait_for(lambda: _progress(page)[1] >= step + 2, 60, "more steps")
    _wait_for(
        lambda: page.locator("#tl-loss-plot img").get_attribute("src") not in (None, first_plot),
        30,
        "the loss plot to update",
    )
    assert page.locator("#tl-lr-plot img").count() == 1
    _shot(page, "train-running")

    page.reload()  # a reloaded page re-attaches to the running job
    page.locator("#tl-lang").wait_for()
    _wait_for(
        lambda: _progress(page)[0] == "running" and _progress(page)[1] > step, 30, "re-attaching after reload"
    )

    page.locator("#tl-train-abort").click()
    _wait_for(
        lambda: "checkpoint saved" in page.locator("#tl-train-status").inner_text(), 120, "the aborted status"
    )
    assert _progress(page)[0] == "aborted"
    checkpoint = RunDir(run_dir).latest_checkpoint()
    assert checkpoint is not None and (checkpoint / "adapter_model.safetensors").is_file()
    assert "interrupted" in page.locator("#tl-train-events").inner_text()
    job = served_app[0].tunelab_context.jobs.latest("train")
    assert job.status == "aborted" and job.returncode == 130
    _shot(page, "train-aborted")


def test_lr_find_suggests_a_learning_rate_and_applies_it(page: Any, tiny_model_dir: Path) -> None:
    _type_custom(page, "field-model_name_or_path", str(tiny_model_dir))
    _pick(page, "field-dataset", "identity_en")
    _fill(page, "cutoff_len", "128")
    page.get_by_role("tab", name="Tune").click()
    page.locator("#tl-tune-lr-steps input").fill("30")
    page.locator("#tl-tune-lr-find").click()
    _wait_for(
        lambda: "Suggested learning rate" in page.locator("#tl-tune-summary").inner_text(),
        240,
        "the suggestion",
    )
    summary = page.locator("#tl-tune-summary").inner_text()
    suggestion = float(re.search(r"Suggested learning rate \(source: lr-find\): ([0-9.eE+-]+)", summary)[1])
    assert 0 < suggestion < 1
    assert page.locator("#tl-tune-plot img").count() == 1  # lr_find.png with the suggestion marked
    page.locator("#tl-tune-apply").click()
    _wait_for(lambda: "Applied to the form" in page.locator("#tl-tune-tool-status").inner_text(), 20, "apply")
    _shot(page, "tune-lr-find")
    page.get_by_role("tab", name="Train").click()
    assert float(page.locator("#field-learning_rate input").input_value()) == pytest.approx(suggestion)


def _stopped_checkpoint(served_app: tuple[Any, str]) -> Path:
    job = served_app[0].tunelab_context.jobs.latest("train")
    checkpoint = RunDir(job.run_dir).latest_checkpoint() if job and job.run_dir else None
    if checkpoint is None:
        pytest.fail("needs the checkpoint of test_train_watch_reload_and_abort (run the file in order)")
    return checkpoint


def _choose_model(page: Any, tiny_model_dir: Path, adapter: Path) -> None:
    _type_custom(page, "field-model_name_or_path", str(tiny_model_dir))
    page.locator("#tl-refresh-adapters").click()
    page.wait_for_timeout(500)
    _type_custom(page, "field-adapter_name_or_path", str(adapter))


def test_chat_streams_a_reply(page: Any, served_app: tuple[Any, str], tiny_model_dir: Path) -> None:
    checkpoint = _stopped_checkpoint(served_app)
    _choose_model(page, tiny_model_dir, checkpoint)
    page.get_by_role("tab", name="Chat").click()
    page.locator("#tl-chat-load").click()
    _wait_for(lambda: "Loaded" in page.locator("#tl-chat-status").inner_text(), 90, "the model to load")
    assert str(checkpoint) in page.locator("#tl-chat-status").inner_text()
    page.locator("#tl-chat-max-new-tokens input").fill("24")
    page.locator("#tl-chat-input textarea").fill("Who are you?")
    page.locator("#tl-chat-send").click()
    bot = page.locator("#tl-chatbot .bot, #tl-chatbot [data-testid='bot']").last
    _wait_for(lambda: bot.count() and bot.inner_text().strip(), 60, "the streamed reply")
    _wait_for(lambda: "generated" in page.locator("#tl-chat-status").inner_text(), 60, "the token counts")
    assert page.locator("#tl-chatbot").get_by_text("Who are you?").is_visible()
    _shot(page, "chat")
    page.locator("#tl-chat-clear").click()
    _wait_for(
        lambda: page.locator("#tl-chatbot").get_by_text("Who are you?").count() == 0,
        10,
        "the history to clear",
    )


def test_chat_sessions_keep_their_own_model(
    browser: Any, served_app: tuple[Any, str], tiny_model_dir: Path
) -> None:
    """Two tabs are two sessions: B's Unload leaves A's loaded model and conversation alone."""
    tabs = []
    for _ in range(2):
        tab = browser.new_page()
        tab.set_default_timeout(30_000)
        tab.goto(served_app[1])
        tab.locator("#tl-lang").wait_for()
        _type_custom(tab, "field-model_name_or_path", str(tiny_model_dir))
        tab.get_by_role("tab", name="Chat").click()
        tab.locator("#tl-chat-load").click()
        _wait_for(
            lambda t=tab: "Loaded" in t.locator("#tl-chat-status").inner_text(), 90, "the model to load"
        )
        tabs.append(tab)
    first, second = tabs
    try:
        second.locator("#tl-chat-unload").click()
        _wait_for(lambda: "unloaded" in second.locator("#tl-chat-status").inner_text(), 30, "the unload")
        first.locator("#tl-chat-max-new-tokens input").fill("12")
        first.locator("#tl-chat-input textarea").fill("Who are you?")
        first.locator("#tl-chat-send").click()
        _wait_for(lambda: "generated" in first.locator("#tl-chat-status").inner_text(), 60, "A's reply")
        second.locator("#tl-chat-input textarea").fill("Hi")
        second.locator("#tl-chat-send").click()
        _wait_for(
            lambda: "Load a model first" in second.locator("#tl-chat-status").inner_text(), 30, "B's notice"
        )
        _shot(first, "chat-session-a")
    finally:
        for tab in tabs:
            tab.close()


def test_export_merges_and_verifies(
    page: Any, served_app: tuple[Any, str], tiny_model_dir: Path, webui_root: Path
) -> None:
    checkpoint = _stopped_checkpoint(served_app)
    export_dir = webui_root / "exports" / "merged"
    _choose_model(page, tiny_model_dir, checkpoint)
    page.get_by_role("tab", name="Export").click()
    page.locator("#tl-export-export_dir").locator("input, textarea").first.fill(str(export_dir))
    page.locator("#tl-export-export_size").locator("input").fill("0.001")
    page.locator("#tl-export-start").click()
    _wait_for(
        lambda: "Verification" in page.locator("#tl-export-verdict").inner_text(),
        240,
        "the export's verification",
    )
    verdict = page.locator("#tl-export-verdict").inner_text()
    assert "Verification passed" in verdict, verdict
    assert (export_dir / "export_report.json").is_file()
    assert len(list(export_dir.glob("model-*.safetensors"))) > 1  # 1 MB shards: the tiny model is split
    _shot(page, "export")


def test_runs_tab_lists_the_run(page: Any, served_app: tuple[Any, str]) -> None:
    _stopped_checkpoint(served_app)
    page.get_by_role("tab", name="Runs").click()
    page.locator("#tl-runs-refresh").click()
    _wait_for(lambda: "e2e-train" in page.locator("#tl-runs-table").inner_text(), 20, "the run in the list")
    assert "interrupted" in page.locator("#tl-runs-table").inner_text()
    _shot(page, "runs")


def _fill_small_eval_run(page: Any, tiny_model_dir: Path, max_steps: int) -> None:
    """A tiny run with evaluations (what studies rank trials by)."""
    _type_custom(page, "field-model_name_or_path", str(tiny_model_dir))
    _pick(page, "field-dataset", "identity_en")
    _fill(page, "cutoff_len", "128")
    _fill(page, "val_size", "0.2")
    _open_extra_settings(page)
    _fill(page, "max_steps", str(max_steps))
    _fill(page, "logging_steps", "2")
    _fill(page, "eval_steps", "4")
    _pick(page, "field-eval_strategy", "steps")


@pytest.mark.slow
@pytest.mark.ci
def test_grid_sweep_shows_trials_live_and_applies_the_best(
    page: Any, tiny_model_dir: Path, webui_root: Path
) -> None:
    study = webui_root / "runs" / "sweep-e2e"
    _fill_small_eval_run(page, tiny_model_dir, 8)
    page.get_by_role("tab", name="Tune").click()
    page.get_by_text("grid", exact=True).click()
    page.locator("#tl-study-spec textarea").fill("learning_rate=1e-3,3e-3")
    page.locator("#tl-study-dir").locator("input, textarea").first.fill(str(study))
    page.locator("#tl-study-start").click()
    table = page.locator("#tl-study-trials-table")
    _wait_for(lambda: "running" in table.inner_text(), 120, "a running trial in the table")
    _wait_for(lambda: table.inner_text().count("complete") == 2, 300, "both trials to complete")
    _wait_for(lambda: page.locator("#tl-study-apply-best").is_enabled(), 60, "the best config")
    _shot(page, "tune-sweep")
    from tunelab.tune.trials import read_trials

    trials = read_trials(study)
    best = min(trials, key=lambda t: t.value).params["learning_rate"]
    assert f"learning_rate={best:g}" in table.inner_text()
    page.locator("#tl-study-apply-best").click()
    _wait_for(
        lambda: "Applied the best config" in page.locator("#tl-study-status").inner_text(), 20, "apply best"
    )
    page.get_by_role("tab", name="Train").click()
    assert float(page.locator("#field-learning_rate input").input_value()) == pytest.approx(best)


@pytest.mark.slow
def test_trains_the_real_smollm2_from_the_browser(
    page: Any, served_app: tuple[Any, str], webui_root: Path
) -> None:
    run_dir = webui_root / "runs" / "e2e-smollm2"
    _pick(page, "field-model_name_or_path", "smollm2")
    _pick(page, "field-dataset", "identity_en")
    _fill(page, "cutoff_len", "128")
    _fill(page, "max_samples", "16")
    _open_extra_settings(page)
    _fill(page, "max_steps", "4")
    _fill(page, "logging_steps", "1")
    _fill(page, "output_dir", str(run_dir))
    page.locator("#tl-train-start").click()
    _wait_for(
        lambda: "Finished" in page.locator("#tl-train-status").inner_text(),
        900,
        "the SmolLM2 run to finish",
        2,
    )
    assert _progress(page)[:2] == ("finished", 4)
    assert (run_dir / "adapter_model.safetensors").is_file()
    _shot(page, "train-smollm2")
