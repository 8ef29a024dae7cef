"""Quantized export (export_quantization_bit): 8- or 4-bit bitsandbytes weights, CUDA only.

bitsandbytes quantizes on the GPU as the weights load, so the merged full-precision model is saved
first and loaded back with a BitsAndBytesConfig; transformers then serialises the packed weights and
their quantization constants. bitsandbytes is imported only here, only when asked for.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from tunelab.errors import ResourceError

__all__ = ["check_quantized_export_supported", "load_quantized"]

_HINT = (
    "quantized export runs bitsandbytes on an NVIDIA GPU (`pip install bitsandbytes`); on this machine "
    "drop export_quantization_bit and export in bf16/fp16 (export_dtype), or quantize later on a GPU machine"
)


def check_quantized_export_supported(bits: int) -> None:
    """Raise ResourceError unless a CUDA GPU and bitsandbytes are present (called before any work)."""
    import torch

    if not torch.cuda.is_available():
        raise ResourceError(f"export_quantization_bit={bits} needs a CUDA GPU, and none was found", _HINT)
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ResourceError(
            f"export_quantization_bit={bits} needs the bitsandbytes package, which is not installed", _HINT
        )


def load_quantized(saved_dir: Path, bits: int, compute_dtype: Any) -> Any:
    """The full-precision model saved in `saved_dir`, loaded back quantized to `bits` on the GPU."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    if bits == 8:
        quantization = BitsAndBytesConfig(load_in_8bit=True)
    else:
        quantization = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype,
        )
    return AutoModelForCausalLM.from_pretrained(
        saved_dir,
        quantization_config=quantization,
        dtype=compute_dtype,
        device_map={"": torch.cuda.current_device()},
    )
