"""Pick the arithmetic precision for a run, with the reason, from what the machine can do fast.

bf16 is only a win where the hardware has bf16 matrix units: recent NVIDIA GPUs, and x86 CPUs with
AMX or AVX512-BF16. On other CPUs bf16 matmuls fall back to scalar code; on our AVX2-only AMD test
machine they ran at ~1 GFLOP/s against ~140 in fp32, so `auto` must not pick bf16 there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tunelab.errors import ConfigError, ResourceError

if TYPE_CHECKING:
    import torch

__all__ = ["ComputeChoice", "choose_compute", "cpu_flags", "describe_compute_choice", "resolve_compute_dtype"]

_COMPUTE_TYPES = ("auto", "bf16", "fp16", "fp32")
# Either of these flags means the CPU multiplies bf16 matrices in hardware.
_CPU_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@dataclass(frozen=True)
class ComputeChoice:
    """The precision picked for a run: a dtype name ('bf16', 'fp16', 'fp32') and why."""

    name: str
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.name]


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where /proc/cpuinfo does not exist)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def choose_compute(
    compute_type: str,
    *,
    cuda_available: bool,
    cuda_bf16: bool,
    flags: frozenset[str],
) -> ComputeChoice:
    """Decide the precision from the request and the hardware facts (pure, so it is testable anywhere)."""
    if compute_type not in _COMPUTE_TYPES:
        raise ConfigError(
            f"compute_type={compute_type!r} is not a known precision",
            f"use one of: {', '.join(_COMPUTE_TYPES)}",
        )
    cpu_bf16 = sorted(flags & _CPU_BF16_FLAGS)
    if compute_type == "fp32":
        return ComputeChoice("fp32", "fp32 requested")
    if compute_type == "fp16":
        if not cuda_available:
            raise ResourceError(
                "compute_type=fp16 needs a CUDA GPU; fp16 training on a CPU is slow and unstable",
                "set compute_type: bf16 (fast on CPUs with AMX/AVX512-BF16) or compute_type: fp32",
            )
        return ComputeChoice("fp16", "fp16 requested (CUDA)")
    if compute_type == "bf16":
        if cuda_available and not cuda_bf16:
            raise ResourceError(
                "compute_type=bf16 requested but this GPU has no bf16 support (pre-Ampere)",
                "set compute_type: fp16 or fp32",
            )
        if not cuda_available and not cpu_bf16:
            return ComputeChoice(
                "bf16",
                "bf16 requested, but this CPU has no AMX/AVX512-BF16: expect it to be much slower than fp32",
            )
        return ComputeChoice("bf16", "bf16 requested")
    # auto
    if cuda_available:
        if cuda_bf16:
            return ComputeChoice("bf16", "auto: CUDA GPU with bf16 support")
        return ComputeChoice("fp32", "auto: CUDA GPU without bf16 support (set compute_type: fp16 to use it)")
    if cpu_bf16:
        return ComputeChoice("bf16", f"auto: CPU has {'/'.join(cpu_bf16)} (hardware bf16 matmul)")
    return ComputeChoice("fp32", "auto: CPU without AMX/AVX512-BF16, where bf16 is slower than fp32")


def _detect(compute_type: str) -> ComputeChoice:
    import torch

    cuda = torch.cuda.is_available()
    return choose_compute(
        compute_type,
        cuda_available=cuda,
        cuda_bf16=bool(cuda and torch.cuda.is_bf16_supported()),
        flags=cpu_flags(),
    )


def resolve_compute_dtype(compute_type: str) -> torch.dtype:
    """The torch dtype to compute in for `compute_type` ('auto', 'bf16', 'fp16', 'fp32') on this machine."""
    return _detect(compute_type).dtype


def describe_compute_choice(compute_type: str) -> str:
    """One line for the run log: the precision chosen on this machine and why."""
    choice = _detect(compute_type)
    return f"compute precision {choice.name} ({choice.reason})"
