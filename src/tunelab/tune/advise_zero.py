"""The DeepSpeed rungs of advise's memory ladder: a ZeRO stage, CPU offload, or more devices.

Sharding (ZeRO-2, ZeRO-3 when several devices train) is tried after gradient checkpointing and a
smaller micro-batch, before quantization (which changes what is trained); the offload presets come
last, on a GPU only (on a CPU, "offload to CPU" moves nothing), because they trade every step's
speed and several times the model in CPU RAM for device memory. Each rung reports the per-device estimate of
`tunelab.tune.zero`, so the user sees what each step buys.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunelab.tune.memory import TrainSetup
from tunelab.tune.shape import ModelShape
from tunelab.tune.zero import per_device_memory

__all__ = ["ZeroRung", "deepspeed_reason", "devices_needed", "too_big_note", "zero_ladder"]

# (preset, stage, optimizer offloaded, parameters offloaded), in the order the ladder tries them
_RUNGS = (
    ("z2", 2, False, False),
    ("z3", 3, False, False),
    ("z2_offload", 2, True, False),
    ("z3_offload", 3, True, True),
)


@dataclass(frozen=True)
class ZeroRung:
    """One DeepSpeed preset tried, with its per-device peak."""

    preset: str
    en: str
    zh: str
    peak: int
    fits: bool


def zero_ladder(
    shape: ModelShape,
    setup: TrainSetup,
    *,
    budget: int,
    world_size: int,
    n_nodes: int = 1,
    offload: bool = False,
) -> list[ZeroRung]:
    """DeepSpeed presets tried in order, up to and including the first that fits ``budget`` per device.

    ``offload=False``: the presets that shard across devices (z2, z3; nothing on one device);
    ``offload=True``: the presets that move states to CPU RAM (z2_offload, z3_offload), a last resort
    that needs a GPU and several times the model in RAM, and slows every step.
    """
    rungs: list[ZeroRung] = []
    for preset, stage, offload_opt, offload_params in _RUNGS:
        if offload_opt != offload or (not offload and world_size == 1):
            continue  # ZeRO without offload partitions across devices: one device gains nothing
        memory = per_device_memory(
            shape, setup, world_size=world_size, n_nodes=n_nodes, stage=stage,
            offload_optimizer=offload_opt, offload_params=offload_params,
        )  # fmt: skip
        cpu_en = f", {memory.cpu_bytes_per_node / 2**30:.0f} GiB CPU RAM per node" if offload_opt else ""
        cpu_zh = f"，每节点 {memory.cpu_bytes_per_node / 2**30:.0f} GiB CPU 内存" if offload_opt else ""
        rungs.append(
            ZeroRung(
                preset,
                f"DeepSpeed {memory.label} on {world_size} device(s) (deepspeed: {preset}){cpu_en}",
                f"DeepSpeed {memory.label}，{world_size} 个设备（deepspeed: {preset}）{cpu_zh}",
                memory.peak,
                memory.peak <= budget,
            )
        )
        if rungs[-1].fits:
            break
    return rungs


def devices_needed(shape: ModelShape, setup: TrainSetup, *, budget: int, start: int) -> int | None:
    """The smallest power-of-two world size above ``start`` (at most 512) at which ZeRO-3 fits ``budget``."""
    n = 2
    while n <= 512:
        if n > start and per_device_memory(shape, setup, world_size=n, stage=3).peak <= budget:
            return n
        n *= 2
    return None


def deepspeed_reason(preset: str) -> tuple[str, str]:
    """(English, Chinese) reason for recommending ``deepspeed: preset``, with what an offload moves."""
    from tunelab.config.engines import DEEPSPEED_PRESETS, load_deepspeed_config, offload_note

    en, zh = DEEPSPEED_PRESETS[preset]
    moved = offload_note(load_deepspeed_config(preset))
    return (
        f"memory is short: {en} (needs `pip install deepspeed`)" + (f"; {moved[0]}" if moved else ""),
        f"显存不足：{zh}（需要 `pip install deepspeed`）" + (f"；{moved[1]}" if moved else ""),
    )


def too_big_note(shape: ModelShape, setup: TrainSetup, *, budget: int, devices: int) -> tuple[str, str]:
    """(English, Chinese) note when nothing fits: the world size at which ZeRO-3 would, when there is one."""
    n = devices_needed(shape, setup, budget=budget, start=devices)
    more_en = (
        f"train on {n} devices with deepspeed: z3 (--nproc-per-node/--nnodes)"
        if n
        else "use more/larger GPUs"
    )
    more_zh = (
        f"用 {n} 个设备配合 deepspeed: z3 训练（--nproc-per-node/--nnodes）" if n else "使用更多/更大的 GPU"
    )
    return (
        f"even the last fix does not fit: lower cutoff_len, {more_en}, or a smaller model",
        f"所有手段仍放不下：降低 cutoff_len、{more_zh}，或换更小的模型",
    )
