"""Early stopping: the patience rule, and a tiny overfitting run that halves the LR, then stops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tunelab.config import config_from_dict
from tunelab.errors import ConfigError
from tunelab.runs import RunDir
from tunelab.train import train
from tunelab.train.builders import build_callbacks
from tunelab.train.early_stopping import EarlyStopCallback, PatienceTracker


def overfitting_config(model_dir: Path, out: Path, **overrides: Any):
    """Full fine-tuning of the tiny model on 8 samples at a high LR: eval loss turns up within ~6 steps."""
    values = {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "finetuning_type": "full",
        "dataset": "instruct_en",
        "dataset_dir": "builtin",
        "template": "chatml",
        "cutoff_len": 128,
        "max_samples": 16,
        "val_size": 8,
        "per_device_train_batch_size": 8,
        "learning_rate": 1e-2,
        "lr_scheduler_type": "constant",
        "max_steps": 30,
        "logging_steps": 2,
        "eval_strategy": "steps",
        "eval_steps": 2,
        "save_steps": 100,
        "output_dir": str(out),
        "compute_type": "fp32",
        "disable_tqdm": True,
        "plot_loss": False,
        "health": {"overfit_action": "off"},  # early stopping alone decides here
        **overrides,
    }
    return config_from_dict(values)


def test_patience_counts_evaluations_without_improvement() -> None:
    tracker = PatienceTracker(patience=2, min_delta=0.01)
    outcomes = [tracker.update(v, s) for s, v in [(1, 3.0), (2, 2.5), (3, 2.495), (4, 2.6), (5, 2.7)]]
    assert outcomes == ["improved", "improved", "waiting", "plateau", "plateau"]
    assert (tracker.best, tracker.best_step) == (2.5, 2)  # 2.495 is within min_delta: no improvement
    higher = PatienceTracker(patience=1, lower_is_better=False)
    assert [higher.update(v, s) for s, v in [(1, 0.5), (2, 0.7), (3, 0.6)]] == [
        "improved",
        "improved",
        "plateau",
    ]


def test_early_stopping_needs_evaluations(tiny_model_dir: Path, tmp_path: Path) -> None:
    # refused where the config is built (config.validate), before any model loads
    with pytest.raises(ConfigError, match="early_stopping.enabled=true needs evaluations") as info:
        overfitting_config(tiny_model_dir, tmp_path, eval_strategy="no", early_stopping={"enabled": True})
    assert "eval_strategy=steps" in info.value.hint
    callbacks, _ = build_callbacks(overfitting_config(tiny_model_dir, tmp_path), RunDir(tmp_path))
    assert not any(isinstance(cb, EarlyStopCallback) for cb in callbacks)  # off by default


def test_plateau_halves_the_lr_then_stops_keeping_the_best_checkpoint(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    early = {"enabled": True, "patience": 1, "on_plateau": "halve_lr_then_stop"}
    train(overfitting_config(tiny_model_dir, out, save_total_limit=1, early_stopping=early))
    run = RunDir(out)
    events = [e for e in run.read_events() if e["kind"] == "early_stopping"]
    assert [e["action"] for e in events] == ["halve_lr", "stop"]
    halved, stopped = events
    assert all(e["message_zh"] and e["message_zh"] != e["message"] for e in events)  # shown by the web UI
    evals = {r["current_steps"]: r["eval_loss"] for r in run.read_log() if "eval_loss" in r}
    best_step = min((s for s in evals if s <= stopped["step"]), key=lambda s: evals[s])
    assert stopped["best_step"] == best_step and stopped["best"] == pytest.approx(evals[best_step])
    # the halving shows in trainer_log.jsonl: every row after it logs half the configured rate
    rates = {r["current_steps"]: r["learning_rate"] for r in run.read_log() if "learning_rate" in r}
    assert halved["new_learning_rate"] == pytest.approx(5e-3)
    assert all(lr == pytest.approx(1e-2) for s, lr in rates.items() if s <= halved["step"])
    after = [lr for s, lr in rates.items() if s > halved["step"]]
    assert after and all(lr == pytest.approx(5e-3) for lr in after)
    # stopped at the second plateau, well before max_steps; the best checkpoint survived save_total_limit=1
    assert max(rates) == stopped["step"] < 30
    best = out / f"checkpoint-{best_step}"
    assert stopped["best_checkpoint"] == str(best) and (best / "model.safetensors").is_file()
    assert str(best) in stopped["message"]
