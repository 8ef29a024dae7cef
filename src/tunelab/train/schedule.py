"""Learning-rate schedules, every one with the same linear warm-up from 0.

Warm-up length: ``warmup_steps`` when > 0, else ``ceil(warmup_ratio x num_training_steps)``.
transformers' own schedules are used where they do the job (``constant`` is mapped to
``constant_with_warmup`` so that it warms up too). Two are ours:

- ``step``: after warm-up, multiply by ``step_gamma`` every ``step_size`` steps (default: a third of
  the steps after warm-up, rounded up, so a run sees at most three levels).
- ``reduce_lr_on_plateau``: warm up, then multiply by ``plateau_factor`` once the metric has not
  improved for more than ``plateau_patience`` evaluations in a row (torch's meaning of patience:
  patience 0 reduces at the first evaluation without improvement), never below ``plateau_min_lr``.
  It is an ordinary per-step scheduler (so warm-up works and the Trainer steps it every step);
  :class:`PlateauCallback` feeds it each evaluation's metric. Its state (scale, best, count) is
  part of ``state_dict()``, so checkpoints keep a reduced learning rate across resume.
  (transformers' ReduceLROnPlateau path cannot warm up: the Trainer skips its per-step call.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunelab.compat.torch import set_last_lr
from tunelab.config.rules import training_problems
from tunelab.config.schema import TrainingArgs
from tunelab.distributed import broadcast_decision
from tunelab.errors import ConfigError
from tunelab.runs.rundir import RunDir

__all__ = [
    "PlateauCallback",
    "PlateauReduction",
    "WarmupPlateauLR",
    "build_scheduler",
    "resolve_step_size",
    "resolve_warmup_steps",
]

# our name -> (transformers get_scheduler name, extra kwargs taken from TrainingArgs)
_HF_SCHEDULES: dict[str, tuple[str, tuple[str, ...]]] = {
    "constant": ("constant_with_warmup", ()),
    "constant_with_warmup": ("constant_with_warmup", ()),
    "linear": ("linear", ()),
    "cosine": ("cosine", ()),
    "cosine_with_restarts": ("cosine_with_restarts", ("num_cycles",)),
    "polynomial": ("polynomial", ("lr_end", "lr_power")),
    "inverse_sqrt": ("inverse_sqrt", ()),
}
_HF_KWARG = {"num_cycles": "num_cycles", "lr_end": "lr_end", "lr_power": "power"}


def resolve_warmup_steps(training: TrainingArgs, num_training_steps: int) -> int:
    """Warm-up steps: warmup_steps when > 0, else ceil(warmup_ratio x num_training_steps)."""
    if training.warmup_steps > 0:
        return training.warmup_steps
    return math.ceil(training.warmup_ratio * num_training_steps)


def resolve_step_size(training: TrainingArgs, num_training_steps: int) -> int:
    """``step`` schedule: steps between decays (step_size, or a third of the post-warm-up steps)."""
    if training.step_size is not None:
        return training.step_size
    after_warmup = num_training_steps - resolve_warmup_steps(training, num_training_steps)
    return max(1, math.ceil(after_warmup / 3))


def build_scheduler(
    optimizer: torch.optim.Optimizer, training: TrainingArgs, num_training_steps: int
) -> LRScheduler:
    """The scheduler for ``training.lr_scheduler_type`` over ``num_training_steps`` optimizer steps."""
    kind = training.lr_scheduler_type
    warmup = resolve_warmup_steps(training, num_training_steps)
    if kind == "step":
        step_size = resolve_step_size(training, num_training_steps)
        factor = partial(_step_factor, warmup=warmup, step_size=step_size, gamma=training.step_gamma)
        return LambdaLR(optimizer, factor)
    if kind == "reduce_lr_on_plateau":
        if training.eval_strategy == "no":
            raise ConfigError(
                "lr_scheduler_type=reduce_lr_on_plateau needs evaluations, but eval_strategy=no",
                "set eval_strategy=steps with eval_steps=N (and val_size > 0), or choose another lr_scheduler_type",
            )
        return WarmupPlateauLR(
            optimizer,
            num_warmup_steps=warmup,
            factor=training.plateau_factor,
            patience=training.plateau_patience,
            min_lr=training.plateau_min_lr,
            higher_is_better=training.best_metric_higher,
        )
    for problem in training_problems(training):  # also checked where the config is built
        if problem.key == "lr_end":
            raise ConfigError(problem.message, problem.hint)
    from transformers import get_scheduler

    hf_name, keys = _HF_SCHEDULES[kind]
    extra = {_HF_KWARG[key]: getattr(training, key) for key in keys}
    return get_scheduler(
        hf_name,
        optimizer,
        num_warmup_steps=warmup,
        num_training_steps=num_training_steps,
        scheduler_specific_kwargs=extra,
    )


def _step_factor(step: int, *, warmup: int, step_size: int, gamma: float) -> float:
    if step < warmup:
        return step / warmup
    return gamma ** ((step - warmup) // step_size)


@dataclass(frozen=True)
class PlateauReduction:
    """One learning-rate reduction: the first group's rate before and after, and why."""

    old_lr: float
    new_lr: float
    best: float
    n_bad: int


