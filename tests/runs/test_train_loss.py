"""The whole-run train_loss: step-weighted logged losses, combined across a resume."""

from __future__ import annotations

import pytest

from tunelab.runs.train_loss import logged_loss_mean, whole_run_train_loss


def test_logged_losses_count_for_the_steps_they_cover_and_a_relogged_step_keeps_its_latest() -> None:
    rows = [
        {"current_steps": 2, "loss": 4.0},  # steps 1-2
        {"current_steps": 6, "loss": 1.0},  # steps 3-6
        {"current_steps": 6, "loss": 2.0},  # the same step logged again after a resume
        {"current_steps": 6, "eval_loss": 9.0},
    ]
    assert logged_loss_mean(rows, step_key="current_steps") == pytest.approx((4 * 2 + 2 * 4) / 6)
    assert logged_loss_mean([{"step": 3, "eval_loss": 1.0}]) is None


def test_whole_run_combines_the_checkpoint_history_with_the_session_mean() -> None:
    history = [{"step": 5, "loss": 3.0}, {"step": 10, "loss": 1.0}, {"step": 12, "loss": 7.0}]
    # resumed at 10: the log at 12 came after the checkpoint and is not part of this run
    assert whole_run_train_loss(0.5, 10, 10, history) == pytest.approx((2.0 * 10 + 0.5 * 10) / 20)
    assert whole_run_train_loss(0.5, 10, 0, history) == 0.5  # not resumed: the Trainer's figure
    assert whole_run_train_loss(0.5, 10, 10, []) == 0.5  # nothing logged before: all there is
