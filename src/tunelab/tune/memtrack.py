"""Measure the tensor memory a piece of training code allocates, on any device, and enforce a ceiling.

On CUDA, ``torch.cuda.max_memory_allocated`` answers "how much did the tensors need at peak". A CPU
has no such counter: PyTorch hands CPU tensors to malloc, and the process's resident size (RSS)
mixes tensors with the Python heap, library workspaces and pages glibc keeps after a free, so it
only grows and cannot be reset between probes. :class:`TensorMemoryTracker` counts what
``max_memory_allocated`` counts, on every device: it sees each tensor an operator creates (a
``TorchDispatchMode``), counts its storage once (views share it) and subtracts it when the storage
is freed (a weak reference on the storage). It is exact for tensor memory and blind to the rest
(allocator fragmentation, oneDNN scratch space), which is why estimates are checked against it and
RSS is reported beside it.

With ``limit_bytes`` it turns into a memory ceiling: the first operator that takes live tensor
memory above the limit raises :class:`ProbeOutOfMemory`, the CPU analogue of CUDA's out-of-memory
error, before the machine itself runs short.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

from tunelab.compat.torch import TorchDispatchMode, tree_leaves

__all__ = ["ProbeOutOfMemory", "TensorMemoryTracker", "is_out_of_memory", "rss_bytes"]


class ProbeOutOfMemory(RuntimeError):
    """Live tensor memory went above the probe's ceiling (the message says 'out of memory', as CUDA's does)."""


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/CPU out-of-memory errors and for our ceiling."""
    if isinstance(exc, (ProbeOutOfMemory, torch.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class TensorMemoryTracker(TorchDispatchMode):
    """Count the bytes of live tensor storages created inside the ``with`` block (see the module doc).

    ``live`` and ``peak`` are bytes above the moment the block was entered; tensors that existed
    before (the weights) are not counted, tensors created inside and still alive at exit are.
    """

    def __init__(self, limit_bytes: int | None = None) -> None:
        super().__init__()
        self.limit_bytes = limit_bytes
        self.live = 0
        self.peak = 0
        self._seen: dict[int, tuple[weakref.ref[Any], int]] = {}

    def reset_peak(self) -> None:
        """Start a new peak from the current live bytes (e.g. between a warm-up and the measured step)."""
        self.peak = self.live

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        # An output sharing an input's storage (in-place op, view, out=) allocated nothing new; without
        # this, an optimizer's in-place update would count the weights it touches as new memory.
        inputs = {id(_storage(t)) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for value in tree_leaves(out):
            if isinstance(value, torch.Tensor):
                storage = _storage(value)
                if storage is not None and id(storage) not in inputs:
                    self._track(storage)
        if self.limit_bytes is not None and self.live > self.limit_bytes:
            raise ProbeOutOfMemory(
                f"out of memory: tensors need {self.live / 2**20:.1f} MiB, "
                f"above the ceiling of {self.limit_bytes / 2**20:.1f} MiB"
            )
        return out

    def _track(self, storage: torch.UntypedStorage) -> None:
        key = id(storage)
        entry = self._seen.get(key)
        size = storage.nbytes()
        if entry is not None and entry[0]() is storage:
            if size != entry[1]:  # resized in place (out= variants)
                self.live += size - entry[1]
                self._seen[key] = (entry[0], size)
                self.peak = max(self.peak, self.live)
            return
        if size == 0:
            return
        self._seen[key] = (weakref.ref(storage, self._forget(key)), size)
        self.live += size
        self.peak = max(self.peak, self.live)

    def _forget(self, key: int) -> Any:
        def callback(_: Any) -> None:
            entry = self._seen.pop(key, None)
            if entry is not None:
                self.live -= entry[1]

        return callback


def _storage(tensor: torch.Tensor) -> torch.UntypedStorage | None:
    try:
        return tensor.untyped_storage()
    except (RuntimeError, NotImplementedError):  # sparse or other storage-less tensors
        return None


def rss_bytes() -> int:
    """The process's resident set size now (Linux /proc; 0 where it cannot be read)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    import os

    return pages * os.sysconf("SC_PAGE_SIZE")
