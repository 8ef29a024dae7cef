"""LLaMA Pro (Wu et al., 2024): add identity-initialised decoder blocks, then train only those.

Expansion (``expand_model``, ``tunelab expand-model``): the N decoder layers are split into
``num_expand`` equal groups and a copy of each group's last layer is inserted after it, with the
projections that write into the residual stream (``o_proj``, ``down_proj``) set to zero, so each new
block starts as the identity and the expanded model computes exactly what the original did.

Training (``use_llama_pro: true``), as in LLaMA-Factory: ``freeze_trainable_layers`` is the number of
blocks that were added, and the trainable layers are the ones expansion put in place, every
``stride = layers / freeze_trainable_layers``-th layer starting at ``stride - 1``. With
``finetuning_type: freeze`` those layers train in full; with ``lora`` only they get adapters.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.errors import ConfigError

if TYPE_CHECKING:
    import torch

__all__ = ["ZEROED_PROJECTIONS", "expand_layers", "expand_model", "expanded_layer_indices"]

# the linear layers whose output is added to the residual stream (Llama/Qwen/Mistral naming)
ZEROED_PROJECTIONS = ("o_proj", "down_proj")


def expanded_layer_indices(n_layers: int, n_expanded: int) -> list[int]:
    """Indices of the blocks an expansion to ``n_layers`` layers with ``n_expanded`` new blocks added."""
    if n_expanded <= 0 or n_layers % n_expanded:
        raise ConfigError(
            f"use_llama_pro: the model has {n_layers} layers, which freeze_trainable_layers={n_expanded} "
            "(the number of added blocks) does not divide",
            "set freeze_trainable_layers to the num_expand the model was expanded with "
            "(`tunelab expand-model --num-expand N`)",
        )
    stride = n_layers // n_expanded
    return list(range(stride - 1, n_layers, stride))


def _zero_residual_writes(layer: torch.nn.Module) -> int:
    import torch

    n_zeroed = 0
    for name, module in layer.named_modules():
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] in ZEROED_PROJECTIONS:
            torch.nn.init.zeros_(module.weight)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
            n_zeroed += 1
    return n_zeroed


def expand_layers(model: Any, num_expand: int) -> list[int]:
    """Insert ``num_expand`` identity blocks into ``model`` in place; returns the new blocks' indices."""
    from tunelab.model.adapters import find_decoder_layers

    prefix, n_layers = find_decoder_layers(model)
    if num_expand <= 0 or n_layers % num_expand:
        raise ConfigError(
            f"--num-expand {num_expand} must divide the model's {n_layers} layers",
            f"choose one of: {', '.join(str(k) for k in range(1, n_layers + 1) if n_layers % k == 0)}",
        )
    layers = model.get_submodule(prefix)
    group = n_layers // num_expand
    new_layers, types = [], getattr(model.config, "layer_types", None)
    new_types = []
    for index, layer in enumerate(layers):
        new_layers.append(layer)
        new_types.append(types[index] if types else None)
        if (index + 1) % group == 0:
            block = copy.deepcopy(layer)
            if not _zero_residual_writes(block):
                raise ConfigError(
                    f"cannot expand {type(model).__name__}: its layers have no {' / '.join(ZEROED_PROJECTIONS)}",
                    "LLaMA Pro expansion supports Llama-style decoders (Llama, Qwen, Mistral, ...)",
                )
            new_layers.append(block)
            new_types.append(types[index] if types else None)
    for index, layer in enumerate(new_layers):
        attention = getattr(layer, "self_attn", None)
        if attention is not None and hasattr(attention, "layer_idx"):
            attention.layer_idx = index  # the KV cache is indexed by layer
    parent_name, _, attr = prefix.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    import torch

    setattr(parent, attr, torch.nn.ModuleList(new_layers))
    model.config.num_hidden_layers = len(new_layers)
    if types:
        model.config.layer_types = new_types
    return expanded_layer_indices(len(new_layers), num_expand)


def expand_model(
    model_name_or_path: str, output_dir: Path, num_expand: int, *, cache_dir: str | None = None
) -> list[int]:
    """Write the LLaMA Pro expansion of a model (weights + tokenizer) to ``output_dir``; return new block indices."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab.model.resolve import resolve_model_path

    source = resolve_model_path(model_name_or_path, cache_dir)
    model = AutoModelForCausalLM.from_pretrained(source, dtype="auto")  # saved as stored
    added = expand_layers(model, num_expand)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    AutoTokenizer.from_pretrained(source).save_pretrained(output_dir)
    return added
