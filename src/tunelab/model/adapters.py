"""Decide which parameters train: LoRA (with rsLoRA, DoRA, PiSSA), freeze (last/first N layers) or full.

Every name a user gives (lora_target, additional_target, freeze_trainable_modules,
freeze_extra_modules) is checked against the model, and an unknown one is a ConfigError listing the
names that exist, instead of silently training nothing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.config.schema import ADAPTER_TYPES
from tunelab.errors import ConfigError, ModelError
from tunelab.model.llama_pro import expanded_layer_indices

# count_parameters and build_loraplus_param_groups live in parameters.py; re-exported here because
# callers reach for them next to apply_finetuning.
from tunelab.model.parameters import (
    build_loraplus_param_groups,
    count_parameters,
    upcast_trainable_parameters,
)
from tunelab.model.pissa import fixed_pissa_seed, is_pissa, pissa_init_weights, remember_initial_adapter

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from tunelab.config.schema import FinetuningArgs

__all__ = [
    "apply_finetuning",
    "build_loraplus_param_groups",
    "count_parameters",
    "find_decoder_layers",
    "find_lora_targets",
    "load_adapters",
]


def apply_finetuning(
    model: PreTrainedModel,
    finetuning_args: FinetuningArgs,
    *,
    is_trainable: bool = True,
    task_type: str = "CAUSAL_LM",
    head_modules: Sequence[str] = (),
) -> torch.nn.Module:
    """Make exactly the parameters `finetuning_args` asks for trainable (LoRA wraps the model in peft).

    A model that already carries a loaded adapter (see `load_adapters`) keeps training that adapter.
    With `is_trainable=False` everything is frozen (evaluation, inference).
    `task_type` is peft's (CAUSAL_LM, SEQ_CLS); `head_modules` name newly initialised modules (a
    classification head) that always train in full: LoRA saves them with the adapter
    (modules_to_save), freeze makes them trainable besides the chosen layers.
    """
    from peft import PeftModel

    if not is_trainable:
        model.requires_grad_(False)
        return model.eval()
    kind = finetuning_args.finetuning_type
    if _is_quantized(model) and kind != "lora":
        raise ConfigError(
            f"finetuning_type={kind} cannot train a quantized (quantization_bit) model",
            "use finetuning_type: lora with quantization_bit, or remove quantization_bit",
        )
    if isinstance(model, PeftModel):
        if kind not in ADAPTER_TYPES:
            raise ConfigError(
                f"adapter_name_or_path is set but finetuning_type={kind}",
                "use finetuning_type: lora (or oft) to continue training an adapter, or drop adapter_name_or_path",
            )
    elif kind == "lora":
        model = _apply_lora(model, finetuning_args, task_type, list(head_modules))
    elif kind == "oft":
        from tunelab.model.oft import build_oft_model

        targets, modules_to_save = _adapter_targets(
            model, finetuning_args.oft_target, finetuning_args, "oft_target"
        )
        model = build_oft_model(
            model,
            finetuning_args,
            task_type=task_type,
            head_modules=head_modules,
            targets=targets,
            modules_to_save=modules_to_save,
        )
    elif kind == "freeze":
        _apply_freeze(model, finetuning_args)
        for name in head_modules:
            model.get_submodule(name).requires_grad_(True)
    elif kind == "full":
        model.requires_grad_(True)
    else:
        raise ConfigError(f"unknown finetuning_type {kind!r}", "use one of: lora, oft, freeze, full")
    if not finetuning_args.pure_bf16:  # pure_bf16 keeps the trainable weights in bf16 on purpose
        upcast_trainable_parameters(model)
    return model


def load_adapters(model: PreTrainedModel, paths: Sequence[str], *, is_trainable: bool) -> torch.nn.Module:
    """Stack saved LoRA adapters on `model`: all but the last are merged into the weights, the last stays.

    The last adapter is the one that keeps training (`is_trainable=True`) or is used for inference.
    """
    from peft import PeftModel

    if not paths:
        return model
    for path in paths:
        if not (Path(path) / "adapter_config.json").is_file():
            raise ModelError(
                f"adapter directory {path} has no adapter_config.json",
                "adapter_name_or_path must list directories written by a LoRA run (adapter_config.json + weights)",
            )
    if len(paths) > 1 and _is_quantized(model):
        raise ConfigError(
            "several adapters cannot be merged into a quantized model",
            "load one adapter with quantization_bit, or merge the others first with `tunelab export`",
        )
    for path in paths[:-1]:
        with _seeded_if_pissa(path):
            model = PeftModel.from_pretrained(model, path).merge_and_unload()
    try:
        with _seeded_if_pissa(paths[-1]):
            return PeftModel.from_pretrained(model, paths[-1], is_trainable=is_trainable)
    except (ValueError, KeyError, RuntimeError) as err:
        raise ModelError(
            f"cannot load adapter {paths[-1]}: {err}", "the adapter must have been trained on this base model"
        ) from err


def _seeded_if_pissa(path: str) -> contextlib.AbstractContextManager[None]:
    """An unconverted PiSSA adapter (a checkpoint) re-runs the initialisation on load: use its seed."""
    try:
        config = json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return contextlib.nullcontext()
    return fixed_pissa_seed() if is_pissa(config.get("init_lora_weights")) else contextlib.nullcontext()


def find_lora_targets(model: torch.nn.Module) -> list[str]:
    """Names (last path component) of every linear layer LoRA can wrap, the output head excluded."""
    import torch
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Linear, Conv1D)) and module is not head
    }
    return sorted(names)


def find_decoder_layers(model: torch.nn.Module) -> tuple[str, int]:
    """`(prefix, count)` of the decoder layer list, e.g. ("model.layers", 2)."""
    import torch

    n_layers = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 0 and len(module) == n_layers:
            return name, len(module)
    raise ModelError(
        f"cannot find the decoder layers of {type(model).__name__}",
        "use finetuning_type: lora or full for this architecture",
    )


def _apply_lora(
    model: PreTrainedModel,
    args: FinetuningArgs,
    task_type: str = "CAUSAL_LM",
    head_modules: list[str] | None = None,
) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    targets, modules_to_save = _adapter_targets(model, args.lora_target, args, "lora_target")
    if head_modules:  # peft keeps modules_to_save out of the LoRA targets
        modules_to_save = [*(modules_to_save or []), *head_modules]
    init = pissa_init_weights(args.pissa_iter) if args.pissa_init else True
    config = LoraConfig(
        task_type=task_type,
        r=args.lora_rank,
        lora_alpha=args.effective_lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=targets,
        modules_to_save=modules_to_save,
        use_rslora=args.use_rslora,
        use_dora=args.use_dora,
        init_lora_weights=init,
        **_llama_pro_layers(model, args),
    )
    # PEFT creates adapter weights in fp32 unless told otherwise; pure_bf16 means everything in bf16
    autocast = not args.pure_bf16
    if not args.pissa_init:
        return get_peft_model(model, config, autocast_adapter_dtype=autocast)
    with fixed_pissa_seed():
        peft_model = get_peft_model(model, config, autocast_adapter_dtype=autocast)
    remember_initial_adapter(peft_model, keep_backup=args.pissa_convert)
    return peft_model


def _llama_pro_layers(model: torch.nn.Module, args: FinetuningArgs) -> dict[str, Any]:
    """PEFT's layers_to_transform for use_llama_pro: adapters on the expanded blocks only."""
    if not args.use_llama_pro:
        return {}
    prefix, n_layers = find_decoder_layers(model)
    return {
        "layers_to_transform": expanded_layer_indices(n_layers, args.freeze_trainable_layers),
        "layers_pattern": prefix.rsplit(".", 1)[-1],
    }


