"""CUDA boosters (Liger Kernel, Unsloth): checked before any weight is loaded, with a clear refusal.

Both ship Triton kernels, so both need an NVIDIA GPU; neither is a dependency of tunelab (install
them with ``pip install liger-kernel`` / ``pip install unsloth`` on the GPU machine). Liger is
applied through transformers' own ``TrainingArguments.use_liger_kernel`` (its kernels replace RMSNorm,
RoPE, SwiGLU and the loss with a fused linear cross-entropy); Unsloth loads and wraps the model itself
(see :func:`tunelab.model.unsloth.load_unsloth_model`).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from tunelab.errors import ResourceError

if TYPE_CHECKING:
    from tunelab.config.schema import ModelArgs

__all__ = ["BOOSTER_PACKAGES", "booster_problem", "check_boosters"]

# config key -> (import name, pip name, what to use instead)
BOOSTER_PACKAGES: dict[str, tuple[str, str, str]] = {
    "enable_liger_kernel": (
        "liger_kernel",
        "liger-kernel",
        "set enable_liger_kernel: false; loss_kernel: chunked keeps the loss's memory and time saving on any device",
    ),
    "use_unsloth": (
        "unsloth",
        "unsloth",
        "set use_unsloth: false (plain PEFT LoRA with loss_kernel: auto and packing: true)",
    ),
}


def booster_problem(key: str, *, cuda_available: bool) -> tuple[str, str] | None:
    """(message, hint) saying why the booster ``key`` cannot run here, or None when it can."""
    module, package, alternative = BOOSTER_PACKAGES[key]
    if not cuda_available:
        return (
            f"{key}=true needs an NVIDIA CUDA GPU (its kernels are Triton), which this machine lacks",
            alternative,
        )
    if importlib.util.find_spec(module) is None:
        return (
            f"{key}=true needs the {package} package, which is not installed",
            f"pip install {package}, or {alternative}",
        )
    return None


def check_boosters(model_args: ModelArgs) -> None:
    """Raise ResourceError for every booster the config turns on that cannot run on this machine."""
    wanted = [key for key in BOOSTER_PACKAGES if getattr(model_args, key)]
    if not wanted:
        return
    import torch

    problems = [p for key in wanted if (p := booster_problem(key, cuda_available=torch.cuda.is_available()))]
    if problems:
        raise ResourceError("; ".join(m for m, _ in problems), "; ".join(h for _, h in problems))
