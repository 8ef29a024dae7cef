"""Health rules: pure checks over the log history of a run, and the choice of what to do about them.

Nothing here touches torch or the trainer: the monitor (train/monitor.py) measures a :class:`LogPoint`
at every log step, feeds it to :class:`HealthHistory`, and applies the action :func:`decide` picks.
Keeping the rules pure means each one is tested on a synthetic history built to trigger it.

The rules, in the order they are checked (each one switchable off with ``health.<rule>_action: off``):

- ``nonfinite``: the loss, the gradient norm or the trainable weights are NaN/Inf.
- ``update_ratio``: the weights change by more than ``update_ratio_alarm`` of their size per step
  (divergence: the learning rate is orders of magnitude too high, even when the loss looks merely flat).
- ``grad_norm``: the gradient norm above ``grad_norm_alarm`` for ``grad_norm_consecutive`` log steps.
- ``spike``: the loss above ``spike_factor`` x the mean of the previous ``window`` log steps.
- ``oscillation``: the spread of the loss around its linear trend is large compared with the drop
  that trend achieved (and with the loss itself): the learning rate is too high to settle.
- ``stagnation``: the loss identical over the window, or the weights barely moving (LR too low,
  nothing trainable, or updates rounded away by low-precision weights).
- ``overfitting``: the eval loss rising for ``overfit_evals`` evaluations while the train loss falls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tunelab.config.control import HealthArgs

__all__ = [
    "ACTION_SEVERITY",
    "INTERVENTIONS",
    "RULES",
    "Decision",
    "EvalPoint",
    "Finding",
    "HealthHistory",
    "LogPoint",
    "check_grad_norm",
    "check_nonfinite",
    "check_oscillation",
    "check_overfitting",
    "check_spike",
    "check_stagnation",
    "check_update_ratio",
    "decide",
]

RULES = ("nonfinite", "update_ratio", "grad_norm", "spike", "oscillation", "stagnation", "overfitting")
ACTION_SEVERITY = {"off": 0, "warn": 1, "halve_lr": 2, "rollback": 3, "stop": 4}
INTERVENTIONS = ("halve_lr", "rollback")
# Below this share of the peak LR the schedule itself (warm-up, decay) explains small updates.
_SCHEDULED_LOW_LR = 0.1


@dataclass(frozen=True)
class LogPoint:
    """What the monitor measured at one training log step (None: not measured)."""

    step: int
    loss: float | None = None
    grad_norm: float | None = None
    learning_rate: float | None = None
    update_ratio: float | None = None  # |w - w_prev| / |w_prev| per optimizer step since the last log step
    weights_finite: bool | None = None


@dataclass(frozen=True)
class EvalPoint:
    """One evaluation, with the mean train loss logged since the previous evaluation."""

    step: int
    eval_loss: float
    train_loss: float | None = None


@dataclass(frozen=True)
class Finding:
    """A rule that fired: its name, the step, and the numbers that triggered it."""

    rule: str
    step: int
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The one action taken for the findings of a log step, and the finding it answers."""

    action: str
    finding: Finding
    others: tuple[Finding, ...] = ()
    escalated: bool = False  # an intervention turned into stop because max_interventions was reached


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def check_nonfinite(point: LogPoint) -> dict[str, Any] | None:
    """NaN/Inf loss or weights; a NaN/Inf gradient norm only when the weights are not known to be finite.

    With fp16 loss scaling an infinite gradient norm is routine (the step is skipped and the scale
    lowered), so it counts only when the weights were damaged too or could not be checked.
    """
    bad_loss = point.loss is not None and not math.isfinite(point.loss)
    bad_grad = point.grad_norm is not None and not math.isfinite(point.grad_norm)
    if bad_loss or point.weights_finite is False or (bad_grad and point.weights_finite is not True):
        return {"loss": point.loss, "grad_norm": point.grad_norm, "weights_finite": point.weights_finite}
    return None


def check_update_ratio(point: LogPoint, *, alarm: float) -> dict[str, Any] | None:
    """Weights changing by more than ``alarm`` of their size per step: the LR is far too high."""
    if _finite(point.update_ratio) and point.update_ratio > alarm:  # type: ignore[operator]
        return {"update_ratio": point.update_ratio, "alarm": alarm}
    return None


def check_grad_norm(
    grad_norms: Sequence[float | None], *, alarm: float, consecutive: int
) -> dict[str, Any] | None:
    """The last ``consecutive`` gradient norms all above ``alarm``."""
    recent = list(grad_norms[-consecutive:])
    if len(recent) < consecutive or any(g is None or not g > alarm for g in recent):
        return None
    return {"grad_norms": recent, "alarm": alarm, "consecutive": consecutive}


