"""What a stage needs to know about the run besides the config: resolved precision and a voice."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from tunelab.data.pipeline import DataStats

__all__ = ["RunContext"]


@dataclass
class RunContext:
    """Decisions taken once before a stage runs, plus where to print progress messages."""

    compute_dtype: torch.dtype
    compute_reason: str = ""
    console: Any = field(default=None, repr=False)
    # TrainerCallbacks the caller of train() adds to the stage's own (e.g. the tune pruning callback)
    callbacks: list[Any] = field(default_factory=list, repr=False)
    # samples per optimizer step over all processes (per device x accumulation x world size)
    global_batch_size: int = 0

    @property
    def compute_name(self) -> str:
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.compute_dtype, "fp32")

    def say(self, message: str) -> None:
        """Print a status line (to stderr, so stdout stays clean for machine-readable output)."""
        if self.console is not None:
            self.console.print(message)

    def run_metrics(self, trainable: int, total: int, stats: DataStats, **extra: Any) -> dict[str, Any]:
        """What every stage adds to metrics.json beside the trainer's figures: parameter counts, the
        compute type, ``extra`` (stage-specific facts) and the data statistics as ``data_*`` keys."""
        from tunelab.distributed import world_size

        return {
            "trainable_params": trainable,
            "total_params": total,
            "compute_type": self.compute_name,
            "world_size": world_size(),
            "global_batch_size": self.global_batch_size,
            **extra,
            **{f"data_{key}": value for key, value in stats.as_dict().items()},
        }
