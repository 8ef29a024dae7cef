"""Shared by the speed benchmarks (train_throughput.py, gpu_throughput.py): peak memory and MFU."""

from __future__ import annotations

import ctypes
import threading
from typing import Any

# model FLOPs per trained token, per parameter: forward (2) plus backward. Frozen weights (LoRA,
# QLoRA) need only the input gradient (2); trained ones also their weight gradient (2 more).
FLOPS_PER_PARAM = {"lora": 4, "qlora": 4, "full": 6}


def release_free_memory() -> None:
    """Hand glibc's free pages back to the OS, so that the next run's RSS starts from what is live."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """Peak resident size above the size at ``__enter__``, sampled every ``interval`` seconds."""

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRSS:
        from tunelab.tune.memtrack import rss_bytes

        release_free_memory()
        self.start = self.peak = rss_bytes()

        def sample() -> None:
            while not self._stop.wait(self.interval):
                self.peak = max(self.peak, rss_bytes())

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def measured_peak(dtype_name: str, device: str = "cpu", seconds: float = 1.0) -> float:
    """The machine's matmul FLOP/s in ``dtype_name`` ('fp32'/'bf16'): best burst of 1024^3 (CPU) or
    8192^3 (CUDA) products, what MFU is quoted against."""
    import torch

    from tunelab.model.matmul_probe import matmul_rate

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    size = 8192 if device.startswith("cuda") else 1024
    return matmul_rate(dtype, size=size, seconds=seconds, device=device)


def mfu(tokens_per_second: float, n_params: int, method: str, peak: float) -> float:
    """Model FLOPs utilisation: FLOPS_PER_PARAM x parameters x tokens/s over the matmul peak."""
    return FLOPS_PER_PARAM[method] * n_params * tokens_per_second / peak if peak else 0.0
