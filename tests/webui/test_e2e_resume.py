"""Resume in real headless Chromium: train, abort, resume from the Train tab, abort, resume from the
Runs tab, to the end; and Start on a run directory that holds a run, in Chinese.

The app is served in-process (conftest.py) and trains the tiny offline model in real `tunelab train`
subprocesses. A failing test saves a screenshot and names its path in the failure.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tunelab.runs.rundir import RunDir
from tunelab.runs.train_loss import logged_loss_mean

TOTAL = 300  # steps of the whole run: the aborts land well before its end


def _pick(page: Any, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def _fill(page: Any, key: str, value: str) -> None:
    page.locator(f"#field-{key}").locator("input, textarea").first.fill(value)


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _progress(page: Any) -> tuple[str, int]:
    node = page.locator("#tl-train-progress .tl-progress")
    if node.count() == 0:
        return "", 0
    return node.get_attribute("data-status") or "", int(node.get_attribute("data-step") or 0)


def _status(page: Any) -> str:
    return page.locator("#tl-train-status").inner_text()


def _fill_run(page: Any, tiny_model_dir: Path, run_dir: Path) -> None:
    box = page.locator("#field-model_name_or_path input")
    box.click()
    box.fill(str(tiny_model_dir))
    box.press("Enter")
    page.keyboard.press("Escape")
    _pick(page, "field-dataset", "identity_en")
    _fill(page, "cutoff_len", "128")
    _fill(page, "output_dir", str(run_dir))


def _abort(page: Any, after_step: int) -> Path:
    """Abort once the run is past ``after_step``; the checkpoint the abort saved."""
    _wait_for(lambda: _progress(page)[1] > after_step, 300, f"steps past {after_step}")
    page.locator("#tl-train-abort").click()
    _wait_for(lambda: "checkpoint saved" in _status(page), 120, "the aborted status")
    assert _progress(page)[0] == "aborted"
    return Path(_status(page).split("checkpoint saved at ")[1].split(". ")[0])


@pytest.mark.slow
@pytest.mark.ci
def test_abort_then_resume_from_the_train_tab_and_the_runs_tab_to_the_end(
    page: Any, served_app: tuple[Any, str], tiny_model_dir: Path, webui_root: Path
) -> None:
    jobs = served_app[0].tunelab_context.jobs
    run_dir = webui_root / "runs" / "e2e-resume"
    _fill_run(page, tiny_model_dir, run_dir)
    page.get_by_text("Extra settings", exact=True).click()
    box = page.locator("#field-max_steps input")
    _wait_for(lambda: box.count() and box.input_value() != "", 10, "the extra settings to mount")
    page.wait_for_timeout(500)
    for key, value in (("max_steps", TOTAL), ("logging_steps", 1), ("save_steps", 1000)):
        _fill(page, key, str(value))
    page.locator("#tl-train-start").click()

    first = _abort(page, 2)
    assert first.parent == run_dir and "set “Resume” to “auto: last checkpoint”" in _status(page)
    n_jobs = len(jobs.jobs("train"))

    # Start again as it is: refused at once, naming the directory and both controls
    page.locator("#tl-train-start").click()
    _wait_for(lambda: "already holds" in _status(page), 15, "the refusal")
    assert str(run_dir) in _status(page) and "“Overwrite output dir”" in _status(page)
    assert len(jobs.jobs("train")) == n_jobs  # nothing was launched

    _pick(page, "field-resume_from_checkpoint", f"auto: last checkpoint ({first.name})")
    page.locator("#tl-train-start").click()
    _wait_for(lambda: _progress(page)[0] == "running", 30, "the resumed job")
    step_at_first = int(first.name.split("-")[1])
    second = _abort(page, step_at_first + 2)
    assert int(second.name.split("-")[1]) > step_at_first

    page.get_by_role("tab", name="Runs").click()
    page.locator("#tl-runs-refresh").click()
    _pick(page, "tl-runs-selected", "e2e-resume")
    resume = page.locator("#tl-runs-resume")
    _wait_for(lambda: resume.is_enabled(), 20, "the Resume button of an interrupted run")
    assert second.name in page.locator("#tl-runs-details").inner_text()
    resume.click()
    page.locator("#tl-train-progress").wait_for(state="visible")  # back on the Train tab, watching the job
    _wait_for(lambda: "Finished" in _status(page), 300, "the run to finish")
    assert _progress(page) == ("finished", TOTAL)

    run = RunDir(run_dir)
    rows = run.read_log()
    # the loss curve continues across both resumes: every step once, none restarted from 1
    assert [r["current_steps"] for r in rows if "loss" in r] == list(range(1, TOTAL + 1))
    assert [e["checkpoint"] for e in run.read_events() if e["kind"] == "resume"] == [str(first), str(second)]
    # metrics.json's train_loss is the whole run's mean (not the last session's)
    whole = logged_loss_mean(rows, step_key="current_steps")
    assert run.read_metrics()["train_loss"] == pytest.approx(whole, rel=2e-3)


def test_start_on_a_run_in_chinese_names_the_resume_and_overwrite_controls(
    page: Any, tiny_model_dir: Path, webui_root: Path
) -> None:
    run_dir = webui_root / "runs" / "e2e-resume-zh"
    checkpoint = run_dir / "checkpoint-10"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 10}), encoding="utf-8")
    (checkpoint / "rng_state.pth").write_bytes(b"")
    _pick(page, "tl-lang", "中文")
    page.get_by_role("tab", name="训练").wait_for()
    _fill_run(page, tiny_model_dir, run_dir)
    page.locator("#tl-train-start").click()
    _wait_for(lambda: "已有" in _status(page), 15, "the refusal in Chinese")
    text = _status(page)
    assert str(run_dir) in text and "截至 checkpoint-10 的检查点" in text
    assert "“断点续训”设为“auto：最新检查点”" in text and "“覆盖输出目录”" in text
    # the Resume control offers the directory's checkpoint, labelled in Chinese
    page.locator("#field-resume_from_checkpoint input").click()
    page.get_by_role("option", name="auto：最新检查点（checkpoint-10）", exact=True).wait_for()
    page.get_by_role("option", name="checkpoint-10", exact=True).wait_for()
    page.keyboard.press("Escape")
