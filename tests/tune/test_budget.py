"""The n_trials budget of a shared study: two workers that both passed the "room for one more?" check
at the same moment get one trial between them, decided by trial number and the same on every worker."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

import tunelab.tune.study as study_module
from tunelab.config import config_from_dict
from tunelab.tune.budget import SURPLUS, count_trials, is_surplus, surplus_reason
from tunelab.tune.space import resolve_space

N_TRIALS = 4


def _racing(tmp_path: Path) -> tuple[optuna.Study, optuna.Study, optuna.Trial]:
    """Two workers on one SQLite study with 3 of 4 trials done; worker A has started the last one.

    Returns (worker A's study, worker B's study, A's trial). B passed its own check before A's trial
    existed (3 done + 0 running < 4), as the two workers of the PostgreSQL run did.
    """
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study_a = optuna.create_study(study_name="race", storage=url)
    for value in (3.0, 2.0, 1.0):
        trial = study_a.ask()
        trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        study_a.tell(trial, value)
    study_b = optuna.load_study(study_name="race", storage=url)
    assert count_trials(study_b.get_trials()) == (3, 0)  # what B's check saw: room for one more
    return study_a, study_b, study_a.ask()


def test_the_later_of_two_racing_trials_is_refused(tmp_path: Path) -> None:
    study_a, study_b, trial_a = _racing(tmp_path)
    trial_b = study_b.ask()  # B's trial, created after A's: one too many
    assert (trial_a.number, trial_b.number) == (3, 4)
    # B decides first: A's running trial holds the last slot
    reason = surplus_reason(trial_b, N_TRIALS)
    assert reason is not None and "already holds its 4 trials" in reason
    assert surplus_reason(trial_a, N_TRIALS) is None  # A may run, whoever asks first
    marked = study_a.get_trials()[4]
    assert marked.user_attrs[SURPLUS] is True and marked.user_attrs["reason"] == reason
    assert count_trials(study_a.get_trials()) == (3, 1)  # B's trial is not counted as running


def test_a_surplus_trial_stops_its_worker_without_training(tmp_path: Path, monkeypatch) -> None:
    study_a, study_b, trial_a = _racing(tmp_path)

    def no_training(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a surplus trial must not train")

    monkeypatch.setattr(study_module, "run_trial", no_training)
    base = config_from_dict({"model_name_or_path": "tiny:llama", "max_steps": 4})
    study_dir = tmp_path / "study"
    objective = study_module._objective(base, study_dir, resolve_space(base), None, N_TRIALS)
    # what worker B's _optimize does once its check has passed: up to 1 more trial
    study_b.optimize(objective, n_trials=3, catch=(study_module.TrialFailed,))

    trials = study_a.get_trials()
    assert len(trials) == 5  # B stopped after its refused trial instead of asking for another
    refused = trials[4]
    assert refused.state == TrialState.FAIL and refused.user_attrs[SURPLUS] is True
    assert refused.params == {} and not study_dir.exists()  # nothing drawn, no run directory
    study_a.tell(trial_a, 0.5)  # A's trial ends: the study holds exactly n_trials
    assert study_module._counted(study_a) == (4, 0)
    outcomes = study_module._outcomes(study_a)
    assert [o.number for o in outcomes] == [0, 1, 2, 3]  # results, summary, best: no surplus trial


@pytest.mark.parametrize(
    ("earlier", "surplus"),
    [
        # an interrupted trial (failed, no reason) holds no slot: running the study again re-runs it
        ({"state": TrialState.FAIL, "user_attrs": {"interrupted": True}}, False),
        # a trial that failed for its parameters counts, like a pruned one
        ({"state": TrialState.FAIL, "user_attrs": {"reason": "stopped by the health monitor"}}, True),
        ({"state": TrialState.PRUNED}, True),
        # an earlier surplus trial holds nothing
        ({"state": TrialState.FAIL, "user_attrs": {SURPLUS: True, "reason": "not run"}}, False),
    ],
    ids=["interrupted", "failed-with-reason", "pruned", "surplus"],
)
def test_which_earlier_trials_hold_a_slot(earlier: dict, surplus: bool) -> None:
    study = optuna.create_study()
    study.add_trial(create_trial(value=1.0))
    study.add_trial(create_trial(**earlier))
    study.enqueue_trial({})  # a waiting trial (e.g. enqueued, or a crashed trial's retry) holds one
    assert [t.state for t in study.get_trials()][-1] == TrialState.WAITING
    assert is_surplus(study.get_trials(), 3, 3) is surplus
    assert not is_surplus(study.get_trials(), 3, 4)
