"""Tokenizer and model loading, adapters, and tiny offline models.

Importing this package is cheap: torch, transformers and peft are imported inside the functions
that need them, so the CLI and web UI can import it without paying for them.

    from tunelab.model import load_model, load_tokenizer, apply_finetuning, resolve_compute_dtype
    tokenizer = load_tokenizer(config.model)
    model = load_model(config.model, compute_dtype=resolve_compute_dtype(config.model.compute_type))
    model = apply_finetuning(model, config.finetuning)
"""

from __future__ import annotations

from tunelab.model.adapters import apply_finetuning, find_decoder_layers, find_lora_targets, load_adapters
from tunelab.model.attention import resolve_attn_implementation
from tunelab.model.for_training import load_classifier_for_training, load_model_for_training
from tunelab.model.gguf import convert_gguf
from tunelab.model.loader import build_quantization_config, build_rope_parameters, load_model, load_tokenizer
from tunelab.model.parameters import (
    build_loraplus_param_groups,
    count_parameters,
    upcast_trainable_parameters,
)
from tunelab.model.precision import describe_compute_choice, resolve_compute_dtype
from tunelab.model.resolve import find_smollm2_gguf, resolve_model_path
from tunelab.model.tiny import TINY_PRESETS, build_tiny

__all__ = [
    "TINY_PRESETS",
    "apply_finetuning",
    "build_loraplus_param_groups",
    "build_quantization_config",
    "build_rope_parameters",
    "build_tiny",
    "convert_gguf",
    "count_parameters",
    "describe_compute_choice",
    "find_decoder_layers",
    "find_lora_targets",
    "find_smollm2_gguf",
    "load_adapters",
    "load_classifier_for_training",
    "load_model_for_training",
    "load_model",
    "load_tokenizer",
    "resolve_attn_implementation",
    "resolve_compute_dtype",
    "resolve_model_path",
    "upcast_trainable_parameters",
]
