"""One definition of a run's ``train_loss``: the mean training loss over every step of the whole run.

The Trainer's own ``train_loss`` averages only the steps of the last ``train()`` call, so after a
resume it covered the resumed steps alone (6.03 where the same run uninterrupted reports 6.33).
metrics.json, the runs table, ``tunelab compare`` and the web UI all show the figure computed here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["logged_loss_mean", "whole_run_train_loss"]


def logged_loss_mean(records: Iterable[Mapping[str, Any]], *, step_key: str = "step") -> float | None:
    """The step-weighted mean of logged ``loss`` values, or None when none was logged.

    Each logged loss is the mean over the steps since the previous log, so it counts for that many
    steps. A step logged twice (re-run after a resume) keeps its latest record.
    """
    by_step: dict[int, float] = {}
    for record in records:
        loss, step = record.get("loss"), record.get(step_key)
        if isinstance(loss, (int, float)) and math.isfinite(loss) and isinstance(step, int):
            by_step[step] = float(loss)
    total, previous = 0.0, 0
    for step in sorted(by_step):
        total += by_step[step] * (step - previous)
        previous = step
    return total / previous if previous > 0 else None


def whole_run_train_loss(
    session_loss: float, session_steps: int, resumed_step: int, resumed_history: Iterable[Mapping[str, Any]]
) -> float:
    """Combine the Trainer's mean over this session's steps with the losses logged before the resume.

    ``resumed_history`` is the checkpoint's ``log_history`` (trainer_state.json): the steps up to
    ``resumed_step`` count with their logged mean. Exact when the checkpoint step was a logging
    step (logging_steps divides save_steps); with no loss logged before the resume, the session's
    mean is all there is.
    """
    if resumed_step <= 0:
        return session_loss
    before = logged_loss_mean(r for r in resumed_history if int(r.get("step", 0)) <= resumed_step)
    if before is None:
        return session_loss
    return (before * resumed_step + session_loss * session_steps) / (resumed_step + session_steps)