class WarmupPlateauLR(LRScheduler):
    """Linear warm-up, then a rate scaled down whenever :meth:`report` sees the metric stall.

    Evaluations during warm-up are ignored (the rate is still rising). Improvement is strict:
    lower (or higher, with ``higher_is_better``) than the best value so far. The floor is per group:
    ``max(base_lr x scale, min(min_lr, base_lr))``, like torch's ReduceLROnPlateau.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        *,
        num_warmup_steps: int,
        factor: float,
        patience: int,
        min_lr: float,
        higher_is_better: bool,
    ) -> None:
        self.num_warmup_steps = num_warmup_steps
        self.factor = factor
        self.patience = patience
        self.min_lr = min_lr
        self.higher_is_better = higher_is_better
        self.scale = 1.0
        self.best: float | None = None
        self.n_bad = 0
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return self._rates_at(self.last_epoch)

    def _rates_at(self, step: int) -> list[float]:
        warm = step / self.num_warmup_steps if step < self.num_warmup_steps else 1.0
        return [warm * max(float(base) * self.scale, min(self.min_lr, float(base))) for base in self.base_lrs]

    def report(self, metric: float) -> PlateauReduction | None:
        """Take one evaluation's metric; return the reduction it caused, if any."""
        metric = float(metric)
        if self.last_epoch < self.num_warmup_steps:
            return None
        best = self.best
        if best is None or (metric > best if self.higher_is_better else metric < best):
            self.best, self.n_bad = metric, 0
            return None
        self.n_bad += 1
        if self.n_bad <= self.patience:
            return None
        n_bad, self.n_bad = self.n_bad, 0
        old = self._rates_at(self.last_epoch)
        self.scale *= self.factor
        new = self._rates_at(self.last_epoch)
        if all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(old, new)):  # every group at its floor
            self.scale /= self.factor
            return None
        for group, rate in zip(self.optimizer.param_groups, new):
            group["lr"] = rate  # takes effect at the next optimizer step, not only after the next step()
        set_last_lr(self, new)
        return PlateauReduction(old[0], new[0], best, n_bad)


class PlateauCallback(TrainerCallback):
    """Feed each evaluation's ``metric`` to a :class:`WarmupPlateauLR`; record reductions as events.

    The evaluation at (or after) the last step is skipped: no step would use the lower rate.
    Every process steps its own scheduler on rank 0's metric, so all reduce at the same evaluation;
    only rank 0 writes the event.
    """

    def __init__(self, metric: str, run: RunDir | None = None) -> None:
        self.metric = metric if metric.startswith("eval_") else f"eval_{metric}"
        self.run = run

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, Any] | None = None,
        lr_scheduler: Any = None,
        **kw: Any,
    ) -> None:
        if (
            not isinstance(lr_scheduler, WarmupPlateauLR)
            or not metrics
            or state.global_step >= state.max_steps
        ):
            return
        if self.metric not in metrics:
            raise ConfigError(
                f"metric_for_best_model={self.metric} is not among the evaluation metrics {sorted(metrics)}",
                "set metric_for_best_model to one of them (eval_loss is always there)",
            )
        # rank 0's value on every rank, so every rank's scheduler reduces at the same evaluation
        reduction = lr_scheduler.report(broadcast_decision(float(metrics[self.metric])))
        if reduction is not None and self.run is not None:  # (only rank 0's RunDir writes)
            self.run.write_event(
                "lr_reduced",
                f"{self.metric} has not improved on {reduction.best:.4g} for {reduction.n_bad} evaluation(s): "
                f"learning rate {reduction.old_lr:.3g} -> {reduction.new_lr:.3g}",
                message_zh=f"{self.metric} 已连续 {reduction.n_bad} 次评估未优于 {reduction.best:.4g}："
                f"学习率 {reduction.old_lr:.3g} -> {reduction.new_lr:.3g}",
                step=state.global_step,
                metric=self.metric,
                value=float(metrics[self.metric]),
                best=reduction.best,
                old_lr=reduction.old_lr,
                new_lr=reduction.new_lr,
            )
