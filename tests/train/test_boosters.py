"""Boosters (Liger, Unsloth) refuse clearly where their GPU or package is missing, before any loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunelab.config import load_config
from tunelab.errors import ConfigError, ResourceError
from tunelab.model.unsloth import unsloth_lora_kwargs
from tunelab.train import train
from tunelab.train.boosters import BOOSTER_PACKAGES, booster_problem


@pytest.mark.parametrize("key", sorted(BOOSTER_PACKAGES))
def test_booster_without_cuda_names_the_gpu_and_the_alternative(key: str) -> None:
    message, hint = booster_problem(key, cuda_available=False)
    assert key in message and "CUDA" in message
    assert f"{key}: false" in hint


def test_booster_without_its_package_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    message, hint = booster_problem("enable_liger_kernel", cuda_available=True)
    assert "liger-kernel" in message and "pip install liger-kernel" in hint


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_train_refuses_before_writing_anything(tmp_path: Path, tiny_model_dir: Path) -> None:
    out = tmp_path / "run"
    config = load_config(
        None,
        [
            f"model_name_or_path={tiny_model_dir}",
            "dataset=instruct_en",
            "dataset_dir=builtin",
            "template=chatml",
            f"output_dir={out}",
            "enable_liger_kernel=true",
            "use_unsloth=true",
        ],
    )
    with pytest.raises(ResourceError) as err:
        train(config)
    assert "enable_liger_kernel" in str(err.value) and "use_unsloth" in str(err.value)
    assert not out.exists()


def test_unsloth_lora_arguments_follow_the_config(tiny_model_dir: Path) -> None:
    keys = [f"model_name_or_path={tiny_model_dir}", "output_dir=/tmp/x", "lora_rank=16", "lora_dropout=0"]
    kwargs = unsloth_lora_kwargs(load_config(None, keys), ["q_proj", "v_proj"])
    assert (
        kwargs["r"] == 16 and kwargs["lora_alpha"] == 32 and kwargs["target_modules"] == ["q_proj", "v_proj"]
    )
    with pytest.raises(ConfigError, match="finetuning_type"):
        unsloth_lora_kwargs(load_config(None, [*keys, "finetuning_type=full"]), [])
