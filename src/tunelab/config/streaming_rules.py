"""What ``streaming: true`` needs from the rest of the config (LLaMA-Factory's rules, said as fixes)."""

from __future__ import annotations

from tunelab.config.schema import DataArgs
from tunelab.config.schema_train import TrainingArgs

__all__ = ["streaming_problems"]


def streaming_problems(data: DataArgs, training: TrainingArgs, stage: str) -> list[str]:
    """Every reason the streaming settings cannot work with this config ([] when they can, or are off)."""
    if not data.streaming:
        return []
    problems = []
    if training.max_steps <= 0:
        problems.append(
            "streaming: true reads the data lazily, so the number of steps per epoch is unknown: set max_steps"
        )
    if 0 < data.val_size < 1:
        problems.append(
            f"streaming: true cannot take a share of data it has not read (val_size={data.val_size}): "
            "give val_size as a count (e.g. 200), or an eval_dataset"
        )
    if data.test_size > 0:
        problems.append("streaming: true cannot hold out test_size; use a separate test file")
    if stage not in ("pt", "sft"):
        problems.append(f"streaming: true works for stages pt and sft, not {stage}")
    if data.packing and stage == "sft":
        problems.append("streaming: true and packing: true cannot be combined for sft; drop one")
    if data.tokenized_path:
        problems.append("streaming: true tokenizes on the fly and cannot save tokenized_path; drop one")
    if data.buffer_size < 1:
        problems.append(f"buffer_size={data.buffer_size} must be at least 1")
    return problems
