"""The arithmetic behind batch sizes, learning-rate scaling and cutoff lengths (pure, no torch).

Learning rate and batch size travel together: a recipe's learning rate belongs to the effective batch
it was found with. When the effective batch changes by a factor k, SGD's learning rate scales by k
(Goyal et al. 2017, "linear scaling rule") and Adam-family optimizers' by sqrt(k) (Malladi et al. 2022,
"On the SDEs and Scaling Rules for Adaptive Gradient Algorithms"; Hoffer et al. 2017 for the square
root). Both are rules for moderate changes; far from the reference batch they are only a start.
"""

from __future__ import annotations

import math

__all__ = [
    "SQRT_SCALED_OPTIMIZERS",
    "cutoff_from_lengths",
    "effective_batch",
    "lr_scaling_rule",
    "round_up",
    "scale_learning_rate",
    "split_batch",
]

# Every optimizer tunelab offers except SGD adapts its step per parameter (Adam family, Adafactor).
SQRT_SCALED_OPTIMIZERS = frozenset(
    {
        "adamw_torch",
        "adamw_torch_fused",
        "adam",
        "adafactor",
        "adamw_8bit",
        "paged_adamw_8bit",
        "paged_adamw_32bit",
    }
)


def effective_batch(micro_batch: int, accumulation: int, devices: int = 1) -> int:
    """Samples per optimizer step: micro-batch x gradient accumulation x data-parallel devices."""
    return micro_batch * accumulation * devices


def lr_scaling_rule(optimizer: str) -> str:
    """'sqrt' for adaptive optimizers (Adam family, Adafactor), 'linear' for SGD."""
    return "sqrt" if optimizer in SQRT_SCALED_OPTIMIZERS else "linear"


def scale_learning_rate(learning_rate: float, from_batch: int, to_batch: int, optimizer: str) -> float:
    """The learning rate for ``to_batch`` given one that worked at ``from_batch`` (see module docstring)."""
    if from_batch <= 0 or to_batch <= 0:
        raise ValueError("batch sizes must be positive")
    ratio = to_batch / from_batch
    return learning_rate * (math.sqrt(ratio) if lr_scaling_rule(optimizer) == "sqrt" else ratio)


def round_up(value: int, multiple: int) -> int:
    """``value`` rounded up to a multiple of ``multiple``."""
    return -(-value // multiple) * multiple


def cutoff_from_lengths(
    p95: int, p99: int, *, max_position: int | None = None, multiple: int = 64
) -> tuple[int, str]:
    """cutoff_len from token-length percentiles, and which percentile decided it ("p99" or "p95").

    The p99 length, rounded up to a multiple of ``multiple``, keeps 99% of samples whole. When the
    tail is long (p99 above 1.5 x p95), that last percent would set the memory of every batch, so p95
    is used and the longest 5% are cut. Never beyond the model's context (``max_position``).
    """
    if p99 <= 0:
        return multiple, "p99"
    use_p95 = p99 > 1.5 * p95
    cutoff = round_up(p95 if use_p95 else p99, multiple)
    if max_position:
        cutoff = min(cutoff, int(max_position))
    return cutoff, "p95" if use_p95 else "p99"


def split_batch(effective: int, largest_micro: int, devices: int = 1) -> tuple[int, int]:
    """(micro-batch, accumulation) reaching ``effective`` with a micro-batch of at most ``largest_micro``.

    Prefers a micro-batch that divides the per-device share exactly (so the effective batch is hit
    exactly); falls back to the largest micro-batch with accumulation rounded up (slightly larger
    effective batch) when the exact divisor would waste more than half the micro-batch.
    """
    per_device = max(1, math.ceil(effective / devices))
    largest = max(1, min(largest_micro, per_device))
    exact = max(d for d in range(1, largest + 1) if per_device % d == 0)
    if exact * 2 >= largest:
        return exact, per_device // exact
    return largest, math.ceil(per_device / largest)
