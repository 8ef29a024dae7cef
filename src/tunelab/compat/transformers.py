"""Private attributes of transformers objects that tunelab relies on (written for transformers 5.24).

Each function is one access; ``tests/compat/test_transformers.py`` checks that the attribute still
exists and still means what we use it for.
"""

from __future__ import annotations

from typing import Any

__all__ = ["attn_implementation", "mark_lr_scheduler_created", "prepare_inputs"]


def attn_implementation(config: Any) -> str:
    """The attention kernel a loaded model runs with ("eager", "sdpa", "flash_attention_2", ...).

    transformers 5.24 resolves ``attn_implementation=`` at load time into the private
    ``PreTrainedConfig._attn_implementation`` and has no public getter for the resolved value.
    """
    return str(config._attn_implementation)


def mark_lr_scheduler_created(trainer: Any) -> None:
    """Tell a ``Trainer`` that ``create_scheduler`` built the schedule, as its own implementation does.

    transformers 5.24's ``Trainer.train`` drops a scheduler flagged by ``_created_lr_scheduler`` so a
    second ``train()`` call builds one for its own number of steps; an override of
    ``create_scheduler`` must set the flag or the second call reuses a finished schedule.
    """
    trainer._created_lr_scheduler = True


def prepare_inputs(trainer: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """A batch moved to the trainer's device the way ``training_step`` does it (transformers 5.24).

    ``Trainer._prepare_inputs`` is what the base class calls on every batch (device placement,
    DeepSpeed dtype casts); a custom loop that builds its own batches calls it too.
    """
    return trainer._prepare_inputs(inputs)
