"""The model a run trains: the base model (or a classifier), earlier adapters (kept trainable) and the finetuning method.

One place for the sequence every training path needs (the stages, and the probes of estimate,
find-batch and lr-find that must measure the same model the run will train).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from tunelab.config import RunConfig

__all__ = ["load_classifier_for_training", "load_model_for_training"]


def load_model_for_training(config: RunConfig, compute_dtype: torch.dtype) -> Any:
    """``config``'s model in ``compute_dtype``, with its adapters loaded and its finetuning method applied."""
    from tunelab.compat.transformers import attn_implementation
    from tunelab.config.engines import shards_parameters
    from tunelab.model.adapters import apply_finetuning, load_adapters
    from tunelab.model.attention import uses_packed_sdpa
    from tunelab.model.loader import load_model

    if config.model.use_unsloth:  # Unsloth loads and wraps the model itself (CUDA, checked before)
        from tunelab.model.unsloth import load_unsloth_model

        return load_unsloth_model(config, compute_dtype)

    model = load_model(
        config.model,
        compute_dtype=compute_dtype,
        gradient_checkpointing=config.training.gradient_checkpointing,
        model_max_length=config.data.cutoff_len,
        sharded=shards_parameters(config.training.deepspeed, config.training.fsdp),
    )
    model.config.use_cache = False  # a KV cache is useless in training and breaks packed-sample isolation
    if uses_packed_sdpa(
        config.model.flash_attn,
        attn_implementation(model.config),
        packing=config.data.packing,
        device_type=model.device.type,
    ):
        from tunelab.model.packed_attention import enable_packed_sdpa

        enable_packed_sdpa(model)  # per-sample attention blocks instead of full masked rows
    if config.model.shift_attn:
        from tunelab.model.shift_attn import enable_shift_attn

        enable_shift_attn(model)
    if config.model.adapter_name_or_path:
        model = load_adapters(model, config.model.adapter_name_or_path, is_trainable=True)
    return apply_finetuning(model, config.finetuning)


def load_classifier_for_training(
    config: RunConfig, id2label: dict[int, str], pad_token_id: int, compute_dtype: torch.dtype
) -> Any:
    """Stage cls: ``config``'s model with an ``len(id2label)``-way head, its adapters loaded and its
    finetuning method applied (the new head always trains)."""
    from tunelab.model.adapters import load_adapters
    from tunelab.model.classifier import apply_classifier_finetuning, load_classifier

    model, created = load_classifier(
        config.model,
        id2label,
        pad_token_id=pad_token_id,
        compute_dtype=compute_dtype,
        gradient_checkpointing=config.training.gradient_checkpointing,
    )
    if config.model.adapter_name_or_path:
        model = load_adapters(model, config.model.adapter_name_or_path, is_trainable=True)
    return apply_classifier_finetuning(model, config.finetuning, created)
