"""Multi-process trials: `sweep`/`tune --nproc-per-node 2` train each trial with 2 processes (gloo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.config import config_from_dict
from tunelab.runs import RunDir
from tunelab.tune.study import tune
from tunelab.tune.sweep import sweep
from tunelab.tune.trials import read_trials

from .test_sweep import tiny_values


@pytest.mark.slow
def test_sweep_and_tune_trials_train_with_two_processes(tiny_model_dir: Path, tmp_path: Path) -> None:
    base = config_from_dict(tiny_values(tiny_model_dir, lora_dropout=0.0))
    result = sweep(base, tmp_path / "sweep", [{"learning_rate": 1e-3}], nproc_per_node=2)
    (trial,) = result.trials
    assert trial.status == "complete", trial.reason
    run = RunDir(trial.run_dir)
    assert run.read_metrics()["world_size"] == 2
    assert [r["current_steps"] for r in run.read_log() if "loss" in r] == [2, 4]  # one writer
    assert trial.value == pytest.approx(run.read_metrics()["eval_loss"])

    study = tune(base, tmp_path / "tune", n_trials=1, nproc_per_node=2)
    (done,) = read_trials(study.study_dir)
    assert done.status == "complete", done.reason
    assert RunDir(done.run_dir).read_metrics()["world_size"] == 2
