"""Batch and learning-rate arithmetic, checked against hand-computed numbers."""

from __future__ import annotations

import math

import pytest

from tunelab.tune.scaling import (
    cutoff_from_lengths,
    effective_batch,
    lr_scaling_rule,
    scale_learning_rate,
    split_batch,
)


def test_effective_batch_is_micro_times_accumulation_times_devices() -> None:
    assert effective_batch(4, 8, 2) == 64


def test_adam_scales_by_square_root_and_sgd_linearly() -> None:
    assert lr_scaling_rule("adamw_torch") == "sqrt" and lr_scaling_rule("sgd") == "linear"
    assert scale_learning_rate(2e-4, 16, 64, "adamw_torch") == pytest.approx(4e-4)  # x sqrt(4)
    assert scale_learning_rate(0.1, 256, 1024, "sgd") == pytest.approx(0.4)  # x 4 (Goyal et al.)
    assert scale_learning_rate(2e-4, 16, 8, "adafactor") == pytest.approx(2e-4 / math.sqrt(2))
    with pytest.raises(ValueError):
        scale_learning_rate(1e-4, 0, 8, "sgd")


def test_split_batch_prefers_exact_divisors() -> None:
    assert split_batch(32, 12) == (8, 4)  # 8 x 4 = 32 exactly, rather than 12 x 3 = 36
    assert split_batch(32, 64) == (32, 1)  # never a micro-batch above the target
    assert split_batch(64, 16, devices=2) == (16, 2)  # 16 x 2 x 2 devices
    assert split_batch(31, 8) == (8, 4)  # prime target: exact divisor 1 wastes too much, round up
    assert split_batch(8, 0) == (1, 8)


def test_cutoff_from_percentiles() -> None:
    assert cutoff_from_lengths(p95=300, p99=400) == (448, "p99")  # 400 rounded up to 64
    assert cutoff_from_lengths(p95=300, p99=1000) == (320, "p95")  # long tail: p95
    assert cutoff_from_lengths(p95=3000, p99=4000, max_position=2048) == (2048, "p99")  # model context
