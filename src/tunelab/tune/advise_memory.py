"""The memory ladder of `tunelab advise`: micro-batch and accumulation, then the fixes for a run that
does not fit, tried in order — gradient checkpointing, a smaller micro-batch with more accumulation,
DeepSpeed ZeRO sharding when several devices train, 8-bit then 4-bit quantization (QLoRA), and CPU
offload as a last resort — with the estimated peak after each one (`tunelab.tune.memory`).

Kept apart from `tunelab.tune.advise` (which picks the other values) so each reads on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tunelab.config import RunConfig
from tunelab.tune.advise_zero import deepspeed_reason, too_big_note, zero_ladder
from tunelab.tune.estimate import compute_bytes_for, setup_from_config
from tunelab.tune.hardware import GIB
from tunelab.tune.memory import estimate_memory
from tunelab.tune.zero import configured_engine, per_device_memory

if TYPE_CHECKING:
    from tunelab.tune.advise import Advice

__all__ = ["LadderStep", "advise_memory", "can_fit", "seq_len_for"]

_START_MICRO = 8  # the micro-batch the memory ladder starts from when the whole effective batch does not fit


@dataclass(frozen=True)
class LadderStep:
    """One memory fix tried, with the estimated peak after it."""

    en: str
    zh: str
    peak: int
    fits: bool


def seq_len_for(advice: Advice, config: RunConfig, cutoff: int) -> int:
    """The longest row training will see: the cutoff, or the longest sample when all are shorter."""
    if config.data.packing or not advice.facts.lengths:
        return cutoff
    return min(cutoff, max(advice.facts.lengths))


def can_fit(config: RunConfig, advice: Advice, seq_len: int) -> bool:
    """Whether the config's method fits at all: gradient checkpointing and micro-batch 1."""
    compute = compute_bytes_for(config, advice.hardware)
    setup = setup_from_config(config, compute_bytes=compute, device=advice.hardware.device, seq_len=seq_len)
    setup = replace(
        setup, micro_batch=1, gradient_checkpointing=True, masked=config.data.packing, grad_accum=1
    )
    budget = advice.hardware.budget_bytes
    if estimate_memory(advice.shape, setup).peak <= budget:
        return True
    # sharding across devices keeps the method; offloading a full fine-tune to CPU RAM is a last resort
    rungs = zero_ladder(advice.shape, setup, budget=budget, world_size=advice.world_size, offload=False)
    return bool(rungs) and rungs[-1].fits


