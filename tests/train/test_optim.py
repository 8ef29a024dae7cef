"""Optimizers: weight-decay groups, each optimizer trains, LoRA+ rates, 8-bit requirements, Trainer hooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, TrainingArguments

from tunelab.config.schema import FinetuningArgs, TrainingArgs
from tunelab.errors import ConfigError, ModelError, ResourceError
from tunelab.model import apply_finetuning, build_loraplus_param_groups
from tunelab.train.optim import (
    BITSANDBYTES_OPTIMIZERS,
    bitsandbytes_spec,
    build_optimizer,
    build_param_groups,
)
from tunelab.train.schedule import WarmupPlateauLR
from tunelab.train.trainer import TunelabTrainer

FULL = FinetuningArgs(finetuning_type="full")


@pytest.fixture
def model(tiny_qwen2_dir: Path) -> torch.nn.Module:
    """The tiny qwen2 model (it has q/k/v biases as well as RMSNorm weights), all trainable."""
    return apply_finetuning(AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir), FULL)


def _names_by_group(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, set[str]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {g["name"]: {names[id(p)] for p in g["params"]} for g in optimizer.param_groups}


def test_no_decay_group_is_exactly_biases_and_norms(model: torch.nn.Module) -> None:
    optimizer = build_optimizer(model, TrainingArgs(weight_decay=0.1), FULL)
    groups = _names_by_group(model, optimizer)
    everything = {n for n, _ in model.named_parameters()}
    expected = {n for n in everything if n.endswith(".bias") or "norm" in n.rsplit(".", 2)[-2]}
    assert any(n.endswith(".bias") for n in expected) and any("layernorm" in n for n in expected)
    assert groups["no_decay"] == expected
    assert groups["decay"] == everything - expected
    assert "model.embed_tokens.weight" in groups["decay"]  # embeddings decay (see optim.py)
    decay = {g["name"]: g["weight_decay"] for g in optimizer.param_groups}
    assert decay == {"decay": 0.1, "no_decay": 0.0}


def test_adamw_settings_reach_the_optimizer(model: torch.nn.Module) -> None:
    training = TrainingArgs(learning_rate=3e-4, adam_beta1=0.8, adam_beta2=0.95, adam_epsilon=1e-6)
    for name, fused in (("adamw_torch", None), ("adamw_torch_fused", True)):
        optimizer = build_optimizer(model, training.model_copy(update={"optim": name}), FULL)
        assert type(optimizer) is torch.optim.AdamW
        assert optimizer.defaults["lr"] == 3e-4 and optimizer.defaults["betas"] == (0.8, 0.95)
        assert optimizer.defaults["eps"] == 1e-6 and optimizer.defaults["fused"] is fused


@pytest.mark.parametrize(
    ("optim", "lr", "cls"),
    [
        ("adamw_torch", 3e-3, torch.optim.AdamW),
        ("adamw_torch_fused", 3e-3, torch.optim.AdamW),
        ("adam", 3e-3, torch.optim.Adam),
        ("sgd", 0.02, torch.optim.SGD),
        ("adafactor", 3e-3, None),
    ],
)
def test_each_optimizer_lowers_the_loss(model: torch.nn.Module, optim: str, lr: float, cls: Any) -> None:
    training = TrainingArgs(optim=optim, learning_rate=lr, weight_decay=0.01, sgd_nesterov=True)
    optimizer = build_optimizer(model, training, FULL)
    if cls is not None:
        assert type(optimizer) is cls
    batch = torch.randint(3, 2000, (4, 24), generator=torch.Generator().manual_seed(0))
    losses = []
    for _ in range(6):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.5, losses


def test_sgd_and_adafactor_settings(model: torch.nn.Module) -> None:
    sgd = build_optimizer(model, TrainingArgs(optim="sgd", sgd_momentum=0.8, sgd_nesterov=True), FULL)
    assert sgd.defaults["momentum"] == 0.8 and sgd.defaults["nesterov"] is True
    adafactor = build_optimizer(model, TrainingArgs(optim="adafactor", learning_rate=2e-4), FULL)
    assert type(adafactor).__name__ == "Adafactor" and adafactor.defaults["lr"] == 2e-4
    assert not any(adafactor.defaults[k] for k in ("scale_parameter", "relative_step", "warmup_init"))
    adam = build_optimizer(model, TrainingArgs(optim="adam", weight_decay=0.05), FULL)
    assert {g["name"]: g["weight_decay"] for g in adam.param_groups} == {"decay": 0.05, "no_decay": 0.0}


def test_nesterov_without_momentum_is_a_config_error(model: torch.nn.Module) -> None:
    training = TrainingArgs(optim="sgd", sgd_momentum=0.0, sgd_nesterov=True)
    with pytest.raises(ConfigError, match="sgd_nesterov=true needs sgd_momentum > 0") as info:
        build_optimizer(model, training, FULL)
    assert "sgd_momentum=0.9" in info.value.hint


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
@pytest.mark.parametrize("optim", sorted(BITSANDBYTES_OPTIMIZERS))
def test_bitsandbytes_optimizers_refuse_without_a_gpu(model: torch.nn.Module, optim: str) -> None:
    with pytest.raises(ResourceError, match=f"optim={optim} needs a CUDA GPU") as info:
        build_optimizer(model, TrainingArgs(optim=optim), FULL)
    assert "pip install bitsandbytes" in info.value.hint and "optim=adamw_torch" in info.value.hint


def test_bitsandbytes_wiring() -> None:
    training = TrainingArgs(
        learning_rate=2e-4, adam_beta1=0.85, adam_beta2=0.99, adam_epsilon=1e-7, weight_decay=0.1
    )
    expected_kwargs = {"lr": 2e-4, "betas": (0.85, 0.99), "eps": 1e-7, "weight_decay": 0.1}
    for optim, cls in (
        ("adamw_8bit", "AdamW8bit"),
        ("paged_adamw_8bit", "PagedAdamW8bit"),
        ("paged_adamw_32bit", "PagedAdamW32bit"),
    ):
        assert bitsandbytes_spec(training.model_copy(update={"optim": optim})) == (cls, expected_kwargs)
    with pytest.raises(ConfigError, match="not a bitsandbytes optimizer"):
        bitsandbytes_spec(training)


@pytest.mark.parametrize("optim", ["adamw_torch", "sgd", "adafactor"])
def test_loraplus_gives_b_matrices_a_larger_rate(tiny_qwen2_dir: Path, optim: str) -> None:
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir)
    lora = FinetuningArgs(finetuning_type="lora", lora_rank=4, loraplus_lr_ratio=16.0, use_dora=True)
    peft_model = apply_finetuning(base, lora)
    optimizer = build_optimizer(
        peft_model, TrainingArgs(optim=optim, learning_rate=1e-3, weight_decay=0.01), lora
    )
    groups = _names_by_group(peft_model, optimizer)
    rates = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert rates["lora_b"] == pytest.approx(16e-3)
    assert rates["decay"] == rates["no_decay"] == 1e-3
    assert optimizer.param_groups[0]["lr"] == 1e-3  # the Trainer logs group 0: the configured rate
    assert groups["lora_b"] and all("lora_B" in n for n in groups["lora_b"])
    assert groups["decay"] and all("lora_A" in n for n in groups["decay"])
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert set().union(*groups.values()) == trainable
    # without LoRA+ the same one-dimensional parameters (DoRA magnitudes) skip weight decay
    plain = {g["name"]: g for g in build_param_groups(peft_model, 1e-3, 0.01)}
    loraplus = {g["name"]: g for g in build_loraplus_param_groups(peft_model, 1e-3, 16.0, 0.01)}
    assert {id(p) for p in plain["no_decay"]["params"]} == {id(p) for p in loraplus["no_decay"]["params"]}


def test_nothing_trainable_is_a_model_error(model: torch.nn.Module) -> None:
    model.requires_grad_(False)
    with pytest.raises(ModelError, match="no trainable parameters"):
        build_optimizer(model, TrainingArgs(), FULL)


def test_trainer_hooks_build_ours(model: torch.nn.Module, tmp_path: Path) -> None:
    training = TrainingArgs(
        optim="sgd",
        learning_rate=0.1,
        lr_scheduler_type="reduce_lr_on_plateau",
        eval_strategy="steps",
        warmup_steps=2,
    )
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", learning_rate=0.1)
    trainer = TunelabTrainer(model=model, args=args, training=training, finetuning=FULL)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    assert type(trainer.optimizer) is torch.optim.SGD
    assert {g["name"] for g in trainer.optimizer.param_groups} == {"decay", "no_decay"}
    assert isinstance(trainer.lr_scheduler, WarmupPlateauLR) and trainer.lr_scheduler.num_warmup_steps == 2
    assert any(type(cb).__name__ == "PlateauCallback" for cb in trainer.callback_handler.callbacks)
