"""How fast this machine multiplies matrices, per precision: the fact `compute_type: auto` rests on.

CPU flags say what an instruction set has, not what torch's kernels make of it: bf16 ran at ~1 GFLOP/s
against ~140 in fp32 on an AVX2-only EPYC, while another EPYC reporting ``avx512_bf16`` ran bf16
matmuls about 4x faster than fp32. So `auto` times a few square matmuls in both precisions (about
0.1 s, once per process) and picks bf16 only where it is measurably faster. The benchmarks use the
same probe, longer and larger, as the peak that MFU is quoted against.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["cpu_bf16_speedup", "matmul_rate"]


def matmul_rate(dtype: torch.dtype, *, size: int = 512, seconds: float = 0.05, device: str = "cpu") -> float:
    """FLOP/s of ``size`` x ``size`` matmuls in ``dtype`` on ``device``: the best of short timed bursts.

    The best burst (not the mean) is reported so that a neighbour's load on a shared machine
    lowers the figure as little as possible.
    """
    import torch

    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    warm_until = time.perf_counter() + seconds / 2  # first calls: kernel selection, buffers, clocks
    while time.perf_counter() < warm_until:
        a @ b
    sync()
    best, deadline = 0.0, time.perf_counter() + seconds
    while True:
        started = time.perf_counter()
        a @ b
        sync()
        elapsed = time.perf_counter() - started
        best = max(best, 2 * size**3 / max(elapsed, 1e-9))
        if started + elapsed >= deadline:
            return best


@functools.lru_cache(maxsize=1)
def cpu_bf16_speedup() -> float:
    """Measured bf16 / fp32 matmul throughput on this CPU (> 1: bf16 is faster), once per process."""
    import torch

    fp32 = matmul_rate(torch.float32)
    return matmul_rate(torch.bfloat16) / fp32 if fp32 > 0 else 0.0
