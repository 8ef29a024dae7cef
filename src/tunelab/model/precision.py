"""Pick the arithmetic precision for a run, with the reason, from what the machine can do fast.

bf16 is only a win where the hardware has bf16 matrix units: recent NVIDIA GPUs, and x86 CPUs with
AMX or AVX512-BF16. On other CPUs bf16 matmuls fall back to scalar code; on our AVX2-only AMD test
machine they ran at ~1 GFLOP/s against ~140 in fp32, so `auto` must not pick bf16 there. Flags alone
do not settle it (what matters is what torch's kernels make of them), so on a CPU `auto` decides by a
short measured matmul probe (:mod:`tunelab.model.matmul_probe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tunelab.errors import ConfigError, ResourceError

if TYPE_CHECKING:
    import torch

__all__ = [
    "BF16_MIN_SPEEDUP",
    "ComputeChoice",
    "choose_compute",
    "cpu_flags",
    "describe_compute_choice",
    "resolve_compute_dtype",
]

_COMPUTE_TYPES = ("auto", "bf16", "fp16", "fp32")
# Either of these flags means the CPU multiplies bf16 matrices in hardware.
_CPU_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
# measured bf16/fp32 matmul speed above which `auto` picks bf16 on a CPU (below it, the rounding
# costs accuracy for too little gain)
BF16_MIN_SPEEDUP = 1.3


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
    cpu_bf16_speedup: float | None = None,
) -> ComputeChoice:
    """Decide the precision from the request and the hardware facts (pure, so it is testable anywhere).

    ``cpu_bf16_speedup`` is the measured bf16/fp32 matmul throughput of the CPU; where it is given it
    decides instead of the flags.
    """
    if compute_type not in _COMPUTE_TYPES:
        raise ConfigError(
            f"compute_type={compute_type!r} is not a known precision",
            f"use one of: {', '.join(_COMPUTE_TYPES)}",
        )
    cpu_bf16 = sorted(flags & _CPU_BF16_FLAGS)
    measured = cpu_bf16_speedup is not None
    fast_cpu_bf16 = cpu_bf16_speedup >= BF16_MIN_SPEEDUP if measured else bool(cpu_bf16)
    has = "/".join(cpu_bf16) or "no AMX/AVX512-BF16"
    probe = f"bf16 matmuls measured {cpu_bf16_speedup:.2f}x as fast as fp32" if measured else ""
    if compute_type == "fp32":
        return ComputeChoice("fp32", "fp32 requested")
    if compute_type == "fp16":
        if not cuda_available:
            raise ResourceError(
                "compute_type=fp16 needs a CUDA GPU; fp16 training on a CPU is slow and unstable",
                "set compute_type: bf16 (fast on CPUs with AMX/AVX512-BF16) or compute_type: fp32",
                code="fp16_needs_cuda",
            )
        return ComputeChoice("fp16", "fp16 requested (CUDA)")
    if compute_type == "bf16":
        if cuda_available and not cuda_bf16:
            raise ResourceError(
                "compute_type=bf16 requested but this GPU has no bf16 support (pre-Ampere)",
                "set compute_type: fp16 or fp32",
            )
        if not cuda_available and not fast_cpu_bf16:
            why = probe or "this CPU has no AMX/AVX512-BF16"
            return ComputeChoice("bf16", f"bf16 requested, but {why}: expect it to be slower than fp32")
        return ComputeChoice("bf16", "bf16 requested")
    # auto
    if cuda_available:
        if cuda_bf16:
            return ComputeChoice("bf16", "auto: CUDA GPU with bf16 support")
        return ComputeChoice("fp32", "auto: CUDA GPU without bf16 support (set compute_type: fp16 to use it)")
    if measured:
        name = "bf16" if fast_cpu_bf16 else "fp32"
        return ComputeChoice(name, f"auto: CPU ({has}), {probe} (bf16 needs >= {BF16_MIN_SPEEDUP}x)")
    if cpu_bf16:
        return ComputeChoice("bf16", f"auto: CPU has {has} (hardware bf16 matmul)")
    return ComputeChoice("fp32", "auto: CPU without AMX/AVX512-BF16, where bf16 is slower than fp32")


def _detect(compute_type: str) -> ComputeChoice:
    import torch

    cuda = torch.cuda.is_available()
    speedup = None
    if not cuda and compute_type in ("auto", "bf16"):
        from tunelab.model.matmul_probe import cpu_bf16_speedup

        speedup = cpu_bf16_speedup()
    return choose_compute(
        compute_type,
        cuda_available=cuda,
        cuda_bf16=bool(cuda and torch.cuda.is_bf16_supported()),
        flags=cpu_flags(),
        cpu_bf16_speedup=speedup,
    )


def resolve_compute_dtype(compute_type: str) -> torch.dtype:
    """The torch dtype to compute in for `compute_type` ('auto', 'bf16', 'fp16', 'fp32') on this machine."""
    return _detect(compute_type).dtype


def describe_compute_choice(compute_type: str) -> str:
    """One line for the run log: the precision chosen on this machine and why."""
    choice = _detect(compute_type)
    return f"compute precision {choice.name} ({choice.reason})"
