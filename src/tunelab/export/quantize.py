"""Quantized export (export_quantization_bit) by export_quantization_method.

- bnb: 8- or 4-bit bitsandbytes weights, CUDA only. bitsandbytes quantizes on the GPU as the weights
  load, so the merged full-precision model is saved first and loaded back with a BitsAndBytesConfig;
  transformers then serialises the packed weights and their quantization constants.
- gptq: 2/3/4/8-bit GPTQ weights calibrated on sample texts (export/calibration.py), through
  transformers' GPTQConfig, which runs optimum's GPTQ quantizer on the gptqmodel backend while the saved
  model loads. transformers 5 needs a CUDA GPU only when gptqmodel is missing, and gptqmodel is required
  anyway, so gptq runs on the CPU (export_device: cpu) or a GPU (auto).

bitsandbytes, optimum and gptqmodel are imported only here, only when asked for.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from packaging.version import Version

from tunelab.errors import ResourceError

__all__ = [
    "build_gptq_config",
    "check_quantized_export_supported",
    "gptq_group_size",
    "load_gptq_quantized",
    "load_quantized",
]

_HINT = (
    "quantized export with bnb runs bitsandbytes on an NVIDIA GPU (`pip install bitsandbytes`); on this "
    "machine use export_quantization_method: gptq (CPU works), or drop export_quantization_bit and export in "
    "bf16/fp16 (export_dtype), or quantize later on a GPU machine"
)
# the minimum versions transformers' GPTQ quantizer (quantizers/quantizer_gptq.py) checks for
_GPTQ_PACKAGES = {"optimum": "1.24.0", "gptqmodel": "1.4.3"}


def check_quantized_export_supported(bits: int, method: str = "bnb") -> None:
    """Raise ResourceError unless this machine can quantize with `method` (called before any work).

    gptq needs the packages optimum and gptqmodel; bnb needs a CUDA GPU and bitsandbytes.
    """
    if method == "gptq":
        _check_gptq_packages(bits)
        return
    import torch

    if not torch.cuda.is_available():
        raise ResourceError(
            f"export_quantization_bit={bits} needs a CUDA GPU, and none was found",
            _HINT,
            code="export_quant_needs_cuda",
            params={"bits": bits},
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ResourceError(
            f"export_quantization_bit={bits} needs the bitsandbytes package, which is not installed",
            _HINT,
            code="export_quant_needs_package",
            params={"bits": bits, "package": "bitsandbytes"},
        )


def _check_gptq_packages(bits: int) -> None:
    what = f"export_quantization_bit={bits} with export_quantization_method: gptq"
    missing = [name for name in _GPTQ_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ResourceError(
            f"{what} needs the package(s) {' and '.join(missing)}, not installed here",
            f"`pip install {' '.join(missing)}` (the gptq extra of tunelab); "
            "or drop export_quantization_bit to export unquantized",
        )
    old = [
        f"{name} {importlib.metadata.version(name)} (needs >= {least})"
        for name, least in _GPTQ_PACKAGES.items()
        if Version(importlib.metadata.version(name)) < Version(least)
    ]
    if old:
        raise ResourceError(
            f"{what} needs newer packages: {', '.join(old)}",
            f"`pip install -U {' '.join(_GPTQ_PACKAGES)}`",
        )


def gptq_group_size(model: Any, preferred: Sequence[int] = (128, 64, 32)) -> int:
    """The largest of `preferred` that divides the input width of every linear layer GPTQ packs, else -1.

    GPTQ kernels pack weights in groups along the input dimension, so a group must tile it exactly;
    -1 (one group per output column) always fits. lm_head stays unquantized and does not count.
    """
    import torch

    widths = {
        module.in_features
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")
    }
    for size in preferred:
        if widths and all(width % size == 0 for width in widths):
            return size
    return -1


def build_gptq_config(
    bits: int, texts: Sequence[str], tokenizer: Any, *, max_len: int, group_size: int = 128
) -> Any:
    """transformers' GPTQConfig for `bits`, calibrated on `texts` (already cut to `max_len` tokens).

    desc_act stays off and sym on (transformers' defaults): the packed weights then load with every
    gptqmodel kernel, including the CPU ones. optimum tokenizes each text with `tokenizer` (one
    sample per forward pass, so no padding is involved).
    """
    from transformers import GPTQConfig

    return GPTQConfig(
        bits=bits,
        tokenizer=tokenizer,
        dataset=list(texts),
        group_size=group_size,
        model_seqlen=max_len,
        desc_act=False,
        sym=True,
        batch_size=1,
    )


def load_gptq_quantized(saved_dir: Path, gptq_config: Any, compute_dtype: Any, device: str) -> Any:
    """The full-precision model saved in `saved_dir`, loaded back GPTQ-quantized on `device`."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        saved_dir, quantization_config=gptq_config, dtype=compute_dtype, device_map={"": device}
    )
    # optimum records the calibration texts in the config; they are not needed to load the model
    quantization = getattr(model.config, "quantization_config", None)
    if isinstance(quantization, dict):
        quantization.pop("dataset", None)
    elif quantization is not None and hasattr(quantization, "dataset"):
        quantization.dataset = None
    return model


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
