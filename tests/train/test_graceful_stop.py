"""Ctrl-C / SIGTERM during training: stop with a checkpoint, except during the last step, which finishes."""

from __future__ import annotations

import signal

from transformers import TrainerControl, TrainerState, TrainingArguments

from tunelab.train.callbacks import GracefulStopCallback


def _step_end(callback: GracefulStopCallback, step: int, max_steps: int) -> TrainerControl:
    control = TrainerControl()
    state = TrainerState(global_step=step, max_steps=max_steps)
    callback.on_step_end(TrainingArguments(output_dir="unused", report_to=[]), state, control)
    return control


def test_a_signal_mid_run_saves_and_stops() -> None:
    stop = GracefulStopCallback()
    stop._handle(signal.SIGINT, None)
    control = _step_end(stop, 7, 40)
    assert control.should_save and control.should_training_stop and stop.requested == "SIGINT"


def test_a_signal_during_the_last_step_lets_the_run_finish() -> None:
    """A checkpoint at max_steps would resume into step max_steps + 1 (seen in the web UI: step 41/40)."""
    stop = GracefulStopCallback()
    stop._handle(signal.SIGINT, None)
    control = _step_end(stop, 40, 40)
    assert not control.should_save and not control.should_training_stop and stop.requested is None
