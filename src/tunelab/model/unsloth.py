"""Load a model through Unsloth (``use_unsloth``): its patched attention/MLP/LoRA kernels, CUDA only.

Unsloth replaces both loading and adapter wrapping, so this is the whole of what
``load_model_for_training`` does for LoRA when ``use_unsloth`` is set. It is imported lazily and
only after :func:`tunelab.train.boosters.check_boosters` confirmed a CUDA GPU and the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunelab.errors import ConfigError
from tunelab.model.resolve import resolve_model_path

if TYPE_CHECKING:
    import torch

    from tunelab.config import RunConfig

__all__ = ["load_unsloth_model", "unsloth_lora_kwargs"]


def unsloth_lora_kwargs(config: RunConfig, targets: list[str]) -> dict[str, Any]:
    """``FastLanguageModel.get_peft_model`` arguments from the config's LoRA keys (pure, testable)."""
    ft = config.finetuning
    if ft.finetuning_type != "lora":
        raise ConfigError(
            f"use_unsloth=true trains LoRA adapters, but finetuning_type={ft.finetuning_type}",
            "set finetuning_type: lora, or use_unsloth: false",
        )
    wanted = targets if ft.lora_target == ["all"] else list(ft.lora_target)
    return {
        "r": ft.lora_rank,
        "target_modules": wanted,
        "lora_alpha": ft.effective_lora_alpha,
        "lora_dropout": ft.lora_dropout,
        "bias": "none",
        "use_rslora": ft.use_rslora,
        "use_gradient_checkpointing": "unsloth" if config.training.gradient_checkpointing else False,
        "random_state": config.training.seed,
    }


def load_unsloth_model(config: RunConfig, compute_dtype: torch.dtype) -> Any:
    """The model loaded by Unsloth (4-bit when quantization_bit=4) with Unsloth's LoRA applied."""
    from unsloth import FastLanguageModel

    from tunelab.model.adapters import find_lora_targets

    path = resolve_model_path(config.model.model_name_or_path, config.model.cache_dir)
    model, _ = FastLanguageModel.from_pretrained(
        model_name=str(path),
        max_seq_length=config.data.cutoff_len,
        dtype=compute_dtype,
        load_in_4bit=config.model.quantization_bit == 4,
        load_in_8bit=config.model.quantization_bit == 8,
        trust_remote_code=config.model.trust_remote_code,
    )
    return FastLanguageModel.get_peft_model(model, **unsloth_lora_kwargs(config, find_lora_targets(model)))
