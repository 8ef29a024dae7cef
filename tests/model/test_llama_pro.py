"""LLaMA Pro: expansion keeps the model's function, and training changes only the added blocks."""

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
from tunelab.model.llama_pro import expand_model, expanded_layer_indices

IDS = torch.tensor([[3, 50, 60, 70, 80, 90, 100, 2]])


@pytest.fixture(scope="module")
def expanded_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("llama-pro") / "expanded"
    assert expand_model(str(tiny_model_dir), out, 2) == [1, 3]
    return out


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=IDS).logits


def test_expansion_adds_identity_blocks(tiny_model_dir: Path, expanded_dir: Path) -> None:
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    expanded = AutoModelForCausalLM.from_pretrained(expanded_dir, dtype=torch.float32).eval()
    assert expanded.config.num_hidden_layers == 4
    assert torch.allclose(_logits(original), _logits(expanded), atol=1e-5)
    # the new block is a copy of the one before it, except the zeroed residual writes
    new, old = expanded.model.layers[1], original.model.layers[0]
    assert torch.equal(new.self_attn.q_proj.weight, old.self_attn.q_proj.weight)
    assert not new.self_attn.o_proj.weight.any() and not new.mlp.down_proj.weight.any()
    assert [layer.self_attn.layer_idx for layer in expanded.model.layers] == [0, 1, 2, 3]


def _step_changes(model: torch.nn.Module, n: int = 2) -> set[str]:
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(n):
        model(input_ids=IDS, labels=IDS).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return {name for name, param in model.named_parameters() if not torch.equal(param.detach(), before[name])}


@pytest.mark.parametrize("finetuning_type", ["freeze", "lora"])
def test_use_llama_pro_trains_only_the_added_blocks(expanded_dir: Path, finetuning_type: str) -> None:
    model = AutoModelForCausalLM.from_pretrained(expanded_dir, dtype=torch.float32)
    args = FinetuningArgs(finetuning_type=finetuning_type, use_llama_pro=True, freeze_trainable_layers=2)
    model = apply_finetuning(model, args)
    changed = _step_changes(model)
    assert changed == {n for n, p in model.named_parameters() if p.requires_grad}
    layers = {int(name.split(".layers.")[1].split(".")[0]) for name in changed}
    assert layers == {1, 3}


def test_layer_count_must_fit_the_number_of_added_blocks() -> None:
    assert expanded_layer_indices(24, 8) == [2, 5, 8, 11, 14, 17, 20, 23]
    with pytest.raises(ConfigError, match="freeze_trainable_layers=5"):
        expanded_layer_indices(24, 5)
    with pytest.raises(ConfigError, match="use_llama_pro trains only the expanded blocks"):
        config_from_dict(
            {"model_name_or_path": "tiny:llama", "finetuning_type": "full", "use_llama_pro": True}
        )


def test_expand_model_cli_then_train_the_new_blocks(
    tiny_model_dir: Path, tmp_path: Path, tiny_sft_config: Any
) -> None:
    from typer.testing import CliRunner

    from tunelab.cli import app
    from tunelab.train import train

    out = tmp_path / "expanded"
    result = CliRunner().invoke(app, ["expand-model", str(tiny_model_dir), str(out), "--num-expand", "1"])
    assert result.exit_code == 0, result.output
    assert "new identity blocks at layers 2" in result.output
    bad = CliRunner().invoke(
        app, ["expand-model", str(tiny_model_dir), str(tmp_path / "x"), "--num-expand", "3"]
    )
    assert bad.exit_code != 0 and "must divide the model's 2 layers" in bad.output
    config = tiny_sft_config(
        out, tmp_path / "run", finetuning_type="freeze", use_llama_pro=True, freeze_trainable_layers=1
    )
    run = train(config)
    assert run.status == "finished"
    trained = AutoModelForCausalLM.from_pretrained(run.run_dir, dtype=torch.float32)
    before = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    changed = {
        name
        for (name, p), (_, q) in zip(trained.named_parameters(), before.named_parameters(), strict=True)
        if not torch.equal(p, q)
    }
    assert changed and all(name.startswith("model.layers.2.") for name in changed)
