"""Mixture-of-Depths wrappers: exactness at full capacity, capacity honoured, training, save/load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

from tunelab.errors import ModelError
from tunelab.model.mod import MoDLayer, convert_to_mod, load_mod


def _model(kind: str = "llama", layers: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    cls = LlamaConfig if kind == "llama" else Qwen2Config
    config = cls(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        attn_implementation="sdpa",
    )
    return AutoModelForCausalLM.from_config(config).float()


def _ids(batch: int = 2, length: int = 16) -> torch.Tensor:
    return torch.randint(0, 64, (batch, length), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_full_capacity_and_unit_router_weight_equals_the_plain_model(kind: str) -> None:
    model = _model(kind)
    ids = _ids()
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # left padding: a 4-D mask goes through the wrapper's slicing
    with torch.no_grad():
        plain = model(ids, attention_mask=mask).logits
    convert_to_mod(model, capacity=1.0)
    for layer in model.model.layers:
        if isinstance(layer, MoDLayer):
            torch.nn.init.zeros_(layer.router.weight)  # 1 + r = 1
    model.train()
    with torch.no_grad():
        routed = model(ids, attention_mask=mask).logits
    assert [isinstance(x, MoDLayer) for x in model.model.layers] == [False, True, False, True]
    assert torch.allclose(routed[mask.bool()], plain[mask.bool()], atol=1e-5)


def test_half_capacity_sends_exactly_half_of_each_sequence_through_routed_blocks() -> None:
    model = _model()
    convert_to_mod(model, capacity=0.5)
    seen: dict[int, tuple[int, ...]] = {}
    for i, layer in enumerate(model.model.layers):
        target = layer.layer if isinstance(layer, MoDLayer) else layer
        target.register_forward_hook(
            lambda _m, args, _o, i=i: seen.update({i: tuple(args[0].shape)}) and None
        )
    model.train()
    model(_ids(batch=3, length=16))
    assert seen == {0: (3, 16, 32), 1: (3, 8, 32), 2: (3, 16, 32), 3: (3, 8, 32)}
    model.eval()  # generation/eval: every token goes through every block (top-k would look ahead)
    model(_ids(batch=3, length=16))
    assert seen[1] == (3, 16, 32)


def test_training_step_updates_router_and_block_and_skipped_tokens_keep_the_residual() -> None:
    model = _model()
    convert_to_mod(model, capacity=0.25)
    routed = model.model.layers[1]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    ids = _ids()
    inputs: dict[str, torch.Tensor] = {}
    outputs: dict[str, torch.Tensor] = {}

    def record(_module: torch.nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        inputs["x"], outputs["y"] = args[0].detach(), out.detach()

    routed.register_forward_hook(record)
    loss = model(ids, labels=ids).loss
    with torch.no_grad():
        scores = routed.router(inputs["x"]).squeeze(-1)
    kept = torch.zeros_like(scores, dtype=torch.bool).scatter(1, scores.topk(4, dim=1).indices, True)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert torch.equal(outputs["y"][~kept], inputs["x"][~kept])  # skipped tokens: residual unchanged
    assert not torch.allclose(outputs["y"][kept], inputs["x"][kept])
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert "model.layers.1.router.weight" in changed
    assert "model.layers.1.layer.mlp.down_proj.weight" in changed


def test_convert_save_load_reproduces_logits(tmp_path: Path) -> None:
    model = _model("qwen2")
    convert_to_mod(model)
    with torch.no_grad():
        for layer in model.model.layers:
            if isinstance(layer, MoDLayer):
                layer.router.weight.normal_(std=0.1)
    model.save_pretrained(tmp_path)
    ids = _ids()
    model.eval()
    with torch.no_grad():
        expected = model(ids).logits
    plain, info = AutoModelForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"]  # the checkpoint's base weights keep their original names
    loaded = load_mod(plain, tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, expected, atol=1e-5)
    model.train()
    loaded.train()
    with torch.no_grad():
        assert torch.allclose(loaded(ids).logits, model(ids).logits, atol=1e-5)


def test_load_of_an_unconverted_model_says_so(tmp_path: Path) -> None:
    model = _model()
    model.save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="mixture_of_depths: convert"):
        load_mod(AutoModelForCausalLM.from_pretrained(tmp_path), tmp_path)


def test_packed_samples_stay_isolated_inside_routed_blocks() -> None:
    model = _model()
    ids = _ids(batch=1, length=16)
    positions = torch.tensor([list(range(6)) + list(range(10))])  # two packed samples, no attention mask
    with torch.no_grad():
        plain = model(ids, position_ids=positions, use_cache=False).logits
        alone = model(ids[:, 6:], position_ids=positions[:, 6:], use_cache=False).logits
    assert torch.allclose(plain[:, 6:], alone, atol=1e-5)
    convert_to_mod(model, capacity=1.0)
    for layer in model.model.layers:
        if isinstance(layer, MoDLayer):
            torch.nn.init.zeros_(layer.router.weight)
    model.train()
    with torch.no_grad():
        assert torch.allclose(model(ids, position_ids=positions, use_cache=False).logits, plain, atol=1e-5)
