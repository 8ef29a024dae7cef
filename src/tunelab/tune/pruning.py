"""Report each evaluation of a trial to Optuna and stop the run cleanly when the pruner says so.

The run then ends like any other (final metrics, weights, plots written) with status "pruned", and
the stop reason names the step, the value and the pruner. Optuna's own integration callback raises
inside the Trainer instead, which leaves a half-written run directory.
"""

from __future__ import annotations

import math
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

__all__ = ["PruningCallback"]


class PruningCallback(TrainerCallback):
    """Calls ``trial.report(metric, step)`` after every evaluation, then ``trial.should_prune()``."""

    kind = "pruned"  # read by train/runner.py: the run's status becomes "pruned"

    def __init__(self, trial: Any, metric: str, pruner_name: str) -> None:
        self.trial = trial
        self.metric = metric
        self.pruner_name = pruner_name
        self.stop_reason: str | None = None
        self.reported: list[tuple[int, float]] = []

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kw: Any,
    ) -> None:
        value = (metrics or {}).get(self.metric)
        # a NaN is the health monitor's business; Optuna would store it as a missing value anyway
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        step = state.global_step
        self.trial.report(float(value), step)
        self.reported.append((step, float(value)))
        if self.stop_reason is None and self.trial.should_prune():
            self.stop_reason = (
                f"pruned at step {step}: {self.metric}={value:.4g}, behind earlier trials "
                f"at this step ({self.pruner_name} pruner)"
            )
            control.should_training_stop = True
