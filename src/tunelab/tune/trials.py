"""One trial of a study: a parameter set becomes an ordinary run directory plus ``trial.json``.

Used by `sweep` and `tune` alike. A trial never raises for what its parameters cause: a config the
schema rejects, the health monitor stopping a diverging run, running out of memory, or a metric
that is NaN all become a failed trial with the reason, so the study goes on.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig
from tunelab.errors import ConfigError, TunelabError
from tunelab.runs.rundir import RunDir, atomic_write_text
from tunelab.tune.space import apply_params, short_label

__all__ = [
    "TRIAL_FILE",
    "TrialOutcome",
    "check_objective",
    "default_study_dir",
    "init_worker",
    "read_trials",
    "run_trial",
    "say",
    "trial_dir_name",
]

TRIAL_FILE = "trial.json"

# Errors a trial's parameters can cause inside training (torch reports numerical and shape problems
# as RuntimeError/ValueError): recorded as a failed trial instead of ending the whole study.
_TRIAL_ERRORS = (TunelabError, RuntimeError, ValueError, ArithmeticError)


@dataclass
class TrialOutcome:
    """How one trial ended: status is complete, pruned, failed or interrupted."""

    number: int
    params: dict[str, Any]
    run_dir: Path
    status: str
    value: float | None = None
    reason: str | None = None
    seconds: float = 0.0
    steps: int | None = None  # optimizer steps it ran
    total_steps: int | None = None  # steps it was scheduled to run
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        row["run_dir"] = str(self.run_dir)
        return row

    def describe(self, metric: str) -> str:
        """One progress line: ``trial 3: pruned (4 s) — pruned at step 2: ...``."""
        value = f" {metric}={self.value:.4f}" if self.value is not None else ""
        reason = f" — {self.reason}" if self.reason and self.status != "complete" else ""
        return f"trial {self.number}: {self.status}{value} ({self.seconds:.0f} s){reason}"

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> TrialOutcome:
        known = {k: row[k] for k in cls.__dataclass_fields__ if k in row}
        known["run_dir"] = Path(known["run_dir"])
        return cls(**known)


def say(console: Any, text: str) -> None:
    """Print a progress line of a study when there is a console (library use passes none)."""
    if console is not None:
        console.print(text, highlight=False)


def check_objective(config: RunConfig) -> None:
    """Refuse a study whose metric its trials can never report (before any trial runs)."""
    metric = config.tune.metric
    if metric.startswith("eval_") and config.training.eval_strategy == "no":
        raise ConfigError(
            f"tune.metric={metric} needs evaluations, but eval_strategy=no",
            "set eval_strategy=steps eval_steps=N with val_size=0.1 (or eval_dataset); evaluations during "
            "training also let the pruner stop bad trials early",
        )


def default_study_dir(kind: str, config_path: str | Path | None) -> Path:
    """runs/<kind>-<config file stem> (runs/tune-sft_lora_tiny): the same command finds its study again."""
    stem = Path(config_path).stem if config_path else "cli"
    return Path("runs") / f"{kind}-{stem}"


def trial_dir_name(number: int, params: Mapping[str, Any]) -> str:
    """trial-003-lr0.0003-r16: sortable by number, readable by settings."""
    label = short_label(params)
    return f"trial-{number:03d}" + (f"-{label}" if label else "")


def _steps(run: RunDir, metrics: Mapping[str, Any]) -> tuple[int | None, int | None]:
    rows = run.read_log()
    total = rows[-1].get("total_steps") if rows else None
    done = metrics.get("global_step", rows[-1].get("current_steps") if rows else None)
    return done, total


def _judge(result: Any, metric: str) -> tuple[str, float | None, str | None]:
    """(status, value, reason) of a run that trained to some end."""
    if result.status == "interrupted":
        return "interrupted", None, "interrupted (Ctrl-C / SIGTERM); the checkpoint is kept"
    if result.status == "stopped":
        return "failed", None, f"stopped by the health monitor: {result.stop_reason}"
    if result.status == "pruned":
        return "pruned", None, result.stop_reason
    value = result.metrics.get(metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        have = ", ".join(sorted(k for k, v in result.metrics.items() if isinstance(v, (int, float))))
        return "failed", None, f"metric {metric} is not in metrics.json (it has: {have})"
    if not math.isfinite(value):
        return "failed", None, f"{metric} is {value}"
    return "complete", float(value), None


def run_trial(
    base: RunConfig,
    params: Mapping[str, Any],
    run_dir: Path,
    number: int,
    metric: str,
    *,
    callbacks: Sequence[Any] = (),
    console: Any = None,
    extra: Mapping[str, Any] | None = None,
    nproc_per_node: int = 1,
) -> TrialOutcome:
    """Train ``base`` with ``params`` into ``run_dir``; never raises for what the parameters cause.

    The outcome is also written to ``run_dir/trial.json`` so that summaries, `runs list` and the
    web UI read trials without the study's storage. ``nproc_per_node > 1``: the trial trains with
    that many processes (tune/multiproc.py), without ``callbacks`` (they cannot reach the children).
    """
    from tunelab.train import train

    started = time.perf_counter()
    run = RunDir(run_dir)
    outcome = TrialOutcome(number, dict(params), run_dir, "failed", extra=dict(extra or {}))
    try:
        config = apply_params(base, params)
        output = config.output.model_copy(update={"output_dir": str(run_dir), "overwrite_output_dir": True})
        training = config.training.model_copy(update={"resume_from_checkpoint": None})
        config = config.model_copy(update={"output": output, "training": training})
        if nproc_per_node > 1:
            from tunelab.tune.multiproc import train_in_processes

            result = train_in_processes(config, nproc_per_node, console=console)
        else:
            result = train(config, console=console, callbacks=callbacks)
    except _TRIAL_ERRORS as exc:
        expected = isinstance(exc, TunelabError)
        outcome.reason = exc.message if expected else f"{type(exc).__name__}: {exc}"
        detail = {} if expected else {"traceback": traceback.format_exc(limit=8)}
        run.write_event("trial_failed", outcome.reason, **detail)
        outcome.steps, outcome.total_steps = _steps(run, {})
    else:
        outcome.status, outcome.value, outcome.reason = _judge(result, metric)
        outcome.steps, outcome.total_steps = _steps(run, result.metrics)
        if outcome.status == "pruned":
            run.write_event("pruned", outcome.reason or "pruned", step=outcome.steps)
    outcome.seconds = round(time.perf_counter() - started, 2)
    atomic_write_text(
        run_dir / TRIAL_FILE, json.dumps(outcome.to_json(), indent=2, ensure_ascii=False) + "\n"
    )
    return outcome


def init_worker(threads: int) -> None:
    """Set up a trial worker process: its share of the CPU threads, quiet libraries."""
    import torch

    from tunelab.quiet import quiet_libraries

    torch.set_num_threads(threads)
    quiet_libraries()


def read_trials(study_dir: Path) -> list[TrialOutcome]:
    """Every trial recorded under ``study_dir`` (its trial-*/trial.json), by trial number."""
    outcomes = []
    for path in sorted(Path(study_dir).glob(f"trial-*/{TRIAL_FILE}")):
        try:
            outcomes.append(TrialOutcome.from_json(json.loads(path.read_text(encoding="utf-8"))))
        except (json.JSONDecodeError, KeyError, TypeError):  # a trial.json being written or damaged
            continue
    return sorted(outcomes, key=lambda o: o.number)