def advise_memory(advice: Advice, config: RunConfig, cutoff: int, batch: int, candidate: RunConfig) -> None:
    """Pick micro-batch / accumulation, and walk the memory ladder when the run does not fit.

    ``candidate`` is ``config`` with the values advised so far applied (`advise.apply_updates`)."""
    hardware, shape = advice.hardware, advice.shape
    budget = hardware.budget_bytes
    seq_len = seq_len_for(advice, config, cutoff)
    devices, t = advice.world_size, config.training
    per_device = max(1, math.ceil(batch / devices))
    compute = compute_bytes_for(candidate, hardware)
    base = setup_from_config(
        candidate, compute_bytes=compute, device=hardware.device, seq_len=seq_len, micro_batch=1
    )

    stage, offload, offload_params = configured_engine(t.deepspeed, t.fsdp, t.fsdp_config)

    def peak(**changes: Any) -> int:  # per device, for the config's own engine (DDP when several)
        setup = replace(base, **changes)
        setup = replace(setup, masked=config.data.packing or setup.micro_batch > 1)
        return per_device_memory(
            shape, setup, world_size=devices, stage=stage, offload_optimizer=offload, offload_params=offload_params
        ).peak  # fmt: skip

    micro = per_device
    while micro > min(per_device, _START_MICRO) and peak(micro_batch=micro) > budget:
        micro //= 2
    state: dict[str, Any] = {"micro_batch": micro}
    current = peak(**state)
    if current > budget:
        advice.ladder.append(
            LadderStep(f"micro-batch {micro}, as planned", f"按计划微批 {micro}", current, False)
        )
        state["gradient_checkpointing"] = True
        current = peak(**state)
        advice.ladder.append(LadderStep("gradient checkpointing", "梯度检查点", current, current <= budget))
        while current > budget and state["micro_batch"] > 1:
            state["micro_batch"] //= 2
            current = peak(**state)
            b = state["micro_batch"]
            advice.ladder.append(
                LadderStep(
                    f"micro-batch {b} + accumulation {math.ceil(per_device / b)}",
                    f"微批 {b} + 累积 {math.ceil(per_device / b)}",
                    current,
                    current <= budget,
                )
            )
        if current > budget and stage is None:  # shard the states with DeepSpeed rather than quantize
            current = _zero_rungs(advice, replace(base, **state), state, budget, offload=False) or current
        for bits in (8, 4):
            if current <= budget:
                break
            state["quantization_bit"] = bits
            if base.method != "lora":
                state["method"] = "lora"
            current = peak(**state)
            switch_en = (
                " (switching to LoRA: quantized weights cannot train directly)"
                if base.method != "lora"
                else ""
            )
            switch_zh = "（改用 LoRA：量化权重不能直接训练）" if base.method != "lora" else ""
            advice.ladder.append(
                LadderStep(
                    f"{bits}-bit quantization (QLoRA){switch_en}",
                    f"{bits} 比特量化（QLoRA）{switch_zh}",
                    current,
                    current <= budget,
                )
            )
    if current > budget and stage is None and hardware.device == "cuda":  # last resort: CPU offload
        unquantized = {k: v for k, v in state.items() if k not in ("quantization_bit", "method")}
        after = _zero_rungs(advice, replace(base, **unquantized), unquantized, budget, offload=True)
        if after is not None:
            state, current = unquantized, after
    micro = state["micro_batch"]
    accum = math.ceil(per_device / micro)
    advice.peak, advice.fits = current, current <= budget
    fit_en = f"estimated peak {current / GIB:.2f} GiB of {budget / GIB:.1f} GiB usable on {hardware.name}"
    fit_zh = f"预计峰值 {current / GIB:.2f} GiB，{hardware.name} 可用 {budget / GIB:.1f} GiB"
    advice.add(
        "per_device_train_batch_size",
        micro,
        f"{fit_en}; micro-batch x accumulation x devices = {micro} x {accum} x {devices}",
        f"{fit_zh}；微批 × 累积 × 设备数 = {micro} × {accum} × {devices}",
    )
    advice.add(
        "gradient_accumulation_steps",
        accum,
        f"reaches the effective batch {micro * accum * devices}",
        f"达到有效批大小 {micro * accum * devices}",
    )
    advice.add(
        "per_device_eval_batch_size",
        micro * 2,
        "no gradients in evaluation: twice the micro-batch (`tunelab find-batch` measures it)",
        "评估不需要梯度：微批的两倍（`tunelab find-batch` 可实测）",
    )
    if state.get("gradient_checkpointing"):
        advice.add(
            "gradient_checkpointing",
            True,
            "memory is short: recompute activations in the backward pass (~30% slower)",
            "显存不足：反向传播时重算激活值（约慢 30%）",
        )
    if "deepspeed" in state:
        advice.add("deepspeed", state["deepspeed"], *deepspeed_reason(state["deepspeed"]))
    if "quantization_bit" in state:
        advice.add(
            "quantization_bit",
            state["quantization_bit"],
            "memory is short: quantized base weights (QLoRA; needs a CUDA GPU + bitsandbytes)",
            "显存不足：量化基座权重（QLoRA；需要 CUDA GPU 和 bitsandbytes）",
        )
        if state.get("method") == "lora":
            advice.add(
                "finetuning_type",
                "lora",
                "quantized weights train through LoRA adapters",
                "量化权重需通过 LoRA 适配器训练",
            )
    if not advice.fits:
        setup = replace(base, micro_batch=1, gradient_checkpointing=True, masked=config.data.packing)
        advice.notes.append(too_big_note(shape, setup, budget=budget, devices=devices))


def _zero_rungs(
    advice: Advice, setup: Any, state: dict[str, Any], budget: int, *, offload: bool
) -> int | None:
    """Walk the DeepSpeed rungs (`advise_zero`) onto the ladder; the peak of the first that fits
    (recorded as ``state["deepspeed"]``), or None."""
    setup = replace(setup, masked=setup.masked or setup.micro_batch > 1)
    rungs = zero_ladder(advice.shape, setup, budget=budget, world_size=advice.world_size, offload=offload)
    advice.ladder += [LadderStep(r.en, r.zh, r.peak, r.fits) for r in rungs]
    if not (rungs and rungs[-1].fits):
        return None
    state["deepspeed"] = rungs[-1].preset
    return rungs[-1].peak
