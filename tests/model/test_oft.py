"""finetuning_type: oft trains exactly PEFT's OFT rotations, and its run reloads and exports exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from tunelab.config import config_from_dict
from tunelab.config.schema import FinetuningArgs
from tunelab.errors import ConfigError
from tunelab.model.adapters import apply_finetuning

IDS = torch.tensor([[3, 50, 60, 70, 80, 90, 100, 2]])


def test_oft_step_changes_exactly_the_oft_blocks(tiny_model_dir: Path) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = apply_finetuning(
        base, FinetuningArgs(finetuning_type="oft", oft_block_size=16, oft_target=["q_proj", "v_proj"])
    )
    trainable = {name for name, param in model.named_parameters() if param.requires_grad}
    assert trainable and all(".oft_R." in name for name in trainable)
    assert {name.split(".self_attn.")[1].split(".")[0] for name in trainable} == {"q_proj", "v_proj"}
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    model(input_ids=IDS, labels=IDS).loss.backward()
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed == trainable


def test_oft_keys_are_validated(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of oft_rank and oft_block_size"):
        config_from_dict({"model_name_or_path": "tiny:llama", "finetuning_type": "oft", "oft_rank": 4})
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    with pytest.raises(ConfigError, match="oft_target: unknown module"):
        apply_finetuning(base, FinetuningArgs(finetuning_type="oft", oft_target=["nope"]))


def test_oft_run_exports_and_verifies(tiny_model_dir: Path, tmp_path: Path, tiny_sft_config: Any) -> None:
    from tunelab.export import export_model
    from tunelab.train import train

    out = tmp_path / "run"
    config = tiny_sft_config(tiny_model_dir, out, finetuning_type="oft", oft_block_size=16)
    assert train(config).status == "finished"
    assert (out / "adapter_config.json").is_file()
    result = export_model(run=out, overrides=[f"export_dir={tmp_path / 'merged'}"])
    assert result.verification is not None and result.verification.passed
