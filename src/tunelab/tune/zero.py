"""Memory per device when several devices train one model: DDP replicas and DeepSpeed ZeRO stages 1-3.

The model states (parameters, gradients, optimizer states) follow DeepSpeed's own estimators
(``estimate_zero2_model_states_mem_needs`` / ``estimate_zero3_model_states_mem_needs`` in
``deepspeed.runtime.zero``), per trainable parameter Ψ over N ranks in mixed precision:

    ZeRO-2            2Ψ + 18Ψ/N   (16-bit params replicated; 16-bit + fp32 grads, fp32 master, Adam m, v partitioned)
    ZeRO-2 + offload  2Ψ           (the rest lives in CPU RAM: Ψ·max(4N, 16)·1.5 per node)
    ZeRO-3            4L + 18Ψ/N   (L = parameters of the largest layer, gathered with its gradient)
    ZeRO-3 + offload  4L           (parameters and optimizer in CPU RAM: 18Ψ·1.5 per node)

ZeRO-1 (no DeepSpeed estimator) keeps the 16-bit gradients whole: 4Ψ + 16Ψ/N. In fp32 the 16-bit
copies are the fp32 weights themselves (4 + 4 bytes, no master copy). Frozen weights (LoRA's base)
stay whole on every device except under ZeRO-3, which partitions them too. Activations and the loss
peak belong to one micro-batch on one device and are the same for every engine (`tunelab.tune.memory`),
except that DeepSpeed trains the 16-bit weights themselves, so autocast's copies of them do not exist.
DDP is the single-device estimate plus its gradient buckets (one fp32 copy of the gradients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tunelab.tune.memory import (
    MemoryBreakdown,
    TrainSetup,
    activation_bytes,
    autocast_copy_bytes,
    estimate_memory,
    loss_peak_bytes,
)
from tunelab.tune.shape import ModelShape

__all__ = [
    "ENGINES",
    "DeviceMemory",
    "configured_engine",
    "engine_label",
    "per_device_memory",
    "zero_model_states",
]

# (ZeRO stage or None for DDP, optimizer offloaded, parameters offloaded), in the order advise tries them
ENGINES: tuple[tuple[int | None, bool, bool], ...] = (
    (None, False, False),
    (1, False, False),
    (2, False, False),
    (2, True, False),
    (3, False, False),
    (3, True, True),
)
_CPU_BUFFER = 1.5  # DeepSpeed's additional_buffer_factor for the host side


@dataclass(frozen=True)
class DeviceMemory:
    """Peak tensor memory of one device (and the CPU RAM an offload needs per node) for one engine."""

    stage: int | None  # None: DDP (or one device)
    offload_optimizer: bool
    offload_params: bool
    world_size: int
    model_states: int  # parameters + gradients + optimizer states on the device
    transient: int  # activations and loss peak of one micro-batch (or DDP's step phase)
    peak: int
    cpu_bytes_per_node: int

    @property
    def label(self) -> str:
        return engine_label(self.stage, self.offload_optimizer)


def engine_label(stage: int | None, offload: bool) -> str:
    """'DDP', 'ZeRO-2', 'ZeRO-3 + offload', ..."""
    if stage is None:
        return "DDP"
    return f"ZeRO-{stage}" + (" + offload" if offload else "")


def zero_model_states(
    trainable: int,
    *,
    stage: int,
    world_size: int,
    n_nodes: int = 1,
    mixed: bool = True,
    optimizer_bytes: float = 8.0,
    largest_layer: int = 0,
    offload_optimizer: bool = False,
    offload_params: bool = False,
) -> tuple[int, int]:
    """(device bytes, CPU bytes per node) of the trainable parameters' states under ZeRO ``stage``.

    ``optimizer_bytes``: optimizer state per parameter without the fp32 master copy (Adam: 8).
    In mixed precision with Adam these are DeepSpeed's estimator formulas (module docstring).
    """
    n, p = world_size, trainable
    param = 2 if mixed else 4  # the weights the forward pass reads
    grad = 2 if mixed else 4  # the gradients the backward pass writes
    rest = (4 + 4 + optimizer_bytes) if mixed else optimizer_bytes  # fp32 grads + master + moments
    layer = 2 * param * largest_layer  # ZeRO-3: one gathered layer and its gradient
    if stage == 0:
        return int(p * (param + grad + rest)), 0
    if stage == 1:
        return int(p * (param + grad) + p * rest / n), 0
    if stage == 2:
        if offload_optimizer:
            return int(p * param), int(p * max(4 * n, rest) * _CPU_BUFFER)
        return int(p * param + p * (grad + rest) / n), 0
    if offload_optimizer and offload_params:
        return int(layer), int(p * (grad + rest) / n_nodes * _CPU_BUFFER)
    if offload_optimizer:
        return int(layer + p * param / n), int(p * rest / n_nodes * _CPU_BUFFER)
    return int(layer + p * (grad + rest) / n), 0


def _largest_layer(shape: ModelShape) -> int:
    return max(shape.layer_params, shape.vocab_size * shape.hidden_size)


def per_device_memory(
    shape: ModelShape,
    setup: TrainSetup,
    *,
    world_size: int,
    n_nodes: int = 1,
    stage: int | None = None,
    offload_optimizer: bool = False,
    offload_params: bool = False,
    single: MemoryBreakdown | None = None,
) -> DeviceMemory:
    """Per-device peak of ``setup`` trained by ``world_size`` ranks with DDP (stage None) or ZeRO ``stage``."""
    single = single or estimate_memory(shape, setup)
    trainable = single.trainable_params
    if stage is None:
        buckets = single.gradients if world_size > 1 else 0  # DDP's reducer copies every gradient
        states = single.weights + single.optimizer_states + single.gradients
        return DeviceMemory(
            None, False, False, world_size, states + buckets, single.peak - states, single.peak + buckets, 0
        )
    frozen = single.weights - 4 * trainable  # tunelab keeps trainable weights in fp32 (tune/memory.py)
    optimizer_bytes = single.optimizer_states / trainable if trainable else 0.0
    device, cpu = zero_model_states(
        trainable,
        stage=stage,
        world_size=world_size,
        n_nodes=n_nodes,
        mixed=setup.mixed,
        optimizer_bytes=optimizer_bytes,
        largest_layer=_largest_layer(shape) if stage == 3 else 0,
        offload_optimizer=offload_optimizer,
        offload_params=offload_params,
    )
    if stage == 3:  # the frozen base is partitioned (or offloaded) too
        if offload_params:
            cpu += int(frozen / n_nodes * _CPU_BUFFER)
            frozen = 0
        else:
            frozen = math.ceil(frozen / world_size)
    acts, recompute = activation_bytes(shape, setup)
    acts -= autocast_copy_bytes(shape, setup)  # DeepSpeed's bf16/fp16 weights are the 16-bit copies
    transient = acts + max(loss_peak_bytes(shape, setup), recompute)
    return DeviceMemory(
        stage,
        offload_optimizer,
        offload_params,
        world_size,
        device + frozen,
        transient,
        device + frozen + transient,
        cpu,
    )


def configured_engine(
    deepspeed: str | None, fsdp: bool | str | None, fsdp_config: dict | str | None = None
) -> tuple[int | None, bool, bool]:
    """(ZeRO stage or None, optimizer offloaded, parameters offloaded) of a config's engine.

    FSDP is counted as the ZeRO stage that shards the same things: full_shard (the default) as
    ZeRO-3, shard_grad_op as ZeRO-2; its cpu_offload moves parameters and optimizer like ZeRO-3 offload.
    """
    from tunelab.config.engines import load_deepspeed_config, offload_flags, zero_stage

    if deepspeed:
        ds = load_deepspeed_config(deepspeed)
        optimizer, params = offload_flags(ds)
        return zero_stage(ds), optimizer, params
    if fsdp:
        options = fsdp.split() if isinstance(fsdp, str) else []
        offload = "offload" in options or bool(
            isinstance(fsdp_config, dict) and fsdp_config.get("cpu_offload")
        )
        return (2 if "shard_grad_op" in options else 3), offload, offload
    return None, False, False
