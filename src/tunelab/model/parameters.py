"""Bookkeeping over a model's parameters: counting, fp32 upcast of what trains, LoRA+ groups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunelab.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["build_loraplus_param_groups", "count_parameters", "upcast_trainable_parameters"]


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """`(trainable, total)` parameter counts; 4-bit packed weights are counted as the values they hold."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel()
        if n == 0 and hasattr(param, "ds_numel"):  # DeepSpeed ZeRO-3 keeps a placeholder of size 0
            n = param.ds_numel
        if type(param).__name__ == "Params4bit":
            # bitsandbytes packs two 4-bit values per byte of its storage dtype.
            storage = getattr(param, "quant_storage", None)
            n *= 2 * (storage.itemsize if storage is not None else 1)
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total


def upcast_trainable_parameters(model: torch.nn.Module) -> int:
    """Cast every trainable half-precision parameter to fp32 in place; return how many were cast.

    Optimizer updates are often smaller than bf16's resolution near the weight's value, so
    half-precision trainable weights would silently stop learning. Frozen weights stay as loaded.
    """
    import torch

    n_cast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.float16, torch.bfloat16):
            param.data = param.data.to(torch.float32)
            n_cast += 1
    return n_cast


def build_loraplus_param_groups(
    model: torch.nn.Module, learning_rate: float, ratio: float, weight_decay: float
) -> list[dict[str, Any]]:
    """Optimizer parameter groups for LoRA+: LoRA B matrices learn `ratio` times faster than the rest.

    LoRA+ (Hayou et al., 2024) shows B should take larger steps than A. Embedding-like parameters
    (LoRA on embeddings, fully trained embeddings) keep the base learning rate, and one-dimensional
    parameters (biases, norms, DoRA magnitudes) get no weight decay. Each group carries a `name`.
    """
    import torch

    if ratio <= 0:
        raise ConfigError(f"loraplus_lr_ratio={ratio} must be positive", "16 is a common choice")
    embedding_params = {
        id(param)
        for module in model.modules()
        if isinstance(module, torch.nn.Embedding)
        for param in module.parameters(recurse=False)
    }
    buckets: dict[str, list[torch.nn.Parameter]] = {
        "lora_b": [],
        "embedding": [],
        "decay": [],
        "no_decay": [],
    }
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if "lora_embedding_" in name or id(param) in embedding_params:
            buckets["embedding"].append(param)
        elif "lora_B" in name:
            buckets["lora_b"].append(param)
        elif param.ndim >= 2:
            buckets["decay"].append(param)
        else:
            buckets["no_decay"].append(param)
    if not buckets["lora_b"]:
        raise ConfigError(
            "loraplus_lr_ratio is set but the model has no trainable LoRA B matrices",
            "use loraplus_lr_ratio only with finetuning_type: lora",
        )
    settings = {
        "lora_b": (learning_rate * ratio, weight_decay),
        "embedding": (learning_rate, weight_decay),
        "decay": (learning_rate, weight_decay),
        "no_decay": (learning_rate, 0.0),
    }
    return [
        {"name": name, "params": params, "lr": settings[name][0], "weight_decay": settings[name][1]}
        for name, params in buckets.items()
        if params
    ]
