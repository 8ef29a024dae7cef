"""DeepSpeed ZeRO and FSDP for real: 2 processes x 1 thread over gloo on the tiny model.

DeepSpeed runs on its CPU accelerator (fp32 only on a CPU); FSDP is FSDP2 through accelerate. Each
run is launched with torch's own launcher, as `tunelab train --nproc-per-node 2` does. The offload
presets build DeepSpeed's CPU Adam extension on first use (minutes; cached in ~/.cache/torch_extensions).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tunelab.runs import RunDir

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parents[2] / "examples" / "sft_lora_tiny.yaml"
FAST = [
    "max_steps=6",
    "logging_steps=1",
    "per_device_train_batch_size=4",
    "cutoff_len=64",
    "eval_strategy=no",
    "val_size=0",
    "save_steps=3",
    "disable_tqdm=true",
    "compute_type=fp32",
    "lora_dropout=0",
    "plot_loss=false",
    "ddp_timeout=300",
    "health.enabled=false",
]
FSDP = ["fsdp=true", 'fsdp_config={"version": 2, "state_dict_type": "FULL_STATE_DICT"}']
# same samples per optimizer step; only the order of float sums (and the all-reduce) differs
LOSS_RTOL = 1e-4
needs_deepspeed = pytest.mark.skipif(
    importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed"
)


def train(out: Path, model: Path, *args: str, nproc: int = 2, timeout: float = 900) -> None:
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
        if nproc > 1
        else [sys.executable]
    )
    command = [
        *launcher,
        "-m",
        "tunelab",
        "train",
        str(EXAMPLE),
        *FAST,
        f"output_dir={out}",
        f"model_name_or_path={model}",
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def losses(run: Path) -> list[tuple[int, float]]:
    return [(r["current_steps"], r["loss"]) for r in RunDir(run).read_log() if "loss" in r]


def assert_same_curve(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> None:
    assert [s for s, _ in a] == [s for s, _ in b] and a
    for (step, x), (_, y) in zip(a, b):
        assert y == pytest.approx(x, rel=LOSS_RTOL), f"step {step}: {x} vs {y}"


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = load_file(a), load_file(b)
    assert left.keys() == right.keys()
    for name in left:  # whole tensors, not ZeRO/FSDP shards
        assert left[name].shape == right[name].shape, name
        assert (left[name] - right[name]).abs().max() < 1e-4, name


@needs_deepspeed
def test_full_finetuning_zero3_and_fsdp_equal_one_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    """ZeRO-3 and FSDP2 over 2 ranks train the curve of 1 process at the same global batch, and both
    leave one normal model.safetensors (gathered 16-bit / full state dict) that export accepts."""
    one, zero3, fsdp = tmp_path / "one", tmp_path / "zero3", tmp_path / "fsdp"
    full = "finetuning_type=full"
    train(one, tiny_model_dir, full, "gradient_accumulation_steps=2", nproc=1)
    train(zero3, tiny_model_dir, full, "deepspeed=z3")
    train(fsdp, tiny_model_dir, full, *FSDP)
    assert_same_curve(losses(one), losses(zero3))
    assert_same_curve(losses(one), losses(fsdp))
    assert_same_weights(one / "model.safetensors", zero3 / "model.safetensors")
    assert_same_weights(one / "model.safetensors", fsdp / "model.safetensors")
    assert (zero3 / "checkpoint-6" / "global_step6").is_dir()  # the resumable ZeRO shards

    exported = tmp_path / "exported"
    proc = subprocess.run(
        [sys.executable, "-m", "tunelab", "export", "--run", str(zero3), f"export_dir={exported}"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "verification PASSED" in proc.stdout + proc.stderr
    assert_same_weights(zero3 / "model.safetensors", next(exported.glob("*.safetensors")))


@needs_deepspeed
@pytest.mark.ci
def test_zero2_lora_resumes_from_its_zero_checkpoint(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A run resumed from a ZeRO checkpoint (per-rank optimizer shards) continues the same curve."""
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    train(whole, tiny_model_dir, "deepspeed=z2")
    shutil.copytree(whole / "checkpoint-3", tmp_path / "checkpoint-3")
    train(resumed, tiny_model_dir, "deepspeed=z2", f"resume_from_checkpoint={tmp_path / 'checkpoint-3'}")
    later = [(s, x) for s, x in losses(whole) if s > 3]
    assert_same_curve(later, [(s, x) for s, x in losses(resumed) if s > 3])
    assert (whole / "adapter_model.safetensors").is_file()
    assert_same_weights(whole / "adapter_model.safetensors", resumed / "adapter_model.safetensors")


@pytest.mark.ci
def test_fsdp_lora_equals_one_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    one, fsdp = tmp_path / "one", tmp_path / "fsdp"
    train(one, tiny_model_dir, "gradient_accumulation_steps=2", nproc=1)
    train(fsdp, tiny_model_dir, *FSDP)
    assert_same_curve(losses(one), losses(fsdp))
    assert_same_weights(one / "adapter_model.safetensors", fsdp / "adapter_model.safetensors")


@needs_deepspeed
def test_offload_presets_train(tiny_model_dir: Path, tmp_path: Path) -> None:
    """ZeRO-2 / ZeRO-3 with CPU offload (DeepSpeed's CPU Adam) train the same curve as plain ZeRO-2."""
    zero2, offload2, offload3 = tmp_path / "z2", tmp_path / "z2_offload", tmp_path / "z3_offload"
    train(zero2, tiny_model_dir, "deepspeed=z2")
    train(offload2, tiny_model_dir, "deepspeed=z2_offload")
    train(offload3, tiny_model_dir, "deepspeed=z3_offload")
    assert_same_curve(losses(zero2), losses(offload2))
    assert_same_curve(losses(zero2), losses(offload3))
    assert (offload3 / "adapter_model.safetensors").is_file()
