"""Per-device memory under DDP and ZeRO: hand-computed numbers, and DeepSpeed's own estimators."""

from __future__ import annotations

import pytest

from tunelab.tune.memory import TrainSetup, estimate_memory
from tunelab.tune.presets import find_preset
from tunelab.tune.zero import ENGINES, per_device_memory, zero_model_states

GB = 10**9


def test_zero_model_states_by_hand() -> None:
    """1B trainable parameters on 8 devices, mixed-precision Adam (ZeRO paper / DeepSpeed accounting)."""
    p, n = GB, 8
    assert zero_model_states(p, stage=0, world_size=n) == (20 * p, 0)  # 2 + 2 + 16, nothing shared
    assert zero_model_states(p, stage=1, world_size=n) == (4 * p + 2 * p, 0)  # 16 / 8 partitioned
    assert zero_model_states(p, stage=2, world_size=n) == (2 * p + 18 * p // 8, 0)
    assert zero_model_states(p, stage=2, world_size=n, offload_optimizer=True) == (2 * p, int(32 * p * 1.5))
    layer = 10**8
    assert zero_model_states(p, stage=3, world_size=n, largest_layer=layer) == (4 * layer + 18 * p // 8, 0)
    both = zero_model_states(
        p, stage=3, world_size=n, largest_layer=layer, offload_optimizer=True, offload_params=True
    )
    assert both == (4 * layer, int(18 * p * 1.5))
    # fp32 Adam: weights and gradients are 4 bytes, no master copy; only the moments (8) are partitioned
    assert zero_model_states(p, stage=1, world_size=n, mixed=False) == (8 * p + p, 0)


@pytest.mark.parametrize("n_gpus", [1, 2, 8])
@pytest.mark.parametrize("offload", [False, True])
def test_matches_deepspeed_estimators(n_gpus: int, offload: bool) -> None:
    stage_1_and_2 = pytest.importorskip("deepspeed.runtime.zero.stage_1_and_2")
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    p, layer = 7 * GB, 5 * 10**8
    cpu2, gpu2 = stage_1_and_2.estimate_zero2_model_states_mem_needs(p, n_gpus, 1, cpu_offload=offload)
    ours2 = zero_model_states(p, stage=2, world_size=n_gpus, offload_optimizer=offload)
    assert ours2[0] == gpu2
    if offload:
        assert ours2[1] == cpu2
    cpu3, gpu3, _ = estimate_zero3_model_states_mem_needs(
        p, layer, n_gpus, 1, cpu_offload=offload, cpu_offload_params=offload
    )
    ours3 = zero_model_states(
        p, stage=3, world_size=n_gpus, largest_layer=layer, offload_optimizer=offload, offload_params=offload
    )
    assert ours3[0] == gpu3
    if offload:
        assert ours3[1] == cpu3


def test_per_device_ladder_shrinks_full_finetuning() -> None:
    """Each ZeRO stage needs less device memory than the one before; activations stay per device."""
    shape = find_preset("llama2-7b").shape
    setup = TrainSetup(
        method="full", compute_bytes=2, micro_batch=1, seq_len=512, gradient_checkpointing=True
    )
    single = estimate_memory(shape, setup)
    peaks = [
        per_device_memory(
            shape, setup, world_size=8, stage=s, offload_optimizer=o, offload_params=q, single=single
        )
        for s, o, q in ENGINES
    ]
    assert [m.label for m in peaks] == [
        "DDP",
        "ZeRO-1",
        "ZeRO-2",
        "ZeRO-2 + offload",
        "ZeRO-3",
        "ZeRO-3 + offload",
    ]
    ddp, z1, z2, z2_off, z3, z3_off = (m.peak for m in peaks)
    assert ddp > z1 > z2 > z3 > z3_off and z2 > z2_off
    assert peaks[0].peak == single.peak + single.gradients  # a full replica plus DDP's gradient buckets
    zero2 = peaks[2]
    assert zero2.model_states == 2 * single.trainable_params + 18 * single.trainable_params // 8
    assert peaks[-1].cpu_bytes_per_node > 0 and peaks[2].cpu_bytes_per_node == 0


def test_zero3_partitions_the_frozen_base_of_lora() -> None:
    shape = find_preset("llama2-7b").shape
    setup = TrainSetup(method="lora", compute_bytes=2, micro_batch=1, seq_len=512)
    single = estimate_memory(shape, setup)
    frozen = single.weights - 4 * single.trainable_params
    z2 = per_device_memory(shape, setup, world_size=4, stage=2, single=single)
    z3 = per_device_memory(shape, setup, world_size=4, stage=3, single=single)
    assert z2.model_states > frozen  # ZeRO-2 keeps the whole bf16 base on each device
    assert z3.model_states < frozen / 2  # ZeRO-3 holds a quarter of it plus one gathered layer
