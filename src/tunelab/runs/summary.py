"""The headline facts of one run directory (status, model, steps, final losses, config), read from
its files alone: what `runs list`, `runs compare` and study summaries show. No torch import."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunelab.runs.rundir import RunDir
from tunelab.runs.train_loss import logged_loss_mean

__all__ = ["RunSummary", "flatten_config", "is_run_dir", "summarize_run"]


def is_run_dir(path: Path) -> bool:
    """A directory `tunelab train` wrote (its resolved config.yaml is the first file it writes), or a
    study trial that failed before training (its trial.json says why)."""
    return (path / "config.yaml").is_file() or (path / "trial.json").is_file()


def flatten_config(values: dict[str, Any]) -> dict[str, Any]:
    """Flat keys as they are; nested groups (health:, tune:, ...) as dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            for sub, sub_value in value.items():
                flat[f"{key}.{sub}"] = sub_value
        else:
            flat[key] = value
    return flat


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


@dataclass
class RunSummary:
    """What a person looks at first about a run."""

    path: Path
    name: str
    status: str
    stage: str | None = None
    model: str | None = None
    method: str | None = None
    steps: int | None = None
    total_steps: int | None = None
    train_loss: float | None = None  # the whole run's mean training loss (runs/train_loss.py)
    eval_loss: float | None = None  # final evaluation loss (or the last one logged)
    when: str = ""
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # flat, nested groups dotted


def _status(run: RunDir, metrics: dict[str, Any]) -> tuple[str, str | None]:
    trial_file = run.path / "trial.json"
    trial: dict[str, Any] = {}
    if trial_file.is_file():
        try:
            trial = json.loads(trial_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            trial = {}
    if trial.get("status") in ("failed", "pruned"):
        return str(trial["status"]), trial.get("reason")
    if "status" in metrics:
        return str(metrics["status"]), metrics.get("stopped_by")
    events = run.read_events()
    if any(e.get("kind") == "interrupted" for e in events[-3:]):
        return "interrupted", None
    return "incomplete", None


def summarize_run(path: str | Path, *, name: str | None = None) -> RunSummary:
    """Read ``path``'s config.yaml, metrics.json, trainer_log.jsonl and events into a RunSummary."""
    run = RunDir(path)
    try:
        loaded = (
            yaml.safe_load(run.config_path.read_text(encoding="utf-8")) if run.config_path.is_file() else {}
        )
    except yaml.YAMLError:
        loaded = {}
    config = flatten_config(loaded if isinstance(loaded, dict) else {})
    metrics = run.read_metrics()
    rows = run.read_log()
    status, reason = _status(run, metrics)
    evals = [r["eval_loss"] for r in rows if _number(r.get("eval_loss")) is not None]
    stamps = [p.stat().st_mtime for p in (run.metrics_path, run.log_path, run.config_path) if p.is_file()]
    steps = metrics.get("global_step", rows[-1].get("current_steps") if rows else None)
    return RunSummary(
        path=run.path,
        name=name or run.path.name,
        status=status,
        stage=config.get("stage"),
        model=config.get("model_name_or_path"),
        method=config.get("finetuning_type"),
        steps=steps,
        total_steps=rows[-1].get("total_steps") if rows else None,
        train_loss=final_train
        if (final_train := _number(metrics.get("train_loss"))) is not None
        else logged_loss_mean(rows, step_key="current_steps"),  # a run still going: its steps so far
        eval_loss=final_eval
        if (final_eval := _number(metrics.get("eval_loss"))) is not None
        else (evals[-1] if evals else None),
        when=time.strftime("%Y-%m-%d %H:%M", time.localtime(max(stamps))) if stamps else "",
        reason=reason,
        metrics=metrics,
        config=config,
    )