def check_spike(losses: Sequence[float], *, factor: float, window: int) -> dict[str, Any] | None:
    """The last loss above ``factor`` x the mean of up to ``window`` losses before it (3 needed)."""
    if len(losses) < 4:
        return None
    before = losses[-1 - window : -1]
    average = _mean(before)
    if average > 0 and losses[-1] > factor * average:
        return {"loss": losses[-1], "average": average, "ratio": losses[-1] / average, "factor": factor}
    return None


def _trend(ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope per point and the standard deviation of the residuals."""
    n = len(ys)
    x_mean, y_mean = (n - 1) / 2, _mean(ys)
    sxx = sum((i - x_mean) ** 2 for i in range(n))
    slope = sum((i - x_mean) * (y - y_mean) for i, y in enumerate(ys)) / sxx
    residuals = [y - (y_mean + slope * (i - x_mean)) for i, y in enumerate(ys)]
    return slope, math.sqrt(sum(r * r for r in residuals) / (n - 2))


def check_oscillation(
    points: Sequence[LogPoint],
    *,
    window: int,
    ratio: float,
    min_spread: float,
    min_update_ratio: float = 0.0,
) -> dict[str, Any] | None:
    """Spread around the linear trend of the last ``window`` losses above ``ratio`` x the drop it made.

    The spread must also exceed ``min_spread`` x the loss level: a converged run's trend is flat, and
    its ordinary batch noise should not read as oscillation. Nor does it count while the weights
    barely move (mean update ratio below ``min_update_ratio``): then the LR cannot be the cause.
    """
    recent = [p for p in points if _finite(p.loss)][-window:]
    if len(recent) < max(window, 3):
        return None
    losses = [float(p.loss) for p in recent]  # type: ignore[arg-type]
    ratios = [p.update_ratio for p in recent]
    if all(_finite(r) for r in ratios) and _mean(ratios) < min_update_ratio:  # type: ignore[arg-type]
        return None
    slope, spread = _trend(losses)
    drop = -slope * (window - 1)
    level = abs(_mean(losses))
    if spread > ratio * max(drop, 0.0) and spread > min_spread * level:
        start = _mean(losses) - slope * (window - 1) / 2  # the fitted line at the first point
        return {
            "spread": spread,
            "drop": drop,
            "trend_from": start,
            "trend_to": start - drop,
            "window": window,
        }
    return None


def check_stagnation(
    points: Sequence[LogPoint],
    *,
    window: int,
    rel_change: float,
    min_update_ratio: float,
    peak_lr: float | None = None,
) -> dict[str, Any] | None:
    """Identical losses over ``window`` log steps, or weights moving less than ``min_update_ratio`` per step.

    The weight test is skipped while the schedule holds the LR below a tenth of its peak (warm-up,
    the end of a decay), where small updates are intended.
    """
    recent = [p for p in points if _finite(p.loss)][-window:]
    if len(recent) < window:
        return None
    losses = [p.loss for p in recent]
    level = abs(_mean(losses))  # type: ignore[arg-type]
    loss_range = max(losses) - min(losses)  # type: ignore[type-var,operator]
    numbers: dict[str, Any] = {"first": losses[0], "last": losses[-1], "window": window}
    if level > 0 and loss_range < rel_change * level:
        return {**numbers, "kind": "flat_loss", "rel_range": loss_range / level}
    ratios = [p.update_ratio for p in points[-window:]]
    lrs = [p.learning_rate for p in points[-window:] if p.learning_rate is not None]
    scheduled_low = bool(lrs) and peak_lr is not None and min(lrs) < _SCHEDULED_LOW_LR * peak_lr
    if len(ratios) == window and all(_finite(r) for r in ratios) and not scheduled_low:
        mean_ratio = _mean(ratios)  # type: ignore[arg-type]
        if mean_ratio < min_update_ratio:
            return {**numbers, "kind": "frozen_weights", "update_ratio": mean_ratio}
    return None


def check_overfitting(evals: Sequence[EvalPoint], *, n: int) -> dict[str, Any] | None:
    """The eval loss rose at each of the last ``n`` evaluations while the train loss between them fell."""
    recent = list(evals[-(n + 1) :])
    if len(recent) < n + 1 or any(not _finite(e.eval_loss) for e in recent):
        return None
    if not all(b.eval_loss > a.eval_loss for a, b in zip(recent, recent[1:])):
        return None
    first, last = recent[0].train_loss, recent[-1].train_loss
    if not (_finite(first) and _finite(last) and last < first):  # type: ignore[operator]
        return None
    return {
        "eval_losses": [e.eval_loss for e in recent],
        "train_first": first,
        "train_last": last,
        "evals": n,
    }


class HealthHistory:
    """The recent log history and the rules over it; each rule looks only at points after it last fired.

    Memory stays bounded: train points are trimmed to the longest window a rule needs, and the
    overfitting rule keeps one mean train loss per evaluation.
    """

    def __init__(self, settings: HealthArgs) -> None:
        self.settings = settings
        self.train: list[LogPoint] = []
        self.evals: list[EvalPoint] = []
        self.peak_lr: float | None = None
        self._since = dict.fromkeys(RULES, -1)
        self._keep = max(settings.window, settings.grad_norm_consecutive) + 1
        self._train_sum, self._train_n = 0.0, 0

    def quiet(self, rules: Sequence[str], step: int) -> None:
        """Start ``rules`` over after ``step``: they fire again only on fresh evidence."""
        for rule in rules:
            self._since[rule] = step

    def _points(self, rule: str) -> list[LogPoint]:
        return [p for p in self.train if p.step > self._since[rule]]

    def add_train(self, point: LogPoint) -> list[Finding]:
        """Record a training log step and return the rules it triggers, in rule order."""
        self.train = [*self.train[-(self._keep - 1) :], point]
        if _finite(point.loss):
            self._train_sum += point.loss  # type: ignore[operator]
            self._train_n += 1
        if _finite(point.learning_rate):
            self.peak_lr = max(self.peak_lr or 0.0, point.learning_rate)  # type: ignore[type-var]
        s, actions = self.settings, self.settings.rule_actions()
        results: dict[str, dict[str, Any] | None] = {}
        if actions["nonfinite"] != "off":
            results["nonfinite"] = check_nonfinite(point)
        if actions["update_ratio"] != "off":
            results["update_ratio"] = check_update_ratio(point, alarm=s.update_ratio_alarm)
        if actions["grad_norm"] != "off":
            norms = [p.grad_norm for p in self._points("grad_norm")]
            results["grad_norm"] = check_grad_norm(
                norms, alarm=s.grad_norm_alarm, consecutive=s.grad_norm_consecutive
            )
        if actions["spike"] != "off" and _finite(point.loss):
            losses = [float(p.loss) for p in self._points("spike") if _finite(p.loss)]  # type: ignore[arg-type]
            results["spike"] = check_spike(losses, factor=s.spike_factor, window=s.window)
        if actions["oscillation"] != "off":
            results["oscillation"] = check_oscillation(
                self._points("oscillation"),
                window=s.window,
                ratio=s.oscillation_ratio,
                min_spread=s.oscillation_min_spread,
                min_update_ratio=s.stagnation_update_ratio,
            )
        if actions["stagnation"] != "off":
            results["stagnation"] = check_stagnation(
                self._points("stagnation"),
                window=s.window,
                rel_change=s.stagnation_rel_change,
                min_update_ratio=s.stagnation_update_ratio,
                peak_lr=self.peak_lr,
            )
        return [Finding(rule, point.step, numbers) for rule, numbers in results.items() if numbers]

    def add_eval(self, step: int, eval_loss: float) -> list[Finding]:
        """Record an evaluation and return the overfitting finding, if it fires."""
        train_loss = self._train_sum / self._train_n if self._train_n else None
        self._train_sum, self._train_n = 0.0, 0
        self.evals = [*self.evals[-self.settings.overfit_evals :], EvalPoint(step, eval_loss, train_loss)]
        if self.settings.overfit_action == "off":
            return []
        fresh = [e for e in self.evals if e.step > self._since["overfitting"]]
        numbers = check_overfitting(fresh, n=self.settings.overfit_evals)
        return [Finding("overfitting", step, numbers)] if numbers else []


def decide(
    findings: Sequence[Finding], actions: dict[str, str], *, interventions: int, max_interventions: int
) -> Decision | None:
    """The most severe configured action among ``findings`` (first rule wins ties).

    halve_lr and rollback become stop once ``max_interventions`` have been spent: a run that needs
    more than that is better restarted with a lower learning rate.
    """
    active = [f for f in findings if actions.get(f.rule, "off") != "off"]
    if not active:
        return None
    primary = max(active, key=lambda f: ACTION_SEVERITY[actions[f.rule]])  # max keeps the first of ties
    action = actions[primary.rule]
    escalated = action in INTERVENTIONS and interventions >= max_interventions
    others = tuple(f for f in active if f is not primary)
    return Decision("stop" if escalated else action, primary, others, escalated)
