"""Pick the attention implementation passed to `from_pretrained(attn_implementation=...)`."""

from __future__ import annotations

from tunelab.errors import ConfigError, ResourceError

__all__ = ["choose_attn_implementation", "resolve_attn_implementation", "uses_packed_sdpa"]

_CHOICES = ("auto", "disabled", "eager", "sdpa", "fa2")


def choose_attn_implementation(flash_attn: str, *, fa2_available: bool, cuda_available: bool) -> str:
    """Map the `flash_attn` setting to a transformers implementation name, given what is installed."""
    if flash_attn not in _CHOICES:
        raise ConfigError(
            f"flash_attn={flash_attn!r} is not a known option", f"use one of: {', '.join(_CHOICES)}"
        )
    if flash_attn in ("disabled", "eager"):  # LLaMA-Factory's name, and transformers' own
        return "eager"
    if flash_attn == "sdpa":
        return "sdpa"
    usable = fa2_available and cuda_available
    if flash_attn == "fa2" and not usable:
        missing = "a CUDA GPU" if not cuda_available else "the flash-attn package (>= 2.3.3)"
        raise ResourceError(
            f"flash_attn=fa2 needs {missing}, which this machine lacks",
            "on an NVIDIA GPU: pip install flash-attn --no-build-isolation; otherwise set flash_attn: auto (sdpa)",
            code="fa2_unavailable",
            params={"missing": "cuda" if not cuda_available else "package"},
        )
    return "flash_attention_2" if usable else "sdpa"


def resolve_attn_implementation(flash_attn: str) -> str:
    """The attention implementation for this machine: flash_attention_2, sdpa or eager."""
    import torch
    from transformers.utils import is_flash_attn_2_available

    cuda = torch.cuda.is_available()
    return choose_attn_implementation(
        flash_attn, fa2_available=cuda and is_flash_attn_2_available(), cuda_available=cuda
    )


def uses_packed_sdpa(flash_attn: str, implementation: str, *, packing: bool, device_type: str) -> bool:
    """Whether ``flash_attn: auto`` switches a model to per-sample sdpa (tunelab.model.packed_attention).

    Only for packed rows on CPU, where it was measured faster than sdpa with the block-diagonal mask
    (docs/benchmarks.md); an explicit ``flash_attn: sdpa`` keeps transformers' own sdpa.
    """
    return packing and flash_attn == "auto" and implementation == "sdpa" and device_type == "cpu"
