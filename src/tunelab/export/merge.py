"""Load the model to export: LoRA adapters merged into the base weights, or a full/freeze model as is.

Adapters are merged into an *unquantized* base even when training used QLoRA: merging into 4/8-bit
weights would round the adapter's update away, and the exported model is meant to stand alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.model.resolve import resolve_model_path

if TYPE_CHECKING:
    import torch

    from tunelab.config import RunConfig
    from tunelab.config.schema import ModelArgs

__all__ = [
    "load_merged_model",
    "load_reference_model",
    "model_dir_of",
    "resolve_export_device",
    "resolve_export_dtype",
    "torch_dtype",
]

_STORED = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


def resolve_export_dtype(config: RunConfig) -> str:
    """export_dtype, or for 'auto' the dtype the source model's config.json says it is stored in."""
    wanted = config.export.export_dtype
    if wanted != "auto":
        return wanted
    path = resolve_model_path(config.model.model_name_or_path, config.model.cache_dir)
    try:
        stored = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return "fp32"
    name = stored.get("dtype") or stored.get("torch_dtype")
    return _STORED.get(str(name), "fp32")


def resolve_export_device(wanted: str) -> tuple[str, str | None]:
    """(torch device for export_device, a note when 'auto' found no GPU, else None).

    cpu is the default because a merge needs no speed and the CPU has the most memory; auto uses the
    first CUDA GPU, which makes merging a large model and GPTQ calibration much faster.
    """
    if wanted == "cpu":
        return "cpu", None
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()}", None
    return "cpu", "export_device=auto: no CUDA GPU found, exporting on the CPU"


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype for 'bf16', 'fp16' or 'fp32'."""
    import torch

    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def _unquantized(model_args: ModelArgs) -> ModelArgs:
    return model_args.model_copy(update={"quantization_bit": None})


def _load(config: RunConfig, dtype: torch.dtype) -> Any:
    from tunelab.model import load_model

    model = load_model(
        _unquantized(config.model), compute_dtype=dtype, model_max_length=config.data.cutoff_len
    )
    model.requires_grad_(False)
    return model.eval()


def load_merged_model(config: RunConfig, dtype: str, device: str = "cpu") -> Any:
    """The stand-alone model `config` describes, in `dtype` on `device`, with every adapter merged in."""
    from tunelab.model import load_adapters

    model = _load(config, torch_dtype(dtype))
    if device != "cpu":
        model = model.to(device)  # adapters load onto the base model's device and merge there
    adapters = config.model.adapter_name_or_path or []
    if adapters:
        model = load_adapters(model, adapters, is_trainable=False).merge_and_unload()
    return model.eval()


def load_reference_model(config: RunConfig) -> Any:
    """The model as trained, adapters *not* merged, in fp32: what the export must reproduce."""
    import torch

    from tunelab.model import load_adapters

    model = _load(config, torch.float32)
    adapters = config.model.adapter_name_or_path or []
    if adapters:
        model = load_adapters(model, adapters, is_trainable=False)
    return model.eval()


def model_dir_of(config: RunConfig) -> Path:
    """The local directory of the source model's base weights (for messages and the model card)."""
    return resolve_model_path(config.model.model_name_or_path, config.model.cache_dir)
