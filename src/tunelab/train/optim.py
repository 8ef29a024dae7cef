"""The optimizer a run trains with: parameter groups (weight decay, LoRA+) and the optimizer class.

Weight decay: two-dimensional weights (linear layers and embeddings) decay; one-dimensional
parameters (biases, RMSNorm/LayerNorm weights, DoRA magnitudes) do not. Decaying a norm's gain or
a bias towards zero only fights the model's scale and offsets, which is why nanoGPT, the HF
Trainer and most LLM recipes exclude them. Embeddings *are* decayed, as in the HF Trainer and
nanoGPT: fine-tuning changes few embedding rows, and the rule stays the one
`tunelab.model.build_loraplus_param_groups` already uses, so LoRA+ and plain runs agree.
The same groups serve every optimizer (with adam/sgd, weight_decay is torch's L2 term).

LoRA+ (``loraplus_lr_ratio``) only changes the groups — B matrices get ``ratio x learning_rate`` —
so it composes with every optimizer here.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from tunelab.config.rules import training_problems
from tunelab.config.schema import FinetuningArgs, TrainingArgs
from tunelab.errors import ConfigError, ModelError, ResourceError

__all__ = ["BITSANDBYTES_OPTIMIZERS", "bitsandbytes_spec", "build_optimizer", "build_param_groups"]

# optim name -> bitsandbytes.optim class; every one of them needs a CUDA GPU.
BITSANDBYTES_OPTIMIZERS: dict[str, str] = {
    "adamw_8bit": "AdamW8bit",
    "paged_adamw_8bit": "PagedAdamW8bit",
    "paged_adamw_32bit": "PagedAdamW32bit",
}


def build_param_groups(
    model: torch.nn.Module,
    learning_rate: float,
    weight_decay: float,
    *,
    loraplus_lr_ratio: float | None = None,
) -> list[dict[str, Any]]:
    """Named optimizer groups of the trainable parameters: ``decay`` and ``no_decay`` (+ LoRA+ groups).

    Groups without their own ``lr`` use the optimizer's. The group holding the base learning rate
    comes first because the Trainer logs the first group's learning rate.
    """
    if loraplus_lr_ratio is not None:
        from tunelab.model import build_loraplus_param_groups

        groups = build_loraplus_param_groups(model, learning_rate, loraplus_lr_ratio, weight_decay)
        return sorted(groups, key=lambda group: group.get("lr", learning_rate) != learning_rate)
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [
        {"name": "decay", "params": decay, "weight_decay": weight_decay},
        {"name": "no_decay", "params": no_decay, "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


def build_optimizer(
    model: torch.nn.Module, training: TrainingArgs, finetuning: FinetuningArgs
) -> torch.optim.Optimizer:
    """The optimizer named by ``training.optim`` over ``model``'s trainable parameters.

    Raises ConfigError for contradictory settings and ResourceError when an 8-bit/paged
    optimizer cannot run here (no CUDA GPU or no bitsandbytes).
    """
    from tunelab.train.optim_extra import build_extra_optimizer, uses_extra_optimizer

    if uses_extra_optimizer(finetuning):  # use_galore, use_apollo, use_badam, use_adam_mini, use_muon
        return build_extra_optimizer(model, training, finetuning)
    name, lr, wd = training.optim, training.learning_rate, training.weight_decay
    for problem in training_problems(training):  # also checked where the config is built
        if problem.key == "sgd_nesterov":
            raise ConfigError(problem.message, problem.hint)
    if name in BITSANDBYTES_OPTIMIZERS:
        _require_bitsandbytes(name)
    groups = build_param_groups(model, lr, wd, loraplus_lr_ratio=finetuning.loraplus_lr_ratio)
    if not groups:
        raise ModelError(
            "the model has no trainable parameters: there is nothing to optimize",
            "check finetuning_type and lora_target / freeze_trainable_layers",
        )
    betas = (training.adam_beta1, training.adam_beta2)
    if name in ("adamw_torch", "adamw_torch_fused"):
        fused = True if name == "adamw_torch_fused" else None
        return torch.optim.AdamW(
            groups, lr=lr, betas=betas, eps=training.adam_epsilon, weight_decay=wd, fused=fused
        )
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas, eps=training.adam_epsilon, weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(
            groups, lr=lr, momentum=training.sgd_momentum, nesterov=training.sgd_nesterov, weight_decay=wd
        )
    if name == "adafactor":
        from transformers.optimization import Adafactor

        # An explicit learning rate (and our schedule) instead of Adafactor's own relative step size.
        return Adafactor(
            groups, lr=lr, weight_decay=wd, scale_parameter=False, relative_step=False, warmup_init=False
        )
    if name in BITSANDBYTES_OPTIMIZERS:
        return _build_bitsandbytes(model, groups, training)
    raise ConfigError(  # the schema's Literal keeps this unreachable; a new name must be wired here
        f"optim={name} is not implemented",
        f"choose one of: adamw_torch, adam, sgd, adafactor, {', '.join(BITSANDBYTES_OPTIMIZERS)}",
    )


def bitsandbytes_spec(training: TrainingArgs) -> tuple[str, dict[str, Any]]:
    """The bitsandbytes.optim class name and keyword arguments ``training.optim`` stands for."""
    class_name = BITSANDBYTES_OPTIMIZERS.get(training.optim)
    if class_name is None:
        raise ConfigError(
            f"optim={training.optim} is not a bitsandbytes optimizer",
            f"bitsandbytes optimizers: {', '.join(BITSANDBYTES_OPTIMIZERS)}",
        )
    kwargs = {
        "lr": training.learning_rate,
        "betas": (training.adam_beta1, training.adam_beta2),
        "eps": training.adam_epsilon,
        "weight_decay": training.weight_decay,
    }
    return class_name, kwargs


def _require_bitsandbytes(name: str) -> None:
    """ResourceError naming whatever of (CUDA GPU, bitsandbytes package) is missing."""
    missing = []
    if not torch.cuda.is_available():
        missing.append("a CUDA GPU (none found)")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("the bitsandbytes package (not installed)")
    if missing:
        raise ResourceError(
            f"optim={name} needs {' and '.join(missing)}",
            "on a machine with a CUDA GPU run `pip install bitsandbytes`; otherwise use optim=adamw_torch "
            "(or optim=adafactor to save optimizer memory)",
        )


def _build_bitsandbytes(
    model: torch.nn.Module, groups: list[dict[str, Any]], training: TrainingArgs
) -> torch.optim.Optimizer:
    import bitsandbytes

    class_name, kwargs = bitsandbytes_spec(training)
    optimizer = getattr(bitsandbytes.optim, class_name)(groups, **kwargs)
    if "8bit" in class_name:
        # 8-bit states are unstable for embeddings (rare rows, large updates): keep those in 32 bits,
        # as bitsandbytes recommends.
        manager = bitsandbytes.optim.GlobalOptimManager.get_instance()
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                manager.register_module_override(module, "weight", {"optim_bits": 32})
    return optimizer
