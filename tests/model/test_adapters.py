"""Which parameters train under lora / freeze / full, checked by exact names on the tiny llama model."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from tunelab.config.schema import FinetuningArgs
from tunelab.errors import ConfigError, ModelError
from tunelab.model.adapters import apply_finetuning, find_decoder_layers, find_lora_targets, load_adapters
from tunelab.model.parameters import (
    build_loraplus_param_groups,
    count_parameters,
    upcast_trainable_parameters,
)

PROJECTIONS = ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]


@pytest.fixture
def model(tiny_model_dir: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir)


def _trainable(model: torch.nn.Module) -> set[str]:
    return {name for name, param in model.named_parameters() if param.requires_grad}


def _lora(**kwargs: object) -> FinetuningArgs:
    return FinetuningArgs(finetuning_type="lora", **kwargs)


def _train_step(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """One forward+backward+SGD step; returns the parameters as they were before it."""
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    ids = torch.tensor([[3, 50, 60, 70, 80, 90, 100, 2]])
    loss = model(input_ids=ids, labels=ids).loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    optimizer.step()
    return before


def _changed(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> set[str]:
    return {name for name, param in model.named_parameters() if not torch.equal(param.detach(), before[name])}


def test_find_targets_and_layers(model: torch.nn.Module) -> None:
    assert find_lora_targets(model) == PROJECTIONS  # lm_head excluded
    assert find_decoder_layers(model) == ("model.layers", 2)


def test_lora_all_trains_exactly_the_adapter_matrices(model: torch.nn.Module) -> None:
    peft_model = apply_finetuning(model, _lora(lora_rank=4))
    expected = {
        f"base_model.model.model.layers.{layer}.{block}.{proj}.lora_{ab}.default.weight"
        for layer in (0, 1)
        for block, projs in (
            ("self_attn", ["q_proj", "k_proj", "v_proj", "o_proj"]),
            ("mlp", ["gate_proj", "up_proj", "down_proj"]),
        )
        for proj in projs
        for ab in ("A", "B")
    }
    assert _trainable(peft_model) == expected
    layer = peft_model.base_model.model.model.layers[0].self_attn.q_proj
    assert layer.scaling["default"] == 8.0 / 4  # alpha defaults to 2 x rank -> scaling 2
    # B starts at zero (output unchanged), so a step must move exactly the A and B we expect... B first.
    before = _train_step(peft_model)
    changed = _changed(peft_model, before)
    assert changed and changed <= expected
    assert all(".lora_B." in name for name in changed)  # A gets no gradient while B is still zero
    before = _train_step(peft_model)
    assert _changed(peft_model, before) == expected


def test_lora_named_targets_and_additional_target(model: torch.nn.Module) -> None:
    peft_model = apply_finetuning(
        model,
        _lora(lora_target="q_proj,v_proj", additional_target="embed_tokens", lora_alpha=32, lora_rank=8),
    )
    names = _trainable(peft_model)
    lora = {n for n in names if "lora_" in n}
    assert {re.search(r"(\w+_proj)\.lora", n).group(1) for n in lora} == {"q_proj", "v_proj"}
    assert len(lora) == 2 * 2 * 2  # 2 layers x 2 modules x (A, B)
    assert names - lora == {"base_model.model.model.embed_tokens.modules_to_save.default.weight"}
    assert peft_model.base_model.model.model.layers[1].self_attn.v_proj.scaling["default"] == 32 / 8


def test_lora_unknown_target_lists_available(model: torch.nn.Module) -> None:
    with pytest.raises(ConfigError) as err:
        apply_finetuning(model, _lora(lora_target="q_proj,query_key_value"))
    assert "query_key_value" in err.value.message
    assert "q_proj" in err.value.hint and "gate_proj" in err.value.hint


def test_rslora_scaling(model: torch.nn.Module) -> None:
    peft_model = apply_finetuning(model, _lora(lora_rank=16, lora_alpha=8, use_rslora=True))
    layer = peft_model.base_model.model.model.layers[0].mlp.down_proj
    assert layer.scaling["default"] == pytest.approx(8 / math.sqrt(16))


def test_dora_adds_trainable_magnitudes(model: torch.nn.Module) -> None:
    peft_model = apply_finetuning(model, _lora(lora_rank=4, use_dora=True))
    magnitudes = {n for n in _trainable(peft_model) if "lora_magnitude_vector" in n}
    assert len(magnitudes) == 2 * len(PROJECTIONS)
    q_proj = peft_model.base_model.model.model.layers[0].self_attn.q_proj
    assert q_proj.lora_magnitude_vector["default"].weight.shape == (q_proj.base_layer.out_features,)


def test_pissa_moves_principal_components_out_of_the_base_weight(model: torch.nn.Module) -> None:
    original = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    peft_model = apply_finetuning(model, _lora(lora_rank=4, pissa_init=True, pissa_iter=-1))
    q_proj = peft_model.base_model.model.model.layers[0].self_attn.q_proj
    residual = q_proj.base_layer.weight.detach()
    assert not torch.allclose(residual, original)
    assert torch.count_nonzero(q_proj.lora_B["default"].weight) > 0  # not the usual zero init
    # base + scaled B@A reconstructs the original weight, so outputs start unchanged.
    delta = q_proj.lora_B["default"].weight @ q_proj.lora_A["default"].weight * q_proj.scaling["default"]
    torch.testing.assert_close(residual + delta, original, rtol=1e-4, atol=1e-5)


def test_pissa_fast_svd_variant(model: torch.nn.Module) -> None:
    peft_model = apply_finetuning(model, _lora(lora_rank=4, pissa_init=True, pissa_iter=4))
    assert peft_model.peft_config["default"].init_lora_weights == "pissa_niter_4"


def test_freeze_last_layer_trains_only_it(model: torch.nn.Module) -> None:
    result = apply_finetuning(model, FinetuningArgs(finetuning_type="freeze", freeze_trainable_layers=1))
    names = _trainable(result)
    assert names and all(n.startswith("model.layers.1.") for n in names)
    assert len(names) == 9  # 7 projections + 2 norms
    before = _train_step(result)
    assert _changed(result, before) == names


def test_freeze_first_layer_with_module_filter_and_extras(model: torch.nn.Module) -> None:
    args = FinetuningArgs(
        finetuning_type="freeze",
        freeze_trainable_layers=-1,
        freeze_trainable_modules="mlp",
        freeze_extra_modules="embed_tokens,norm",
    )
    names = _trainable(apply_finetuning(model, args))
    assert names == {
        "model.layers.0.mlp.gate_proj.weight",
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
        "model.embed_tokens.weight",
        "model.norm.weight",
    }


def test_freeze_unknown_names_list_available(model: torch.nn.Module) -> None:
    with pytest.raises(ConfigError) as err:
        apply_finetuning(
            model, FinetuningArgs(finetuning_type="freeze", freeze_trainable_modules="attention")
        )
    assert "attention" in err.value.message and "self_attn" in err.value.hint and "mlp" in err.value.hint
    with pytest.raises(ConfigError) as err:
        apply_finetuning(model, FinetuningArgs(finetuning_type="freeze", freeze_extra_modules="wte"))
    assert "embed_tokens" in err.value.hint and "lm_head" in err.value.hint
    with pytest.raises(ConfigError, match="has 2 layers"):
        apply_finetuning(model, FinetuningArgs(finetuning_type="freeze", freeze_trainable_layers=3))


def test_full_trains_everything(model: torch.nn.Module) -> None:
    model.requires_grad_(False)
    result = apply_finetuning(model, FinetuningArgs(finetuning_type="full"))
    assert _trainable(result) == {name for name, _ in result.named_parameters()}
    trainable, total = count_parameters(result)
    assert trainable == total == sum(p.numel() for p in result.parameters())


def test_not_trainable_freezes_everything(model: torch.nn.Module) -> None:
    result = apply_finetuning(model, _lora(), is_trainable=False)
    assert _trainable(result) == set() and not result.training


def test_count_parameters_with_lora(model: torch.nn.Module) -> None:
    _, total_before = count_parameters(model)
    peft_model = apply_finetuning(model, _lora(lora_rank=4))
    trainable, total = count_parameters(peft_model)
    # Per layer: r x (in + out) for each projection.
    shapes = {
        "q_proj": (64, 64),
        "k_proj": (64, 32),
        "v_proj": (64, 32),
        "o_proj": (64, 64),
        "gate_proj": (64, 128),
        "up_proj": (64, 128),
        "down_proj": (128, 64),
    }
    assert trainable == 2 * sum(4 * (i + o) for i, o in shapes.values())
    assert total == total_before + trainable


def test_half_precision_trainables_are_upcast(tiny_model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16)
    result = apply_finetuning(model, FinetuningArgs(finetuning_type="freeze", freeze_trainable_layers=1))
    for name, param in result.named_parameters():
        assert param.dtype == (torch.float32 if param.requires_grad else torch.bfloat16), name
    assert upcast_trainable_parameters(result) == 0


def test_loraplus_groups(model: torch.nn.Module) -> None:
    peft_model = apply_finetuning(model, _lora(lora_rank=4, use_dora=True, additional_target="embed_tokens"))
    groups = {g["name"]: g for g in build_loraplus_param_groups(peft_model, 1e-4, 16.0, 0.01)}
    assert groups["lora_b"]["lr"] == pytest.approx(1.6e-3)
    assert groups["decay"]["lr"] == groups["embedding"]["lr"] == groups["no_decay"]["lr"] == 1e-4
    assert groups["no_decay"]["weight_decay"] == 0.0 and groups["lora_b"]["weight_decay"] == 0.01
    by_id = {id(p): n for n, p in peft_model.named_parameters()}
    assert all("lora_B" in by_id[id(p)] for p in groups["lora_b"]["params"])
    assert all("lora_A" in by_id[id(p)] for p in groups["decay"]["params"])
    assert all("magnitude" in by_id[id(p)] for p in groups["no_decay"]["params"])
    assert [by_id[id(p)] for p in groups["embedding"]["params"]] == [
        "base_model.model.model.embed_tokens.modules_to_save.default.weight"
    ]
    n_grouped = sum(len(g["params"]) for g in groups.values())
    assert n_grouped == len(_trainable(peft_model))
    torch.optim.AdamW(list(groups.values()))  # groups are valid optimizer input


def test_loraplus_without_lora_is_a_config_error(model: torch.nn.Module) -> None:
    with pytest.raises(ConfigError, match="LoRA B"):
        build_loraplus_param_groups(model, 1e-4, 16.0, 0.0)


def test_load_adapters_continues_training_the_last(tiny_model_dir: Path, tmp_path: Path) -> None:
    first = apply_finetuning(AutoModelForCausalLM.from_pretrained(tiny_model_dir), _lora(lora_rank=4))
    _train_step(first)
    _train_step(first)
    first.save_pretrained(tmp_path / "a1")
    second = apply_finetuning(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), _lora(lora_target="q_proj")
    )
    _train_step(second)
    _train_step(second)
    second.save_pretrained(tmp_path / "a2")

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    original_gate = base.model.layers[0].mlp.gate_proj.weight.detach().clone()
    stacked = load_adapters(base, [str(tmp_path / "a1"), str(tmp_path / "a2")], is_trainable=True)
    stacked = apply_finetuning(stacked, _lora())  # keeps the loaded adapter instead of adding one
    names = _trainable(stacked)
    assert names and all("q_proj.lora_" in n for n in names)  # a1 merged away, a2 trains
    merged_gate = stacked.base_model.model.model.layers[0].mlp.gate_proj.weight
    assert not torch.equal(merged_gate, original_gate)  # a1's trained delta is now part of the weights
    before = _train_step(stacked)
    assert _changed(stacked, before) == names

    frozen = load_adapters(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir), [str(tmp_path / "a1")], is_trainable=False
    )
    assert _trainable(frozen) == set()
    with pytest.raises(ConfigError, match="finetuning_type=freeze"):
        apply_finetuning(frozen, FinetuningArgs(finetuning_type="freeze", freeze_trainable_layers=1))


def test_load_adapters_rejects_non_adapter_dir(model: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        load_adapters(model, [str(tmp_path)], is_trainable=True)
    assert str(tmp_path) in err.value.message and "adapter_config.json" in err.value.message
