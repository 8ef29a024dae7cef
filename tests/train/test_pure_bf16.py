"""pure_bf16: weights, gradients and optimizer states stay bf16, with no autocast (LLaMA-Factory's meaning)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from tunelab.config import config_from_dict
from tunelab.config.schema import FinetuningArgs
from tunelab.errors import ConfigError
from tunelab.model import apply_finetuning
from tunelab.train.builders import build_training_arguments


def _config(tmp_path: Path, **values: object):
    return config_from_dict({"model_name_or_path": "tiny:llama", "output_dir": str(tmp_path), **values})


def test_pure_bf16_means_bf16_weights_without_amp(tmp_path: Path) -> None:
    config = _config(tmp_path, pure_bf16=True)
    assert config.compute_type == "bf16"
    args = build_training_arguments(config, tmp_path, torch.bfloat16)
    assert args.bf16 is False and args.fp16 is False  # no autocast: the weights are bf16 already
    assert build_training_arguments(_config(tmp_path, bf16=True), tmp_path, torch.bfloat16).bf16 is True
    with pytest.raises(ConfigError, match="pure_bf16: true trains in bf16, but compute_type: fp32"):
        _config(tmp_path, pure_bf16=True, compute_type="fp32")


@pytest.mark.parametrize("finetuning_type", ["lora", "freeze"])
def test_pure_bf16_step_trains_exactly_the_trainable_in_bf16(
    tiny_model_dir: Path, finetuning_type: str
) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    model = apply_finetuning(
        base, FinetuningArgs(finetuning_type=finetuning_type, pure_bf16=True, lora_rank=4)
    )
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())  # nothing upcast to fp32
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.tensor([[3, 50, 60, 70, 80, 90, 100, 2]])
    for _ in range(2):  # LoRA's B starts at 0: the second step moves A too
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed == trainable
    assert all(s["exp_avg"].dtype == torch.bfloat16 for s in optimizer.state.values())
    # without pure_bf16 the trainable weights are upcast (optimizer steps below bf16's resolution)
    upcast = apply_finetuning(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16), FinetuningArgs()
    )
    assert {p.dtype for p in upcast.parameters() if p.requires_grad} == {torch.float32}
