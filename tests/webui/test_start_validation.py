"""The web UI's Start refuses a config that cannot train before any job or run directory exists."""

from __future__ import annotations

from pathlib import Path

from tunelab.webui.context import UIContext
from tunelab.webui.jobs import JobManager
from tunelab.webui.paths import PathGuard
from tunelab.webui.tabs.train import start_training


def _ctx(tmp_path: Path, keys: list[str]) -> UIContext:
    ctx = UIContext(
        runs_dir=tmp_path / "runs",
        state_dir=tmp_path / "state",
        jobs=JobManager(tmp_path / "state", cwd=tmp_path),
        guard=PathGuard([tmp_path]),
    )
    ctx.fields = dict.fromkeys(keys)
    return ctx


def test_start_without_a_dataset_is_refused_before_launching(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, ["model_name_or_path", "dataset", "output_dir"])
    job, _, html = start_training(ctx, "en", ["tiny:llama", None, str(tmp_path / "runs" / "r1")])
    assert job is None and "training needs a dataset" in html
    assert not (tmp_path / "runs" / "r1").exists() and ctx.jobs.latest("train") is None


def test_start_with_a_cross_group_problem_is_refused(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, ["model_name_or_path", "dataset", "load_best_model_at_end"])
    job, _, html = start_training(ctx, "en", ["tiny:llama", "instruct_en", True])
    assert job is None and "load_best_model_at_end=true needs evaluations" in html
