"""PiSSA runs reload and export exactly: the saved adapter is a plain LoRA delta on the original base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from tunelab.config.schema import FinetuningArgs
from tunelab.model.adapters import apply_finetuning, load_adapters
from tunelab.model.pissa import save_pissa_as_lora

IDS = torch.tensor([[3, 50, 60, 70, 80, 90, 100, 2]])


def _logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=IDS).logits[0].float()


def _train_two_steps(model: torch.nn.Module) -> None:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        model(input_ids=IDS, labels=IDS).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


@pytest.mark.parametrize("pissa_iter", [16, -1])
def test_pissa_adapter_reloads_identically_onto_the_original_base(
    tiny_model_dir: Path, tmp_path: Path, pissa_iter: int
) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    original = _logits(base)
    model = apply_finetuning(base, FinetuningArgs(pissa_init=True, pissa_iter=pissa_iter, lora_rank=4))
    before_training = _logits(model.eval())
    # PiSSA moves the principal part into the adapter without changing the function
    assert (before_training - original).abs().max() < 1e-3
    _train_two_steps(model.train())
    trained = _logits(model.eval())
    assert (trained - original).abs().max() > 1e-2  # training changed the model

    model.save_pretrained(str(tmp_path))
    assert save_pissa_as_lora(model, tmp_path)
    saved = json.loads((tmp_path / "adapter_config.json").read_text())
    assert saved["init_lora_weights"] is True and saved["r"] == 8  # plain LoRA of rank 2r
    reloads = []
    for _ in range(2):
        fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        reloads.append(_logits(load_adapters(fresh, [str(tmp_path)], is_trainable=False).eval()))
    assert torch.equal(reloads[0], reloads[1])
    assert (reloads[0] - trained).abs().max() < 1e-4
    assert not (tmp_path / "pissa_backup").exists()  # pissa_convert: false keeps no backup


def test_pissa_init_is_the_same_on_every_build(tiny_model_dir: Path) -> None:
    """A resumed run rebuilds W_res before loading its checkpoint: the fast SVD must not differ."""
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)  # whatever the global RNG, the initialisation is the same
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        model = apply_finetuning(base, FinetuningArgs(pissa_init=True, lora_rank=4))
        states.append({n: p.detach().clone() for n, p in model.named_parameters()})
    assert all(torch.equal(states[0][n], states[1][n]) for n in states[0])


def test_pissa_run_exports_and_verifies(tiny_model_dir: Path, tmp_path: Path, tiny_sft_config: Any) -> None:
    from tunelab.export import export_model
    from tunelab.train import train

    out = tmp_path / "run"
    config = tiny_sft_config(
        tiny_model_dir,
        out,
        finetuning_type="lora",
        pissa_init=True,
        pissa_convert=True,
        lora_rank=4,
        save_steps=2,
    )
    assert train(config).status == "finished"
    assert (out / "pissa_init" / "adapter_model.safetensors").is_file()
    assert json.loads((out / "pissa_backup" / "adapter_config.json").read_text())["init_lora_weights"] != True  # noqa: E712
    # the checkpoint holds the unconverted adapter: loading it re-runs PiSSA, under the same seed
    final, checkpoint = [], []
    for target, path in (
        (final, out),
        (checkpoint, out / "checkpoint-2"),
        (checkpoint, out / "checkpoint-2"),
    ):
        fresh = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        target.append(_logits(load_adapters(fresh, [str(path)], is_trainable=False).eval()))
    assert torch.equal(checkpoint[0], checkpoint[1])
    assert (checkpoint[0] - final[0]).abs().max() < 1e-4
    result = export_model(run=out, overrides=[f"export_dir={tmp_path / 'merged'}"])
    assert result.verification is not None and result.verification.passed
    assert result.verification.max_abs_diff < 1e-3
