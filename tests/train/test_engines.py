"""DeepSpeed and FSDP wiring: TrainingArguments keywords, and the errors where an engine cannot run here.

The real 2-process runs are in test_engines_multi.py (slow).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from tunelab.config import config_from_dict
from tunelab.config.engines import deepspeed_preset_path
from tunelab.errors import ConfigError, ResourceError
from tunelab.train.engines import engine_arguments, engine_compute_type

BASE = {
    "model_name_or_path": "tiny:llama",
    "dataset": "instruct_en",
    "dataset_dir": "builtin",
    "template": "chatml",
}


def training(**values: object):
    return config_from_dict({**BASE, **values}).training


def test_no_engine_adds_nothing() -> None:
    assert engine_arguments(training(), use_cuda=False, half_precision=False) == {}


def test_fsdp_keys_go_to_training_arguments_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun --nproc-per-node 2
    fsdp_config = {"version": 2, "state_dict_type": "FULL_STATE_DICT"}
    kwargs = engine_arguments(
        training(fsdp="full_shard auto_wrap", fsdp_config=fsdp_config), use_cuda=False, half_precision=False
    )
    assert kwargs == {"fsdp": "full_shard auto_wrap", "fsdp_config": fsdp_config, "use_cpu": True}
    assert kwargs["fsdp_config"] is not fsdp_config  # TrainingArguments edits its copy in place


def test_fsdp_in_one_process_says_to_launch_several(monkeypatch: pytest.MonkeyPatch) -> None:
    """transformers would stop with a bare ValueError; LLaMA-Factory's v1 fsdp2 examples get here."""
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ConfigError) as caught:
        engine_arguments(training(fsdp=True), use_cuda=False, half_precision=False)
    assert "one process" in caught.value.message and "--nproc-per-node N" in caught.value.hint


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed")
def test_a_preset_becomes_its_shipped_json_on_a_gpu() -> None:
    kwargs = engine_arguments(training(deepspeed="z3"), use_cuda=True, half_precision=True)
    assert kwargs == {"deepspeed": str(deepspeed_preset_path("z3")), "use_cpu": False}
    assert Path(kwargs["deepspeed"]).is_file()


def test_missing_deepspeed_names_the_install_and_the_alternatives(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a)
    )
    with pytest.raises(ResourceError) as caught:
        engine_arguments(training(deepspeed="z2"), use_cuda=True, half_precision=True)
    assert "not installed" in caught.value.message
    assert "pip install deepspeed" in caught.value.hint and "fsdp: true" in caught.value.hint
    assert "--nproc-per-node" in caught.value.hint


@pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed is not installed")
def test_deepspeed_on_a_cpu_needs_fp32_and_a_launcher(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="fp32 only") as caught:
        engine_arguments(training(deepspeed="z2"), use_cuda=False, half_precision=True)
    assert "bf16=false" in caught.value.hint  # an LF config's bf16: true would contradict compute_type
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):  # no launcher started this process
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as caught:
        engine_arguments(training(deepspeed="z2"), use_cuda=False, half_precision=False)
    assert "--nproc-per-node 2" in caught.value.hint


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the choice on a machine without a GPU")
def test_auto_precision_is_fp32_for_deepspeed_on_a_cpu() -> None:
    """An LF DeepSpeed config with bf16=false leaves compute_type auto, which may pick bf16 on this CPU."""
    assert engine_compute_type("auto", deepspeed="z2") == "fp32"
    assert engine_compute_type("auto", deepspeed=None) == "auto"
    assert engine_compute_type("bf16", deepspeed="z2") == "bf16"  # asked for: refused later, clearly


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_qlora_with_fsdp_refuses_clearly_without_a_gpu() -> None:
    from tunelab.model import load_model_for_training

    config = config_from_dict({**BASE, "quantization_bit": 4, "fsdp": True})
    with pytest.raises(ResourceError) as caught:
        load_model_for_training(config, torch.float32)
    assert "no CUDA GPU" in caught.value.message and "plain LoRA" in caught.value.hint
