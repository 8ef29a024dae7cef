"""Gradient accumulation: micro-batches x accumulation steps is the same optimizer step as one big batch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from tunelab.config import config_from_dict
from tunelab.runs import RunDir
from tunelab.train import train


def _run(model_dir: Path, out: Path, **overrides: Any) -> list[dict[str, Any]]:
    values = {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "finetuning_type": "lora",
        "lora_dropout": 0.0,  # no randomness inside a step: the two layouts must see the same function
        "dataset": "instruct_en",
        "dataset_dir": "builtin",
        "template": "chatml",
        "cutoff_len": 128,
        "learning_rate": 5e-3,
        "max_steps": 6,
        "logging_steps": 1,
        "save_steps": 100,
        "compute_type": "fp32",
        "plot_loss": False,
        "disable_tqdm": True,
        "output_dir": str(out),
        **overrides,
    }
    train(config_from_dict(values))
    return [row for row in RunDir(out).read_log() if "loss" in row]


def test_accumulated_micro_batches_equal_one_batch(tiny_model_dir: Path, tmp_path: Path) -> None:
    """8 x 1 and 2 x 4: same samples per step in the same order -> same loss, grad_norm and weights.

    SFT micro-batches hold different numbers of response tokens, so this only holds when the
    loss is the token-weighted mean over the whole accumulated batch (transformers passes
    num_items_in_batch to the model), not the mean of per-micro-batch means.
    """
    big = _run(tiny_model_dir, tmp_path / "b8", per_device_train_batch_size=8, gradient_accumulation_steps=1)
    small = _run(
        tiny_model_dir, tmp_path / "b2", per_device_train_batch_size=2, gradient_accumulation_steps=4
    )
    assert [r["current_steps"] for r in big] == [r["current_steps"] for r in small] == list(range(1, 7))
    for one, acc in zip(big, small):
        assert math.isfinite(acc["grad_norm"]) and acc["grad_norm"] > 0
        assert acc["loss"] == pytest.approx(one["loss"], rel=1e-5), one["current_steps"]
        assert acc["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-5), one["current_steps"]
    assert big[-1]["loss"] < big[0]["loss"]  # the steps did learn (the comparison is not of no-ops)
    w_big = load_file(tmp_path / "b8" / "adapter_model.safetensors")
    w_small = load_file(tmp_path / "b2" / "adapter_model.safetensors")
    for name, tensor in w_big.items():
        assert (tensor - w_small[name]).abs().max().item() < 1e-5, name
