"""The ``n_trials`` budget of a study that several workers share: which trials count, and which are surplus.

Workers (local processes or other machines on one RDB storage) each check "finished + running <
n_trials?" before they start a trial. That check and the creation of the trial are two steps, so two
workers can both pass it for the last slot and run ``n_trials + 1`` trials (it happened on
PostgreSQL). The check alone cannot be made atomic from outside Optuna, so the trial decides again
once it exists: Optuna creates the trials of a study one at a time (PostgreSQL and MySQL lock the
study row while a number is assigned and committed; SQLite has one writer at a time), so trial
numbers are unique and every trial numbered below this one is already committed and visible to it. Counting the budget-holding trials numbered below it therefore gives
every worker the same answer: the first ``n_trials`` claims run, any later one is *surplus*. A
surplus trial is marked (user attribute ``surplus``), failed with the reason before it trains, and
left out of every result, summary, plot and "best".

A trial holds a slot while it is waiting, running, complete, pruned, or failed with a recorded
reason (a bad combination of parameters, a diverging run). Interrupted trials and trials whose
worker died (failed without a reason) hold none: running the study again runs them anew. A slot
held by a trial whose worker dies later is not handed back to the surplus trial (it is already
refused); running the study again fills it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["SURPLUS", "count_trials", "holds_slot", "is_surplus", "surplus_reason"]

SURPLUS = "surplus"  # user attribute of a trial refused because the budget was full


def _counts(t: Any) -> bool:
    """Whether a finished trial counts towards ``n_trials`` (see the module docstring)."""
    from optuna.trial import TrialState

    if t.user_attrs.get(SURPLUS):
        return False
    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        t.state == TrialState.FAIL and "reason" in t.user_attrs
    )


def holds_slot(t: Any) -> bool:
    """Whether trial ``t`` holds one of the study's ``n_trials`` slots (done, running or waiting)."""
    from optuna.trial import TrialState

    if t.user_attrs.get(SURPLUS):
        return False
    return _counts(t) or t.state in (TrialState.RUNNING, TrialState.WAITING)


def count_trials(trials: Iterable[Any]) -> tuple[int, int]:
    """(trials that count towards n_trials, trials running now), surplus trials left out."""
    from optuna.trial import TrialState

    done = running = 0
    for t in trials:
        if _counts(t):
            done += 1
        elif t.state == TrialState.RUNNING and not t.user_attrs.get(SURPLUS):
            running += 1
    return done, running


def is_surplus(trials: Iterable[Any], number: int, n_trials: int) -> bool:
    """Whether trial ``number`` comes after ``n_trials`` trials that hold a slot (so it must not run)."""
    return sum(1 for t in trials if t.number < number and holds_slot(t)) >= n_trials


def surplus_reason(trial: Any, n_trials: int) -> str | None:
    """Refuse ``trial`` (an Optuna Trial that just started) when the budget is already full.

    Returns the reason, after marking the trial surplus, or None when the trial may run.
    """
    if not is_surplus(trial.study.get_trials(deepcopy=False), trial.number, n_trials):
        return None
    reason = (
        f"not run: the study already holds its {n_trials} trials (another worker started the last one "
        "at the same moment)"
    )
    trial.set_user_attr(SURPLUS, True)
    trial.set_user_attr("reason", reason)
    return reason
