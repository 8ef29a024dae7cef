"""Memory-saving and alternative optimizers, chosen by LLaMA-Factory's use_* keys.

Each comes from the package that owns it, imported only when asked for:

- GaLore (``use_galore``, galore-torch): Adam states of the targeted linear weights live in a
  low-rank projection of their gradients; every other trainable parameter gets plain AdamW.
- APOLLO (``use_apollo``, apollo-torch): the same split, with APOLLO's channel-wise scaled update.
- BAdam (``use_badam``, badam): block-coordinate descent, full-parameter training that updates one
  decoder layer (block) at a time and switches every ``badam_switch_interval`` steps.
- Adam-mini (``use_adam_mini``, adam-mini): one second-moment value per parameter block.
- Muon (``use_muon``, ``torch.optim.Muon``): orthogonalised momentum for the 2-D weights of the hidden
  layers; embeddings, the output head and 1-D parameters stay with AdamW, as in LLaMA-Factory.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from tunelab.config.schema import FinetuningArgs, TrainingArgs
from tunelab.distributed import is_distributed
from tunelab.errors import ConfigError, ResourceError

__all__ = ["MuonWithAdamW", "build_extra_optimizer", "uses_extra_optimizer"]

_KEYS = ("use_galore", "use_apollo", "use_badam", "use_adam_mini", "use_muon")


def uses_extra_optimizer(finetuning: FinetuningArgs) -> bool:
    """Whether one of the use_* optimizer keys replaces ``optim``."""
    return any(getattr(finetuning, key) for key in _KEYS)


def build_extra_optimizer(
    model: torch.nn.Module, training: TrainingArgs, finetuning: FinetuningArgs
) -> torch.optim.Optimizer:
    """The optimizer the use_* key of ``finetuning`` names, over ``model``'s trainable parameters."""
    if finetuning.use_galore or finetuning.use_apollo:
        return _build_projected(model, training, finetuning)
    if finetuning.use_badam:
        return _build_badam(model, training, finetuning)
    if finetuning.use_adam_mini:
        return _build_adam_mini(model, training)
    if finetuning.use_muon:
        return _build_muon(model, training)
    raise ConfigError(
        "no use_* optimizer key is set", "set use_galore, use_apollo, use_badam, use_adam_mini or use_muon"
    )


