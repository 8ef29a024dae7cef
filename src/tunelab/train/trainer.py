"""``TunelabTrainer``: the transformers Trainer with tunelab's optimizers and learning-rate schedules.

Only the documented hooks ``create_optimizer``, ``create_scheduler`` (once per training) and ``log``
(once per logging step) are overridden, so the hot path (the training step) is exactly the plain Trainer's.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from tunelab.compat.transformers import mark_lr_scheduler_created
from tunelab.config.schema import FinetuningArgs, TrainingArgs
from tunelab.runs.rundir import RunDir
from tunelab.train.optim import build_optimizer
from tunelab.train.schedule import PlateauCallback, build_scheduler

__all__ = ["TunelabTrainer"]


class TunelabTrainer(Trainer):
    """A Trainer whose optimizer and schedule come from ``training``/``finetuning``.

    ``run`` (optional) receives an ``lr_reduced`` event for every reduce_lr_on_plateau reduction.
    An optimizer or scheduler passed through ``optimizers=`` still wins, as with the plain Trainer.
    """

    def __init__(
        self,
        *args: Any,
        training: TrainingArgs,
        finetuning: FinetuningArgs,
        run: RunDir | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.training_config = training
        self.finetuning_config = finetuning
        if training.lr_scheduler_type == "reduce_lr_on_plateau":
            self.add_callback(PlateauCallback(training.metric_for_best_model, run))

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            target = self.model if model is None else model
            self.optimizer = build_optimizer(target, self.training_config, self.finetuning_config)
        return self.optimizer

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        # layer-wise GaLore/APOLLO frees each gradient in backward, so the Trainer's own norm reads 0:
        # report the norm the optimizer measured instead (train/optim_layerwise.py)
        measured = getattr(getattr(self.optimizer, "optimizer", self.optimizer), "last_grad_norm", None)
        if measured is not None and "grad_norm" in logs:
            logs["grad_norm"] = measured
        super().log(logs, *args, **kwargs)

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        if self.lr_scheduler is None:
            target = self.optimizer if optimizer is None else optimizer
            self.lr_scheduler = build_scheduler(target, self.training_config, num_training_steps)
            # as the base class does: a later train() call rebuilds the schedule for its own length
            mark_lr_scheduler_created(self)
        return self.lr_scheduler
