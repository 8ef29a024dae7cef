"""Who am I among the training processes, and what do we all agree on: the one place for rank logic.

Every multi-process run (``tunelab train --nproc-per-node N``, a user's own ``torchrun -m tunelab``
or ``accelerate launch -m tunelab``) is told its place by the launcher through the environment
variables RANK, WORLD_SIZE and LOCAL_RANK. This module is the only one that reads them and the only
one that calls torch.distributed collectives; feature code asks questions instead:
"am I the writer?" (:func:`is_writer`), "does any rank want to stop?" (:func:`any_rank`),
"what did rank 0 decide?" (:func:`broadcast_decision`).

Without a launcher every function is the single-process answer (rank 0 of 1, collectives return
their input), so callers never branch on the world size themselves. torch is imported only inside
the collectives: ``runs/`` and ``config/`` may ask :func:`is_writer` without importing torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, TypeVar

from tunelab.errors import TunelabError

__all__ = [
    "all_agree",
    "all_gather_objects",
    "all_reduce_mean",
    "all_reduce_sum",
    "any_rank",
    "backend",
    "barrier",
    "broadcast_decision",
    "init_process_group",
    "is_distributed",
    "is_launched",
    "is_writer",
    "local_rank",
    "main_process_first",
    "prepare_once",
    "rank",
    "unwrap",
    "world_size",
]

T = TypeVar("T")

# Waiting for rank 0 to prepare data or build a model must not fail at the collective timeout
# (ddp_timeout, 30 min by default): tokenizing a large dataset takes longer. That wait uses its own
# group with this timeout; training collectives keep ddp_timeout.
_PREPARE_TIMEOUT = timedelta(hours=24)
_prepare_group: Any = None
# decisions (flags, small numbers, picklable objects) travel over gloo on the CPU, also under nccl
_decision_group: Any = None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip().lstrip("-").isdigit() else default


def world_size() -> int:
    """Number of training processes in this run (1 without a launcher)."""
    return max(1, _env_int("WORLD_SIZE", 1))


def rank() -> int:
    """This process's global rank, 0 .. world_size()-1."""
    return _env_int("RANK", 0)


def local_rank() -> int:
    """This process's rank on its machine (its GPU index under nccl)."""
    return _env_int("LOCAL_RANK", 0)


def is_distributed() -> bool:
    """Whether this process is one of several launched together."""
    return world_size() > 1


def is_launched() -> bool:
    """Whether a launcher (torchrun, accelerate launch) started this process as one of its ranks."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_writer() -> bool:
    """Whether this process writes the run directory and prints progress (global rank 0)."""
    return rank() == 0


def backend() -> str:
    """nccl where CUDA is available, gloo on CPU."""
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


def _joined() -> bool:
    """Whether :func:`init_process_group` joined a group of several processes."""
    return _decision_group is not None


def init_process_group(timeout_seconds: int) -> None:
    """Join the launcher's process group (once; no-op in a single process).

    Called before the model and data are loaded, so that rank 0 can prepare them first
    (:func:`main_process_first`); accelerate and the Trainer then reuse this group.
    ``timeout_seconds`` (ddp_timeout) bounds every training collective: a rank that died makes the
    others fail after at most this long instead of hanging.
    """
    global _prepare_group, _decision_group
    if not is_distributed() or _decision_group is not None:
        return
    import torch
    import torch.distributed as dist

    timeout = timedelta(seconds=timeout_seconds)
    if not dist.is_initialized():  # (a caller such as accelerate may have joined it already)
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank())
        dist.init_process_group(backend=backend(), timeout=timeout)
    _prepare_group = dist.new_group(backend="gloo", timeout=_PREPARE_TIMEOUT)
    _decision_group = dist.new_group(backend="gloo", timeout=timeout)


def barrier() -> None:
    """Wait until every rank gets here."""
    if _joined():
        import torch.distributed as dist

        dist.barrier()


@contextmanager
def main_process_first() -> Iterator[None]:
    """Run the body on rank 0 first, then on the others (which find its caches filled).

    Used around model building and data preparation: two ranks building the same cache at once
    would race, and the others wait on a group whose timeout is 24 h, not ddp_timeout.
    """
    if not _joined():
        yield
        return
    import torch.distributed as dist

    if not is_writer():
        dist.barrier(group=_prepare_group)
    try:
        yield
    finally:
        if is_writer():
            dist.barrier(group=_prepare_group)


def prepare_once(build: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``build(*args, **kwargs)`` computed on rank 0 only and handed to every rank.

    For data preparation: tokenizing happens once instead of once per rank, and the other ranks
    wait for it on the 24 h preparation group, so a large dataset cannot hit ddp_timeout (the
    classic "NCCL timeout while rank 0 tokenizes"). The result travels pickled over gloo (an
    in-memory datasets.Dataset pickles with its Arrow table), so nodes need no shared disk.
    An error on rank 0 reaches the other ranks too, as the same exception.
    """
    if not _joined():
        return build(*args, **kwargs)
    import torch.distributed as dist

    box: list[Any] = [None]
    if is_writer():
        try:
            box[0] = (True, build(*args, **kwargs))
        # (the errors bad data causes; anything else ends rank 0, and the launcher stops the others)
        except (TunelabError, OSError, ValueError, RuntimeError, KeyError) as exc:
            box[0] = (False, exc)
    dist.broadcast_object_list(box, src=0, group=_prepare_group)
    ok, value = box[0]
    if not ok:
        raise value
    return value


def unwrap(model: Any) -> Any:
    """The module a DistributedDataParallel wrapper trains (``model`` itself when not wrapped).

    The Trainer hands the wrapper to ``training_step``/``compute_loss``; attributes such as a value
    head, ``generate`` or PEFT's ``disable_adapter`` live on the wrapped module only.
    """
    import torch

    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def _all_reduce(value: float, op: str) -> float:
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(tensor, op=getattr(dist.ReduceOp, op), group=_decision_group)
    return float(tensor.item())


def all_reduce_mean(value: float) -> float:
    """The mean of ``value`` over all ranks (``value`` itself in one process)."""
    if not _joined():
        return float(value)
    return _all_reduce(value, "SUM") / world_size()


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sums of ``values`` over all ranks (``values`` itself in one process).

    For metrics that are ratios of sums (loss per token, agreement per token): each rank sends its
    sums, every rank divides the totals, so no rank averages per-rank averages.
    """
    if not _joined():
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=_decision_group)
    return [float(v) for v in tensor.tolist()]


def all_gather_objects(value: T) -> list[T]:
    """Every rank's ``value`` (any picklable object), in rank order, on every rank ([value] in one process)."""
    if not _joined():
        return [value]
    import torch.distributed as dist

    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, value, group=_decision_group)
    return gathered


def any_rank(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on at least one (e.g. one rank got Ctrl-C)."""
    if not _joined():
        return bool(flag)
    return _all_reduce(1.0 if flag else 0.0, "MAX") > 0.5


def all_agree(flag: bool) -> bool:
    """True on every rank only when ``flag`` is true on all of them."""
    if not _joined():
        return bool(flag)
    return _all_reduce(1.0 if flag else 0.0, "MIN") > 0.5


def broadcast_decision(decision: T) -> T:
    """Rank 0's ``decision`` (any picklable value) on every rank, so all act on the same one."""
    if not _joined():
        return decision
    import torch.distributed as dist

    box = [decision]
    dist.broadcast_object_list(box, src=0, group=_decision_group)
    return box[0]