def _adapter_targets(
    model: torch.nn.Module, requested: list[str], args: FinetuningArgs, key: str
) -> tuple[list[str], list[str] | None]:
    """(checked target layer names for ``key``, checked additional_target modules or None)."""
    available = find_lora_targets(model)
    targets = available if _wants_all(requested) else _check_names(requested, available, key)
    modules_to_save = None
    if args.additional_target:
        leaf_names = sorted({name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name})
        modules_to_save = _check_names(args.additional_target, leaf_names, "additional_target")
    return targets, modules_to_save


def _apply_freeze(model: PreTrainedModel, args: FinetuningArgs) -> None:
    prefix, n_layers = find_decoder_layers(model)
    n_train = args.freeze_trainable_layers
    if n_train == 0 or abs(n_train) > n_layers:
        raise ConfigError(
            f"freeze_trainable_layers={n_train} but the model has {n_layers} layers",
            f"use a value between 1 and {n_layers} (last layers) or between -{n_layers} and -1 (first layers)",
        )
    if args.use_llama_pro:  # the blocks `tunelab expand-model` added (model/llama_pro.py)
        chosen: Iterable[int] = expanded_layer_indices(n_layers, n_train)
    else:
        chosen = range(n_layers - n_train, n_layers) if n_train > 0 else range(-n_train)
    layer_prefixes = tuple(f"{prefix}.{index}." for index in chosen)
    in_layers = f"{prefix}."

    names = [name for name, _ in model.named_parameters()]
    layer_parts = {
        part for name in names if name.startswith(in_layers) for part in _module_parts(name, in_layers)
    }
    outside_parts = {
        part for name in names if not name.startswith(in_layers) for part in _module_parts(name, "")
    }
    outside_parts -= set(prefix.split("."))  # "model" would mean everything, not a module to add
    modules = (
        None
        if _wants_all(args.freeze_trainable_modules)
        else set(_check_names(args.freeze_trainable_modules, sorted(layer_parts), "freeze_trainable_modules"))
    )
    extra = set(_check_names(args.freeze_extra_modules or [], sorted(outside_parts), "freeze_extra_modules"))

    for name, param in model.named_parameters():
        if name.startswith(layer_prefixes):
            parts = set(_module_parts(name, in_layers))
            param.requires_grad_(modules is None or bool(parts & modules))
        elif not name.startswith(in_layers):
            param.requires_grad_(bool(set(_module_parts(name, "")) & extra))
        else:
            param.requires_grad_(False)


def _module_parts(param_name: str, strip_prefix: str) -> list[str]:
    """Module names along a parameter's path, without layer indices or the tensor name itself."""
    parts = param_name[len(strip_prefix) :].split(".")[:-1]
    return [part for part in parts if not part.isdigit()]


def _wants_all(names: Iterable[str]) -> bool:
    return [name.lower() for name in names] == ["all"]


def _check_names(requested: Iterable[str], available: list[str], key: str) -> list[str]:
    requested = list(requested)
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise ConfigError(
            f"{key}: unknown module name(s) {', '.join(unknown)}",
            f"available for {key}: {', '.join(available)}"
            + (" (or 'all')" if key != "additional_target" else ""),
        )
    return requested


def _is_quantized(model: torch.nn.Module) -> bool:
    flags = ("is_quantized", "is_loaded_in_4bit", "is_loaded_in_8bit")
    return any(bool(getattr(model, flag, False)) for flag in flags)
