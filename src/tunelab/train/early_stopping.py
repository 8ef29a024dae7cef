"""Early stopping: end the run when an evaluation metric stops improving, keeping the best checkpoint.

``early_stopping: {enabled, metric, mode, patience, min_delta, on_plateau}``. After ``patience``
evaluations without an improvement of more than ``min_delta`` the run saves a checkpoint and stops
(``on_plateau: stop``), or first halves the learning rate and stops only at the next plateau
(``on_plateau: halve_lr_then_stop``).

The best checkpoint survives ``save_total_limit``: each new best evaluation requests a save at that
step (so the best weights exist on disk even when save_steps does not line up with eval_steps), and
the Trainer's rotation never deletes ``state.best_model_checkpoint``. The Trainer tracks that itself
when ``metric_for_best_model`` is set; when it is not, this callback records its own best there.
On resume the counters are rebuilt by replaying the evaluations in ``state.log_history``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunelab.config.control import EarlyStoppingArgs
from tunelab.distributed import broadcast_decision, is_writer
from tunelab.errors import ConfigError
from tunelab.runs.rundir import RunDir
from tunelab.train.messages import text
from tunelab.train.monitor import scale_learning_rate

__all__ = ["EarlyStopCallback", "PatienceTracker"]


class PatienceTracker:
    """Best value so far and evaluations since it; ``update`` says improved / waiting / plateau."""

    def __init__(self, *, patience: int, min_delta: float = 0.0, lower_is_better: bool = True) -> None:
        self.patience = patience
        self.min_delta = min_delta
        self.lower_is_better = lower_is_better
        self.best: float | None = None
        self.best_step: int | None = None
        self.n_bad = 0

    def is_improvement(self, value: float) -> bool:
        """Better than the best by more than min_delta (the first value always is)."""
        if self.best is None:
            return True
        if self.lower_is_better:
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, value: float, step: int) -> str:
        """Take one evaluation: "improved", "waiting", or "plateau" after ``patience`` bad ones."""
        if self.is_improvement(value):
            self.best, self.best_step, self.n_bad = value, step, 0
            return "improved"
        self.n_bad += 1
        return "plateau" if self.n_bad >= self.patience else "waiting"


class EarlyStopCallback(TrainerCallback):
    """Apply :class:`PatienceTracker` at each evaluation (see the module docstring).

    After a stop, ``stop_reason`` holds the message and ``best_checkpoint`` the best checkpoint.
    """

    kind = "early_stopping"  # the events.jsonl kind it writes; the runner can name what stopped a run

    def __init__(
        self, settings: EarlyStoppingArgs, run: RunDir, *, lang: str = "en", console: Any = None
    ) -> None:
        self.settings = settings
        self.run = run
        self.lang = lang
        self.console = console
        self.tracker = self._new_tracker()
        self.halved = False
        self.stop_reason: str | None = None
        self.best_checkpoint: Path | None = None
        self._stop_step: int | None = None
        self._training = False

    def _new_tracker(self) -> PatienceTracker:
        s = self.settings
        return PatienceTracker(patience=s.patience, min_delta=s.min_delta, lower_is_better=s.lower_is_better)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        """Rebuild the counters from the evaluations already in the (resumed) state."""
        self._training = True
        self.tracker, self.halved = self._new_tracker(), False
        for row in state.log_history:
            if self.settings.metric in row:
                outcome = self.tracker.update(float(row[self.settings.metric]), int(row.get("step", 0)))
                if outcome == "plateau" and self._halves_first():
                    self.halved, self.tracker.n_bad = True, 0
        if self.tracker.best_step is not None:
            best = Path(args.output_dir) / f"checkpoint-{self.tracker.best_step}"
            self.best_checkpoint = best if best.is_dir() else None

    def _halves_first(self) -> bool:
        return self.settings.on_plateau == "halve_lr_then_stop" and not self.halved

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        if not metrics or not self._training or self._stop_step is not None:
            return  # (evaluations after training, e.g. the final one, decide nothing)
        metric = self.settings.metric
        if metric not in metrics:
            raise ConfigError(
                f"early_stopping.metric={metric} is not among this stage's evaluation metrics {sorted(metrics)}",
                "set early_stopping.metric to one of them (eval_loss is always there)",
            )
        step = state.global_step
        # rank 0's value on every rank: all trackers agree, so all ranks halve or stop at this step
        outcome = self.tracker.update(broadcast_decision(float(metrics[metric])), step)
        if outcome == "improved":
            control.should_save = True  # the best weights must exist on disk to be kept
        elif outcome == "plateau" and self._halves_first():
            old, new = scale_learning_rate(kw.get("optimizer"), kw.get("lr_scheduler"), 0.5)
            self.halved, self.tracker.n_bad = True, 0
            self._report("halve_lr", step, value=metrics[metric], old=old, new=new)
        elif outcome == "plateau":
            control.should_save = True
            control.should_training_stop = True
            self._stop_step = step
            self._report("stop", step, value=metrics[metric])

    def _report(self, action: str, step: int, **numbers: Any) -> None:
        t, s = self.tracker, self.settings
        values = {
            "metric": s.metric,
            "patience": s.patience,
            "best": t.best,
            "best_step": t.best_step,
            "step": step,
            "best_checkpoint": self.best_checkpoint,
            **numbers,
        }
        key = "es_halve" if action == "halve_lr" else "es_stop"
        for lr_key in ("old", "new"):
            if lr_key in values:
                values[lr_key] = f"{values[lr_key]:.3g}"
        shown = text(key, self.lang, **values)
        if action == "stop":
            self.stop_reason = shown
        if is_writer():  # (rank 0 speaks for a multi-process run)
            if self.console is None:
                from rich.console import Console

                self.console = Console(stderr=True)
            self.console.print(shown, markup=False, highlight=False)
        self.run.write_event(
            self.kind,
            text(key, "en", **values),
            message_zh=text(key, "zh", **values),
            step=step,
            action=action,
            metric=s.metric,
            value=float(numbers["value"]),
            best=t.best,
            best_step=t.best_step,
            best_checkpoint=str(self.best_checkpoint) if self.best_checkpoint else None,
            patience=s.patience,
            min_delta=s.min_delta,
            **(
                {"learning_rate": numbers["old"], "new_learning_rate": numbers["new"]}
                if "old" in numbers
                else {}
            ),
        )

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        self._training = False

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        if state.global_step != self.tracker.best_step:
            return
        self.best_checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if args.metric_for_best_model is None:
            # the Trainer is not tracking a best checkpoint: record ours, so rotation keeps it
            state.best_model_checkpoint = str(self.best_checkpoint)
