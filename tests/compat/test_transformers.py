"""The transformers private attributes behind tunelab.compat.transformers still exist and mean the same.

A failure here means a transformers release renamed or changed one: fix the one function in
src/tunelab/compat/transformers.py (and its docstring's version), not the call sites.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

from tunelab.compat.transformers import attn_implementation, mark_lr_scheduler_created, prepare_inputs


class _Regression(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": ((self.lin(x).squeeze(-1) - labels) ** 2).mean()}


class _OwnScheduleTrainer(Trainer):
    """Builds its own schedule the way TunelabTrainer does."""

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if self.lr_scheduler is None:
            target = self.optimizer if optimizer is None else optimizer
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
                target, lambda s: 1 - s / num_training_steps
            )
            mark_lr_scheduler_created(self)
        return self.lr_scheduler


def _trainer(tmp_path: Path, max_steps: int) -> Trainer:
    rows = [{"x": torch.randn(2), "labels": torch.tensor(float(i % 2))} for i in range(8)]
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=max_steps,
        per_device_train_batch_size=2,
        learning_rate=0.1,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
    )
    return _OwnScheduleTrainer(model=_Regression(), args=args, train_dataset=rows)


@pytest.mark.parametrize("kernel", ["eager", "sdpa"])
def test_attn_implementation_reports_the_kernel_the_model_was_loaded_with(kernel: str) -> None:
    config = LlamaConfig(
        vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2
    )
    model = LlamaForCausalLM._from_config(config, attn_implementation=kernel)
    assert attn_implementation(model.config) == kernel


def test_a_second_train_call_rebuilds_a_schedule_marked_created(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, max_steps=2)
    assert trainer._created_lr_scheduler is False  # the flag exists from __init__
    trainer.train()
    first = trainer.lr_scheduler
    assert first is not None and trainer._created_lr_scheduler is True
    trainer.args.max_steps = 4
    trainer.train()
    assert trainer.lr_scheduler is not first, "transformers no longer resets a scheduler flagged as created"
    assert trainer.lr_scheduler.lr_lambdas[0](2) == pytest.approx(0.5)  # built for the new 4 steps


def test_prepare_inputs_moves_a_batch_to_the_trainer_device(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, max_steps=1)
    batch = prepare_inputs(trainer, {"x": torch.zeros(2, 2, dtype=torch.float64), "labels": torch.zeros(2)})
    assert set(batch) == {"x", "labels"}
    assert all(t.device == trainer.args.device for t in batch.values())
    assert batch["x"].dtype == torch.float64  # placement only: no cast outside DeepSpeed