def _require(module: str, pip_name: str, key: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ResourceError(
            f"{key}=true needs the {pip_name} package, which is not installed",
            f"run `pip install --no-deps {pip_name}` (or `pip install 'tunelab[optimizers]'`), "
            f"or remove {key} to train with optim=adamw_torch",
        )


def _adamw_kwargs(training: TrainingArgs) -> dict[str, Any]:
    return {
        "lr": training.learning_rate,
        "betas": (training.adam_beta1, training.adam_beta2),
        "eps": training.adam_epsilon,
        "weight_decay": training.weight_decay,
    }


def _plain_groups(params: list[torch.nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """decay (2-D) / no_decay (1-D) groups, as train/optim.py builds them."""
    groups = [
        {"name": "decay", "params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"name": "no_decay", "params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


def _projected_weights(model: torch.nn.Module, targets: list[str], key: str) -> list[torch.nn.Parameter]:
    """Trainable weights of the linear layers ``targets`` names ('all': every one but the output head).

    A target matches a linear layer by any component of its path, as in LLaMA-Factory:
    ``q_proj,down_proj`` picks those layers, ``mlp,self_attn`` every linear layer inside those blocks.
    """
    from tunelab.model.adapters import _check_names, _wants_all

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    linears = [
        (name.split("."), module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    ]
    if not _wants_all(targets):
        components = sorted({part for parts, _ in linears for part in parts if not part.isdigit()})
        wanted = set(_check_names(targets, components, key))
        linears = [(parts, module) for parts, module in linears if wanted & set(parts)]
    return [module.weight for _, module in linears if module.weight.requires_grad]


def _build_projected(
    model: torch.nn.Module, training: TrainingArgs, finetuning: FinetuningArgs
) -> torch.optim.Optimizer:
    """GaLore or APOLLO: low-rank groups for the targeted weights, AdamW groups for the rest."""
    from tunelab.compat.galore_import import import_optimizer_class

    galore = finetuning.use_galore
    key = "galore_target" if galore else "apollo_target"
    projected = _projected_weights(
        model, finetuning.galore_target if galore else finetuning.apollo_target, key
    )
    if not projected:
        raise ConfigError(
            f"{key}: no trainable linear weight matches, so {'use_galore' if galore else 'use_apollo'} has nothing to project",
            f"check {key} and finetuning_type / freeze_trainable_layers",
        )
    ids = {id(p) for p in projected}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    groups = _plain_groups(rest, training.weight_decay)
    kwargs = _adamw_kwargs(training)
    if galore:
        groups.append(
            {
                "name": "galore",
                "params": projected,
                "weight_decay": training.weight_decay,
                "rank": finetuning.galore_rank,
                "update_proj_gap": finetuning.galore_update_interval,
                "scale": finetuning.galore_scale,
                "proj_type": finetuning.galore_proj_type,
            }
        )
        if training.optim in ("adamw_torch", "adamw_torch_fused"):
            cls = import_optimizer_class("galore_torch", "adamw", "AdamW", pip_name="galore-torch")
        elif training.optim == "adafactor":
            cls = import_optimizer_class("galore_torch", "adafactor", "Adafactor", pip_name="galore-torch")
            kwargs = {"lr": training.learning_rate, "weight_decay": training.weight_decay}
            kwargs.update(scale_parameter=False, relative_step=False, warmup_init=False)
        else:  # adamw_8bit: GaLore's 8-bit AdamW is a bitsandbytes optimizer
            from tunelab.train.optim import _require_bitsandbytes

            _require_bitsandbytes(f"{training.optim} with use_galore")
            cls = import_optimizer_class("galore_torch", "adamw8bit", "AdamW8bit", pip_name="galore-torch")
        return _maybe_layerwise(groups, cls, kwargs, finetuning.galore_layerwise)
    groups.append(
        {
            "name": "apollo",
            "params": projected,
            "weight_decay": training.weight_decay,
            "rank": finetuning.apollo_rank,
            "proj": finetuning.apollo_proj,
            "update_proj_gap": finetuning.apollo_update_interval,
            "scale": finetuning.apollo_scale,
            "proj_type": finetuning.apollo_proj_type,
            "scale_type": finetuning.apollo_scale_type,
        }
    )
    cls = import_optimizer_class("apollo_torch", "apollo", "AdamW", pip_name="apollo-torch")
    kwargs["scale_front"] = finetuning.apollo_scale_front
    return _maybe_layerwise(groups, cls, kwargs, finetuning.apollo_layerwise)


def _maybe_layerwise(
    groups: list[dict[str, Any]], cls: Any, kwargs: dict[str, Any], layerwise: bool
) -> torch.optim.Optimizer:
    """``cls(groups)``, or with ``layerwise`` one ``cls`` per parameter stepping during backward."""
    if not layerwise:
        return cls(groups, **kwargs)
    if is_distributed():
        raise ConfigError(
            "galore_layerwise / apollo_layerwise steps each weight during backward, before the gradients of "
            "several processes are averaged, so it cannot run distributed",
            "set galore_layerwise / apollo_layerwise: false for multi-process training",
        )
    from tunelab.train.optim_layerwise import LayerwiseOptimizer

    return LayerwiseOptimizer(groups, lambda param_groups: cls(param_groups, **kwargs))


def _build_badam(
    model: torch.nn.Module, training: TrainingArgs, finetuning: FinetuningArgs
) -> torch.optim.Optimizer:
    """BAdam layer mode: AdamW over the active block, switched by badam's BlockOptimizer."""
    _require("badam", "badam", "use_badam")
    from badam import BlockOptimizer

    trainable = [p for p in model.parameters() if p.requires_grad]
    base = torch.optim.AdamW(_plain_groups(trainable, training.weight_decay), **_adamw_kwargs(training))
    return BlockOptimizer(
        base_optimizer=base,
        named_parameters_list=list(model.named_parameters()),
        block_prefix_list=None,  # one block per decoder layer, found by badam from the names
        switch_block_every=finetuning.badam_switch_interval,
        start_block=finetuning.badam_start_block,
        switch_mode=finetuning.badam_switch_mode,
        verbose=finetuning.badam_verbose,
    )


def _build_adam_mini(model: torch.nn.Module, training: TrainingArgs) -> torch.optim.Optimizer:
    _require("adam_mini", "adam-mini", "use_adam_mini")
    from adam_mini import Adam_mini

    config = model.config
    return Adam_mini(
        named_parameters=[(n, p) for n, p in model.named_parameters() if p.requires_grad],
        model_sharding=False,
        dim=config.hidden_size,
        n_heads=config.num_attention_heads,
        n_kv_heads=getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
        verbose=False,
        **_adamw_kwargs(training),
    )


def _build_muon(model: torch.nn.Module, training: TrainingArgs) -> torch.optim.Optimizer:
    if not hasattr(torch.optim, "Muon"):
        raise ResourceError(
            f"use_muon=true needs torch.optim.Muon (torch >= 2.9); this torch is {torch.__version__}",
            "upgrade torch, or remove use_muon to train with optim=adamw_torch",
        )
    embeddings = {
        id(param)
        for module in model.modules()
        if isinstance(module, torch.nn.Embedding)
        for param in module.parameters(recurse=False)
    }
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        embeddings.update(id(param) for param in head.parameters(recurse=False))
    trainable = [p for p in model.parameters() if p.requires_grad]
    hidden = [p for p in trainable if p.ndim == 2 and id(p) not in embeddings]
    others = [p for p in trainable if p.ndim != 2 or id(p) in embeddings]
    if not hidden:
        raise ConfigError(
            "use_muon=true but no trainable 2-D hidden-layer weight exists for Muon",
            "use use_muon with finetuning_type full or freeze (LoRA/OFT matrices are better served by AdamW)",
        )
    # match_rms_adamw scales Muon's update to AdamW's RMS, so learning_rate means the same for both
    muon = torch.optim.Muon(
        hidden, lr=training.learning_rate, weight_decay=training.weight_decay, adjust_lr_fn="match_rms_adamw"
    )
    adamw = torch.optim.AdamW(
        _plain_groups(others, training.weight_decay) or [{"params": []}], **_adamw_kwargs(training)
    )
    return MuonWithAdamW(muon, adamw)


class MuonWithAdamW(torch.optim.Optimizer):
    """One optimizer object over torch's Muon (hidden 2-D weights) and AdamW (everything else).

    The Trainer and the learning-rate schedules see one optimizer whose ``param_groups`` are the two
    optimizers' own group dicts, so a schedule's learning rate reaches both.
    """

    def __init__(self, muon: torch.optim.Optimizer, adamw: torch.optim.Optimizer) -> None:
        self.muon, self.adamw = muon, adamw
        groups = [g for g in [*muon.param_groups, *adamw.param_groups] if g["params"]]
        super().__init__(groups, {})
        self.param_groups = groups  # the very dicts the two optimizers read

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        self.adamw.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])
