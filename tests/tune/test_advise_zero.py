"""advise with several devices: ZeRO sharding before quantization, offload last, more devices when nothing fits."""

from __future__ import annotations

from pathlib import Path

import yaml

from tunelab.config import load_config
from tunelab.tune.advise import advise
from tunelab.tune.advise_zero import devices_needed, too_big_note
from tunelab.tune.hardware import GIB
from tunelab.tune.memory import TrainSetup
from tunelab.tune.presets import find_preset
from tunelab.tune.zero import per_device_memory


def _config(tmp_path: Path, **extra: object):
    values = {
        "model_name_or_path": "not-here",
        "dataset": "instruct_en",
        "dataset_dir": "builtin",
        "template": "chatml",
        "output_dir": str(tmp_path / "run"),
        "cutoff_len": 1024,
        **extra,
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return load_config(path)


def test_full_finetuning_on_8_gpus_gets_a_zero_stage_not_lora(tmp_path: Path) -> None:
    advice = advise(
        _config(tmp_path, finetuning_type="full"), model_config="llama2-7b", gpu_mem=40, nproc_per_node=8
    )
    values = advice.updates()
    assert "finetuning_type" not in values and values["deepspeed"] in ("z2", "z3")
    assert advice.fits and advice.peak <= 40 * GIB
    zero = [step for step in advice.ladder if "DeepSpeed" in step.en]
    assert zero and zero[-1].fits and all(not step.fits for step in zero[:-1])
    assert "quantization_bit" not in values  # sharding keeps the weights in 16 bits
    why = next(item for item in advice.items if item.key == "deepspeed")
    assert "pip install deepspeed" in why.en and "deepspeed" in why.zh
    # the batch is global: micro-batch x accumulation x 8 devices
    batch = next(item for item in advice.items if item.key == "per_device_train_batch_size")
    assert "x 8" in batch.en


def test_one_device_never_gets_sharding(tmp_path: Path) -> None:
    advice = advise(_config(tmp_path), model_config="llama2-70b", gpu_mem=48)
    assert not any("ZeRO-2 on" in step.en or "ZeRO-3 on" in step.en for step in advice.ladder)
    assert advice.updates()["quantization_bit"] == 4  # QLoRA comes before offloading to CPU RAM


def test_when_nothing_fits_advise_names_the_devices_that_would() -> None:
    shape = find_preset("llama2-7b").shape
    setup = TrainSetup(method="full", compute_bytes=2, seq_len=512, gradient_checkpointing=True)
    budget = 40 * GIB
    assert per_device_memory(shape, setup, world_size=2, stage=3).peak > budget
    assert per_device_memory(shape, setup, world_size=4, stage=3).peak <= budget
    assert devices_needed(shape, setup, budget=budget, start=2) == 4
    en, zh = too_big_note(shape, setup, budget=budget, devices=2)
    assert "train on 4 devices with deepspeed: z3" in en and "4 个设备" in zh
    assert devices_needed(shape, setup, budget=GIB // 10, start=1) is None


def test_offload_is_the_last_resort_after_quantization(tmp_path: Path) -> None:
    """70B LoRA on one 16 GB GPU: even 4-bit weights do not fit, ZeRO-3 offload does (without quantization)."""
    advice = advise(_config(tmp_path), model_config="llama2-70b", gpu_mem=16)
    steps = [step.en for step in advice.ladder]
    assert steps.index(next(s for s in steps if "4-bit" in s)) < steps.index(
        next(s for s in steps if "offload" in s)
    )
    values = advice.updates()
    assert values["deepspeed"] == "z3_offload" and "quantization_bit" not in values and advice.fits
    why = next(item for item in advice.items if item.key == "deepspeed")
    assert "CPU RAM" in why.en
