"""`tunelab find-batch`: the largest micro-batch that really fits, found by running real steps.

Each probe runs a full training step (forward, backward, gradient clipping, optimizer step) on the
worst case the data can produce — every row as long as the longest row after cutoff and packing,
padded like a real batch — because a batch size found on average rows fails hours later on a long
one. Sizes double until a probe runs out of memory, then a binary search finds the boundary; only a
size whose probe succeeded is ever returned. Out of memory is CUDA's error on a GPU, or on a CPU the
ceiling ``--max-mem`` (default: the RAM available) enforced on the tensor memory the step allocates.

The evaluation batch is sized separately (forward only, no gradients, with the optimizer state still
in memory as it is during training): an evaluation that runs out of memory never shrinks the
training batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tunelab.config import RunConfig
from tunelab.errors import ConfigError, ResourceError
from tunelab.tune.hardware import GIB, planned_hardware
from tunelab.tune.memtrack import is_out_of_memory
from tunelab.tune.scaling import split_batch

__all__ = ["BatchProbe", "BatchSearch", "find_batch", "search_largest"]


@dataclass(frozen=True)
class BatchProbe:
    """One probe: which split, which batch size, whether it fitted and its peak tensor memory."""

    split: str
    batch: int
    ok: bool
    peak: int = 0  # total tensor bytes (weights + optimizer state + step) at the probe's peak
    error: str = ""


@dataclass
class BatchSearch:
    """The answer of find-batch, with every probe that led to it."""

    seq_len: int
    eval_seq_len: int
    train_batch: int
    largest_train_batch: int
    accumulation: int
    devices: int
    target_batch: int
    eval_batch: int
    ceiling_bytes: int
    probes: list[BatchProbe] = field(default_factory=list)
    notes: list[tuple[str, str]] = field(default_factory=list)  # (English, Chinese)

    @property
    def effective_batch(self) -> int:
        return self.train_batch * self.accumulation * self.devices

    def updates(self) -> dict[str, int]:
        """The config keys find-batch answers."""
        return {
            "per_device_train_batch_size": self.train_batch,
            "gradient_accumulation_steps": self.accumulation,
            "per_device_eval_batch_size": self.eval_batch,
        }


def search_largest(fits: Callable[[int], bool], cap: int, *, start: int = 1) -> int:
    """The largest size in [start, cap] for which ``fits`` is true, assuming fits is monotone.

    Doubling from ``start`` until a failure (or ``cap``), then binary search between the last success
    and the first failure. Returns 0 when ``start`` itself fails. ``fits`` is called at most once per size.
    """
    if cap < start or not fits(start):
        return 0
    good, bad = start, None
    size = start
    while bad is None and size < cap:
        size = min(size * 2, cap)
        if fits(size):
            good = size
        else:
            bad = size
    if bad is None:
        return good
    while bad - good > 1:
        middle = (good + bad) // 2
        if fits(middle):
            good = middle
        else:
            bad = middle
    return good


def find_batch(
    config: RunConfig,
    *,
    target_batch: int | None = None,
    max_mem_gib: float | None = None,
    max_batch: int | None = None,
    max_eval_batch: int | None = None,
    seq_len: int | None = None,
    nproc_per_node: int | None = None,
    nnodes: int = 1,
    console: Any = None,
) -> BatchSearch:
    """Probe real steps to find the largest micro-batch and eval batch (see the module docstring).

    ``target_batch``: effective batch to reach (default: the config's micro-batch x accumulation x
    devices); ``max_mem_gib``: ceiling on the tensor memory of the run (weights included);
    ``max_batch`` / ``max_eval_batch``: largest sizes probed (default: the per-device target, and 4x it).
    ``nproc_per_node`` x ``nnodes`` devices share the target batch: the probes (one process, this
    device) find the micro-batch *per device*.
    """
    from tunelab.tune.estimate import check_world_args
    from tunelab.tune.probe import TrainingProbe

    check_world_args(nproc_per_node, nnodes)
    hardware = planned_hardware(None, nproc_per_node)
    devices = hardware.n_devices * nnodes
    t = config.training
    target = target_batch or t.per_device_train_batch_size * t.gradient_accumulation_steps * devices
    if target < 1 or (max_mem_gib is not None and max_mem_gib <= 0):
        raise ConfigError(
            "--target-batch and --max-mem must be positive", "e.g. --target-batch 32 --max-mem 8"
        )
    per_device = math.ceil(target / devices)
    cap = max_batch or per_device
    eval_cap = max_eval_batch or 4 * cap

    probe = TrainingProbe(config)
    for group in probe.optimizer.param_groups:  # probes measure memory; they must not change the weights
        group["lr"] = 0.0
    train_len = seq_len or probe.longest_row_length("train")
    eval_len = seq_len or probe.longest_row_length("eval") or train_len
    ceiling = int(max_mem_gib * GIB) if max_mem_gib is not None else hardware.budget_bytes
    search = BatchSearch(
        seq_len=train_len, eval_seq_len=eval_len, train_batch=0, largest_train_batch=0, accumulation=0,
        devices=devices, target_batch=target, eval_batch=0, ceiling_bytes=ceiling,
    )  # fmt: skip

    def run(split: str, size: int) -> bool:
        label = f"probing {split} batch {size} x {train_len if split == 'train' else eval_len} tokens"
        if console is not None:
            console.print(f"  {label} ...", highlight=False, end="\r")
        probe.release()
        static = probe.static_bytes()
        limit = max(0, ceiling - static)
        try:
            if split == "train":
                batch = probe.worst_case_batch(size, seq_len=train_len)
                with probe.measure(limit) as tracker:
                    probe.train_step(batch)
            else:
                batch = probe.worst_case_batch(size, split="eval", seq_len=eval_len)
                with probe.measure(limit) as tracker:
                    probe.eval_step(batch)
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            del exc
            probe.release()
            search.probes.append(BatchProbe(split, size, False, error="out of memory"))
            return False
        search.probes.append(BatchProbe(split, size, True, peak=static + tracker.peak))
        return True

    # The first step creates the optimizer state, which every later step keeps in memory.
    if not run("train", 1):
        raise ResourceError(
            f"even micro-batch 1 at {train_len} tokens does not fit {ceiling / GIB:.2f} GiB",
            "set gradient_checkpointing=true, lower cutoff_len, use LoRA (or quantization_bit=4 on a GPU); "
            "`tunelab estimate` shows where the memory goes",
        )
    known = {1: True}

    def train_fits(size: int) -> bool:
        if size not in known:
            known[size] = run("train", size)
        return known[size]

    largest = search_largest(train_fits, cap, start=1)
    micro, accum = split_batch(target, largest, devices)
    search.largest_train_batch, search.train_batch, search.accumulation = largest, micro, accum
    if largest >= cap:
        search.notes.append(
            (
                f"micro-batch {cap} fitted, the largest probed (--max-batch raises the limit)",
                f"微批 {cap} 放得下，这是探测的上限（--max-batch 可提高上限）",
            )
        )
    if micro < largest:
        search.notes.append(
            (
                f"micro-batch {micro} (not {largest}) divides the target {target} exactly: {micro} x {accum}",
                f"微批 {micro}（而非 {largest}）能整除目标 {target}：{micro} × {accum}",
            )
        )
    if devices > 1 or config.training.deepspeed or config.training.fsdp:
        search.notes.append(
            (
                f"the micro-batch is per device: each of the {devices} device(s) runs it; probed as one unsharded "
                "process (ZeRO/FSDP sharding leaves more room, `tunelab estimate --nproc-per-node` shows how much)",
                f"微批按单个设备计：{devices} 个设备各跑一份；探测时为单个未切分的进程"
                "（ZeRO/FSDP 切分后空间更大，`tunelab estimate --nproc-per-node` 可显示多出多少）",
            )
        )
    search.eval_batch = search_largest(lambda size: run("eval", size), eval_cap, start=1)
    if search.eval_batch == 0:
        search.eval_batch = 1
        search.notes.append(
            (
                "evaluation at batch 1 ran out of memory too (1 is written, but will not fit): lower cutoff_len "
                "or evaluate with more memory",
                "评估在批大小 1 时也内存不足（写入 1，但放不下）：请降低 cutoff_len 或使用更多内存评估",
            )
        )
    if console is not None:
        console.print(" " * 60, end="\r")
    return search
