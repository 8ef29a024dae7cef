"""The tensor-memory tracker counts what an allocator would hand out, and enforces a ceiling."""

from __future__ import annotations

import pytest
import torch

from tunelab.tune.memtrack import ProbeOutOfMemory, TensorMemoryTracker, is_out_of_memory


def test_counts_new_tensors_once_and_forgets_freed_ones() -> None:
    with TensorMemoryTracker() as tracker:
        a = torch.zeros(1000)  # 4000 bytes
        view = a[10:]  # a view shares the storage: nothing new
        a.add_(1)  # in place: nothing new
        assert tracker.live == 4000
        b = a * 2  # a new tensor
        assert tracker.live == 8000
        del b
        assert tracker.live == 4000
    assert tracker.peak == 8000
    del view, a


def test_tensors_from_before_are_not_counted() -> None:
    weights = torch.ones(10_000)
    with TensorMemoryTracker() as tracker:
        weights.mul_(0.5)
        out = weights.sum()
    assert tracker.peak == out.untyped_storage().nbytes()


def test_ceiling_raises_an_out_of_memory_error() -> None:
    with pytest.raises(ProbeOutOfMemory) as caught, TensorMemoryTracker(limit_bytes=10_000):
        torch.zeros(100_000)
    assert is_out_of_memory(caught.value)
    assert not is_out_of_memory(ValueError("out of memory"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))


def test_backward_allocations_are_seen() -> None:
    x = torch.randn(256, 256, requires_grad=True)
    with TensorMemoryTracker() as tracker:
        y = (x @ x).relu().sum()
        y.backward()
    assert x.grad is not None
    assert tracker.peak >= 2 * 256 * 256 * 4  # the product and its gradient
