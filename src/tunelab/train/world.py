"""The world a run trains in (how many processes, the global batch) and what resume makes of a change.

Every checkpoint records the world it was saved in (``world.json``). Resuming in another world is
allowed: the Trainer recomputes the data position from the optimizer steps done, which is exact only
when the global batch (per device x accumulation x processes) is the same as before, because then
step N covers the same samples in the same order (accelerate shards one sampler's batches
round-robin over the ranks). Otherwise the run goes on, and says plainly that it is not exact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tunelab import distributed
from tunelab.config import RunConfig
from tunelab.runs.rundir import RunDir, atomic_write_text

__all__ = ["WORLD_FILE", "WorldRecordCallback", "describe_resume_world", "describe_world", "global_batch"]

WORLD_FILE = "world.json"


def global_batch(per_device: int, accumulation: int, n_processes: int | None = None) -> int:
    """Samples per optimizer step over all processes: per device x accumulation x world size."""
    return per_device * accumulation * (distributed.world_size() if n_processes is None else n_processes)


def _world(config: RunConfig) -> dict[str, int]:
    t = config.training
    return {
        "world_size": distributed.world_size(),
        "per_device_train_batch_size": t.per_device_train_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "global_batch_size": global_batch(t.per_device_train_batch_size, t.gradient_accumulation_steps),
    }


def describe_world(config: RunConfig) -> str:
    """``world: 2 processes (gloo); global batch 16 = 8 per device x 1 accumulation x 2 processes``."""
    w = _world(config)
    return (
        f"world: {w['world_size']} processes ({distributed.backend()}); global batch "
        f"{w['global_batch_size']} = {w['per_device_train_batch_size']} per device x "
        f"{w['gradient_accumulation_steps']} accumulation x {w['world_size']} processes"
    )


def describe_resume_world(run: RunDir, checkpoint: Path, config: RunConfig, ctx: Any) -> None:
    """Say (and record as an event) whether resuming ``checkpoint`` in this world is exact."""
    try:
        before = json.loads((checkpoint / WORLD_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return  # saved by a version that did not record it: nothing to compare with
    now = _world(config)
    if (
        before.get("world_size") == now["world_size"]
        and before.get("global_batch_size") == now["global_batch_size"]
    ):
        return
    step = int(checkpoint.name.split("-")[-1])
    old_batch, new_batch = before.get("global_batch_size"), now["global_batch_size"]
    if old_batch == new_batch:
        message = (
            f"resuming a {before.get('world_size')}-process checkpoint with {now['world_size']} process(es) at the "
            f"same global batch {new_batch}: step {step} continues at the same sample, the resume is exact "
            "(up to the order of floating-point sums, and random numbers such as dropout masks, which each "
            "rank draws for itself)"
        )
        message_zh = (
            f"用 {now['world_size']} 个进程续训 {before.get('world_size')} 个进程保存的检查点，全局批大小同为 {new_batch}："
            f"第 {step} 步从同一个样本继续，续训是精确的（浮点求和顺序以及各进程自行抽取的随机数，如 dropout 掩码，除外）"
        )
    else:
        per_step = now["per_device_train_batch_size"] * now["world_size"]
        skipped = abs(step * ((old_batch or 0) - new_batch))  # samples skipped or seen twice
        fix = (
            f"gradient_accumulation_steps={old_batch // per_step}"
            if isinstance(old_batch, int) and old_batch % per_step == 0
            else f"a per-device batch and accumulation whose product x {now['world_size']} is {old_batch}"
        )
        message = (
            f"exact resume is impossible: {checkpoint.name} was trained with global batch {old_batch} "
            f"({before.get('world_size')} process(es)), this run has global batch {new_batch} "
            f"({now['world_size']} process(es)). The data position is recomputed from the {step} optimizer steps "
            f"done, so about {skipped} samples are skipped or seen twice, "
            f"and the schedule's length changes; to resume exactly, keep the global batch: {fix}"
        )
        message_zh = (
            f"无法精确续训：{checkpoint.name} 训练时的全局批大小为 {old_batch}（{before.get('world_size')} 个进程），"
            f"本次为 {new_batch}（{now['world_size']} 个进程）。数据位置按已完成的 {step} 个优化步重新计算，"
            f"约 {skipped} 个样本会被跳过或重复，学习率计划的长度也会改变；"
            f"要精确续训，请保持全局批大小：{fix}"
        )
    run.write_event(
        "resume_world",
        message,
        step=step,
        before=before,
        now=now,
        exact=old_batch == new_batch,
        message_zh=message_zh,
    )
    ctx.say(message)


class WorldRecordCallback(TrainerCallback):
    """Write ``world.json`` into every checkpoint (rank 0), so a resume can tell what changed."""

    def __init__(self, config: RunConfig) -> None:
        self.world = _world(config)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any
    ) -> None:
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if distributed.is_writer() and folder.is_dir():
            atomic_write_text(folder / WORLD_FILE, json.dumps(self.world, indent=2) + "\n")
