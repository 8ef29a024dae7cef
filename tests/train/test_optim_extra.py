"""GaLore, APOLLO, BAdam, Adam-mini and Muon: a step changes exactly the parameters each should."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from tunelab.config import config_from_dict
from tunelab.config.schema import FinetuningArgs, TrainingArgs
from tunelab.errors import ConfigError, ResourceError
from tunelab.model import apply_finetuning
from tunelab.train.optim import build_optimizer
from tunelab.train.optim_extra import MuonWithAdamW

IDS = torch.tensor([[3, 50, 60, 70, 80, 90, 100, 2], [4, 51, 61, 71, 81, 91, 101, 2]])
LAST_LAYER = "model.layers.1."


def _needs(module: str) -> Any:
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} not installed")


def _model(tiny_model_dir: Path, finetuning: FinetuningArgs) -> torch.nn.Module:
    return apply_finetuning(
        AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32), finetuning
    )


def _step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, n: int = 1) -> set[str]:
    """Names of the parameters that ``n`` optimizer steps changed."""
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    for _ in range(n):
        model(input_ids=IDS, labels=IDS).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return {name for name, param in model.named_parameters() if not torch.equal(param.detach(), before[name])}


def _trainable(model: torch.nn.Module) -> set[str]:
    return {name for name, param in model.named_parameters() if param.requires_grad}


FREEZE_LAST = dict(finetuning_type="freeze", freeze_trainable_layers=1)
TRAINING = TrainingArgs(learning_rate=1e-2, weight_decay=0.01)


@_needs("galore_torch")
@pytest.mark.parametrize("optim", ["adamw_torch", "adafactor"])
def test_galore_projects_the_targets_and_trains_exactly_the_trainable(
    tiny_model_dir: Path, optim: str
) -> None:
    finetuning = FinetuningArgs(
        **FREEZE_LAST, use_galore=True, galore_target=["q_proj", "down_proj"], galore_rank=4
    )
    model = _model(tiny_model_dir, finetuning)
    optimizer = build_optimizer(model, TRAINING.model_copy(update={"optim": optim}), finetuning)
    names = {id(p): n for n, p in model.named_parameters()}
    galore = next(g for g in optimizer.param_groups if g.get("name") == "galore")
    assert {names[id(p)] for p in galore["params"]} == {
        f"{LAST_LAYER}self_attn.q_proj.weight",
        f"{LAST_LAYER}mlp.down_proj.weight",
    }
    assert galore["rank"] == 4 and galore["update_proj_gap"] == 200 and galore["scale"] == 2.0
    assert _step(model, optimizer, 2) == _trainable(model)


@_needs("apollo_torch")
def test_apollo_projects_the_targets_and_trains_exactly_the_trainable(tiny_model_dir: Path) -> None:
    finetuning = FinetuningArgs(**FREEZE_LAST, use_apollo=True, apollo_rank=4)
    model = _model(tiny_model_dir, finetuning)
    optimizer = build_optimizer(model, TRAINING, finetuning)
    apollo = next(g for g in optimizer.param_groups if g.get("name") == "apollo")
    assert len(apollo["params"]) == 7 and apollo["proj"] == "random" and apollo["scale_type"] == "channel"
    assert _step(model, optimizer, 2) == _trainable(model)


@_needs("badam")
def test_badam_trains_one_block_at_a_time(tiny_model_dir: Path) -> None:
    finetuning = FinetuningArgs(finetuning_type="full", use_badam=True, badam_switch_interval=1)
    model = _model(tiny_model_dir, finetuning)
    optimizer = build_optimizer(model, TRAINING, finetuning)
    layer0 = {n for n, _ in model.named_parameters() if n.startswith("model.layers.0.")}
    layer1 = {n for n, _ in model.named_parameters() if n.startswith("model.layers.1.")}
    assert _step(model, optimizer) == layer0  # ascending: the first block first, nothing else
    assert _step(model, optimizer) == layer1  # switched after badam_switch_interval=1 step


@_needs("adam_mini")
def test_adam_mini_trains_exactly_the_trainable(tiny_model_dir: Path) -> None:
    finetuning = FinetuningArgs(**FREEZE_LAST, use_adam_mini=True)
    model = _model(tiny_model_dir, finetuning)
    optimizer = build_optimizer(model, TRAINING, finetuning)
    assert type(optimizer).__name__ == "Adam_mini"
    assert _step(model, optimizer) == _trainable(model)


def test_muon_takes_the_hidden_matrices_and_adamw_the_rest(tiny_model_dir: Path) -> None:
    finetuning = FinetuningArgs(finetuning_type="full", use_muon=True)
    model = _model(tiny_model_dir, finetuning)
    optimizer = build_optimizer(model, TRAINING, finetuning)
    assert isinstance(optimizer, MuonWithAdamW)
    names = {id(p): n for n, p in model.named_parameters()}
    muon = {names[id(p)] for g in optimizer.muon.param_groups for p in g["params"]}
    assert muon == {n for n, p in model.named_parameters() if p.ndim == 2 and n.startswith("model.layers.")}
    adamw = {names[id(p)] for g in optimizer.adamw.param_groups for p in g["params"]}
    assert "model.embed_tokens.weight" in adamw and muon.isdisjoint(adamw)
    assert _step(model, optimizer) == _trainable(model)
    # one optimizer to the Trainer: a schedule's learning rate reaches both, and it checkpoints
    for group in optimizer.param_groups:
        group["lr"] = 0.0
    assert optimizer.muon.param_groups[0]["lr"] == 0.0 == optimizer.adamw.param_groups[0]["lr"]
    assert _step(model, optimizer) == set()
    state = optimizer.state_dict()
    optimizer.load_state_dict(state)
    assert set(state) == {"muon", "adamw"} and state["muon"]["state"]


def test_muon_with_lora_trains_only_the_adapter(tiny_model_dir: Path) -> None:
    finetuning = FinetuningArgs(finetuning_type="lora", use_muon=True)
    model = _model(tiny_model_dir, finetuning)
    # LoRA A/B are 2-D hidden matrices too, so Muon takes them; the run still trains only them
    optimizer = build_optimizer(model, TRAINING, finetuning)
    assert _step(model, optimizer, 2) == _trainable(model)


def test_missing_package_names_it_and_the_alternative(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "badam" else real(name, *a)
    )
    finetuning = FinetuningArgs(finetuning_type="full", use_badam=True)
    with pytest.raises(ResourceError, match="needs the badam package") as info:
        build_optimizer(_model(tiny_model_dir, finetuning), TRAINING, finetuning)
    assert "pip install --no-deps badam" in info.value.hint and "adamw_torch" in info.value.hint


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"use_galore": True}, "cannot be combined with finetuning_type: lora"),
        ({"use_badam": True, "finetuning_type": "freeze"}, "needs finetuning_type: full"),
        ({"use_galore": True, "use_apollo": True, "finetuning_type": "full"}, "keep one of them"),
        ({"use_apollo": True, "finetuning_type": "full", "optim": "sgd"}, "not optim=sgd"),
        ({"use_muon": True, "loraplus_lr_ratio": 16}, "remove loraplus_lr_ratio"),
        ({"use_badam": True, "finetuning_type": "full", "badam_mode": "ratio"}, "use badam_mode: layer"),
        (
            {
                "use_galore": True,
                "finetuning_type": "full",
                "galore_layerwise": True,
                "gradient_accumulation_steps": 2,
            },
            "set gradient_accumulation_steps: 1",
        ),
    ],
)
def test_combinations_that_cannot_work_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"model_name_or_path": "tiny:llama", **values})


@pytest.mark.parametrize(
    "method",
    [
        {"use_muon": True, "finetuning_type": "freeze", "freeze_trainable_layers": 1},
        pytest.param(
            {
                "use_galore": True,
                "galore_layerwise": True,
                "galore_target": "mlp,self_attn",
                "finetuning_type": "full",
            },
            marks=_needs("galore_torch"),
        ),
    ],
    ids=["muon", "galore-layerwise"],
)
def test_run_trains_through_the_trainer(
    tiny_model_dir: Path, tmp_path: Path, tiny_sft_config: Any, method: dict[str, Any]
) -> None:
    import json

    from tunelab.train import train

    config = tiny_sft_config(tiny_model_dir, tmp_path / "run", **method, save_steps=1, logging_steps=1)
    result = train(config)
    assert result.status == "finished" and result.checkpoint is not None
    assert torch.isfinite(torch.tensor(result.metrics["train_loss"]))
    rows = [json.loads(line) for line in (tmp_path / "run" / "trainer_log.jsonl").read_text().splitlines()]
    assert all(row["grad_norm"] > 0 for row in rows if "loss" in row)  # a measured norm, also layer-wise


@_needs("galore_torch")
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_galore_8bit_needs_cuda_and_bitsandbytes(tiny_model_dir: Path) -> None:
    finetuning = FinetuningArgs(finetuning_type="full", use_galore=True)
    with pytest.raises(ResourceError, match="adamw_8bit with use_galore needs a CUDA GPU") as info:
        build_optimizer(
            _model(tiny_model_dir, finetuning),
            TRAINING.model_copy(update={"optim": "adamw_8bit"}),
            finetuning,
        )
    assert "optim=adamw_torch" in info.value.hint


@_needs("galore_torch")
@_needs("apollo_torch")
@pytest.mark.parametrize("key", ["use_galore", "use_apollo"])
def test_layerwise_steps_each_weight_inside_backward(tiny_model_dir: Path, key: str) -> None:
    from tunelab.train.optim_layerwise import LayerwiseOptimizer

    layerwise = "galore_layerwise" if key == "use_galore" else "apollo_layerwise"
    target = "galore_target" if key == "use_galore" else "apollo_target"
    finetuning = FinetuningArgs(**FREEZE_LAST, **{key: True, layerwise: True, target: ["mlp"]})
    model = _model(tiny_model_dir, finetuning)
    model(input_ids=IDS, labels=IDS).loss.backward()  # the gradient norm a plain backward gives
    want_norm = float(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]).norm())
    model.zero_grad(set_to_none=True)
    optimizer = build_optimizer(model, TRAINING, finetuning)
    assert isinstance(optimizer, LayerwiseOptimizer)
    names = {id(p): n for n, p in model.named_parameters()}
    projected = {names[id(p)] for g in optimizer.param_groups if "rank" in g for p in g["params"]}
    assert projected == {f"{LAST_LAYER}mlp.{proj}.weight" for proj in ("gate_proj", "up_proj", "down_proj")}
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    model(input_ids=IDS, labels=IDS).loss.backward()  # no optimizer.step(): backward already stepped
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed == _trainable(model)
    assert all(p.grad is None for p in model.parameters())  # each gradient freed right after its step
    optimizer.step()  # what the Trainer calls after backward: records the measured norm for the log
    assert optimizer.last_grad_norm == pytest.approx(want_norm, rel=1e-5)
    for group in optimizer.param_groups:  # the schedule's learning rate reaches every parameter
        group["lr"] = 0.0
    assert _step(model, optimizer) == set()
    optimizer.load_state_dict(optimizer.state_dict())
