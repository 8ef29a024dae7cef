"""A job started by an earlier web UI process is re-attached through its run directory's own status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tunelab.runs.rundir import RunDir
from tunelab.webui.context import UIContext
from tunelab.webui.jobs import JobManager
from tunelab.webui.paths import PathGuard
from tunelab.webui.tabs.train import poll_training


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _earlier_ui_job(tmp_path: Path, run_dir: Path) -> str:
    """jobs.json as a UI left it when it was restarted mid-training: the job still "running"."""
    state = tmp_path / "state"
    state.mkdir()
    record = {
        "id": "20261202-010000-abcdef",
        "kind": "train",
        "argv": [sys.executable, "-m", "tunelab", "train", f"output_dir={run_dir}"],
        "pid": _dead_pid(),
        "log_path": str(state / "train.log"),
        "started": time.time() - 5,
        "run_dir": str(run_dir),
    }
    (state / "jobs.json").write_text(json.dumps([record]), encoding="utf-8")
    return record["id"]


def _ran(run_dir: Path, steps: int = 150) -> RunDir:
    run = RunDir(run_dir)
    for step in (50, 100, steps):
        run.write_log_row({"current_steps": step, "total_steps": 150, "loss": 3.0, "percentage": step / 1.5})
    return run


def _poll(tmp_path: Path, job_id: str, lang: str = "en") -> dict:
    jobs = JobManager(tmp_path / "state", cwd=tmp_path)  # the restarted UI
    ctx = UIContext(runs_dir=tmp_path, state_dir=tmp_path / "state", jobs=jobs, guard=PathGuard([tmp_path]))
    return poll_training(ctx, lang, job_id)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_run_that_finished_while_the_ui_was_down_shows_finished(tmp_path: Path, lang: str) -> None:
    run_dir = tmp_path / "runs" / "sft"
    job_id = _earlier_ui_job(tmp_path, run_dir)
    _ran(run_dir).write_metrics({"status": "finished", "train_loss": 2.5, "train_runtime": 9.0})
    shown = _poll(tmp_path, job_id, lang)
    assert shown["job"].status == "finished" and not shown["running"]
    assert "data-status='finished'" in shown["progress"] and "data-step='150'" in shown["progress"]
    assert "train_loss=2.5" in shown["status"]
    assert "None" not in shown["status"] and "failed" not in shown["status"].lower()
    # the answer is remembered: a second restart shows the same
    assert JobManager(tmp_path / "state").get(job_id).status == "finished"  # type: ignore[union-attr]


def test_a_run_interrupted_with_a_checkpoint_shows_aborted(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "sft"
    job_id = _earlier_ui_job(tmp_path, run_dir)
    _ran(run_dir, steps=100).write_event("interrupted", "SIGINT received: saved checkpoint-100", step=100)
    assert _poll(tmp_path, job_id)["job"].status == "aborted"


def test_stale_metrics_of_an_earlier_run_in_the_same_folder_do_not_count(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "sft"
    _ran(run_dir).write_metrics({"status": "finished", "train_runtime": 9.0})
    old = time.time() - 3600
    os.utime(run_dir / "metrics.json", (old, old))
    job_id = _earlier_ui_job(tmp_path, run_dir)  # a resume that died without a word
    shown = _poll(tmp_path, job_id)
    assert shown["job"].status == "lost"
    assert "None" not in shown["status"] and "earlier web UI" in shown["status"]
