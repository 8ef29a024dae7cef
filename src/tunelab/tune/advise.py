"""`tunelab advise`: a recommended config from the task, the model, the data and the hardware.

Each value comes from one rule of `tunelab.tune.recipes` (or the arithmetic of `tunelab.tune.scaling`)
and carries one line saying which rule and which numbers produced it, in English and Chinese. Memory
is checked with `tunelab.tune.memory`; when the run would not fit, the fixes are tried in this order —
gradient checkpointing, a smaller micro-batch with more accumulation, 8-bit then 4-bit quantization
(QLoRA) — and the estimate after each one is reported (`tunelab.tune.advise_memory`). The learning
rate is one answer from the recipe, the LR range test and a study, with its source
(`tunelab.tune.advise_lr`, `tunelab.tune.lr_answer`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig, config_from_dict
from tunelab.errors import ConfigError
from tunelab.tune import recipes
from tunelab.tune.advise_data import data_quality_notes
from tunelab.tune.advise_lr import advise_learning_rate, is_random_init, settle_learning_rate
from tunelab.tune.advise_memory import LadderStep, advise_memory, can_fit, seq_len_for
from tunelab.tune.datafacts import DataFacts, load_data_facts
from tunelab.tune.estimate import model_shape_for
from tunelab.tune.hardware import GIB, Hardware, planned_hardware
from tunelab.tune.lr_answer import LrAnswer
from tunelab.tune.scaling import cutoff_from_lengths
from tunelab.tune.shape import ModelShape, fmt_params

__all__ = ["DISPLAY_ONLY", "Advice", "LadderStep", "Recommendation", "advise", "apply_updates"]

DISPLAY_ONLY = frozenset({"effective_batch"})  # shown with a reason, but not a config key


@dataclass(frozen=True)
class Recommendation:
    """One recommended value with the reason for it in both languages."""

    key: str
    value: Any
    en: str
    zh: str

    def why(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


@dataclass
class Advice:
    """The recommendation: values with reasons, the memory ladder, and what it was based on."""

    task: str
    shape: ModelShape
    hardware: Hardware
    facts: DataFacts
    items: list[Recommendation] = field(default_factory=list)
    ladder: list[LadderStep] = field(default_factory=list)
    peak: int = 0
    fits: bool = True
    world_size: int = 1  # devices training together (processes per node x nodes)
    notes: list[tuple[str, str]] = field(default_factory=list)
    lr: LrAnswer | None = None  # the learning rate's answer: its source and every source beside it
    rule_lr: tuple[str, str] = ("", "")  # the recipe rule's reasoning for it (en, zh)

    def add(self, key: str, value: Any, en: str, zh: str) -> None:
        self.items = [item for item in self.items if item.key != key] + [Recommendation(key, value, en, zh)]

    def put(self, key: str, value: Any, en: str, zh: str) -> None:
        """Like `add`, but a key already advised keeps its place in the table."""
        if all(item.key != key for item in self.items):
            return self.add(key, value, en, zh)
        self.items = [Recommendation(key, value, en, zh) if i.key == key else i for i in self.items]

    def updates(self) -> dict[str, Any]:
        """Flat config keys -> recommended values (nested groups as dicts), for YAML or overrides."""
        out: dict[str, Any] = {}
        for item in self.items:
            if item.key in DISPLAY_ONLY:
                continue
            group, dot, name = item.key.partition(".")
            if dot:
                out.setdefault(group, {})[name] = item.value
            else:
                out[item.key] = item.value
        return out

    def comments(self, lang: str) -> dict[str, str]:
        """One comment per top-level key (nested keys joined under their group)."""
        out: dict[str, str] = {}
        for item in self.items:
            if item.key in DISPLAY_ONLY:
                continue
            group = item.key.partition(".")[0]
            out[group] = (
                f"{out[group]}; {item.why(lang)}" if group in out and group != item.key else item.why(lang)
            )
        return out


def _power_of_two_at_most(value: float) -> int:
    return 1 << max(0, int(math.floor(math.log2(max(1.0, value)))))


def advise(
    config: RunConfig,
    *,
    task: str | None = None,
    gpu_mem: float | None = None,
    model_config: str | None = None,
    nproc_per_node: int | None = None,
    nnodes: int = 1,
    measure: bool = False,
    measure_steps: int = 100,
    lr_dir: str | Path | None = None,
    config_path: str | Path | None = None,
    study: str | Path | None = None,
    console: Any = None,
) -> Advice:
    """Recommend a config for ``config``'s model and data (see the module docstring).

    ``nproc_per_node`` x ``nnodes`` devices train together (default: the devices found here); the
    batch is then global and the memory per device, and DeepSpeed ZeRO joins the memory ladder.

    The learning rate is one answer from the recipe, the LR range test (``measure``: ``measure_steps``
    steps, plot in ``lr_dir``) and a study of this config (``study``, or one found in the runs folder
    or beside ``config_path``), each shown with its source (`tunelab.tune.advise_lr`)."""
    if task is not None and task not in recipes.TASKS:
        raise ConfigError(f"--task {task!r} is not known", f"choose one of: {', '.join(recipes.TASKS)}")
    task = task or recipes.task_for_stage(config.finetuning.stage)
    hardware = planned_hardware(gpu_mem, nproc_per_node)
    shape = model_shape_for(config, model_config)
    facts = load_data_facts(config, tokens="lengths")
    if not facts.n_train:
        raise ConfigError(
            f"advise needs the training data to size the run: {facts.problem or 'the dataset is empty'}",
            "set dataset (and dataset_dir) in the config; advise counts records and measures token lengths",
        )
    advice = Advice(
        task=task, shape=shape, hardware=hardware, facts=facts, world_size=hardware.n_devices * nnodes
    )
    n, n_params, method = facts.n_train, shape.n_params, config.finetuning.finetuning_type
    size = fmt_params(n_params)

    cutoff = _advise_cutoff(advice, config)
    batch = _advise_batch(advice, n)
    if method != "lora" and not can_fit(config, advice, seq_len_for(advice, config, cutoff)):
        method = "lora"
        advice.add(
            "finetuning_type",
            "lora",
            f"{config.finetuning.finetuning_type} fine-tuning of {size} parameters does not fit {hardware.budget_bytes / GIB:.1f} GiB "
            "even with gradient checkpointing and micro-batch 1 (weights, gradients and optimizer states alone): LoRA",
            f"{size} 参数的 {config.finetuning.finetuning_type} 微调即使开启梯度检查点、微批为 1 也放不下 "
            f"{hardware.budget_bytes / GIB:.1f} GiB（仅权重、梯度和优化器状态就超出）：改用 LoRA",
        )
    lr = advise_learning_rate(
        advice, method, n_params, batch, config.training.optim, from_scratch=is_random_init(config)
    )
    _advise_schedule(advice, task, method, lr)
    if method == "lora":  # also when the ladder above switched a full/freeze run to LoRA
        rank = recipes.lora_rank_for(n)
        advice.add(
            "lora_rank",
            rank,
            f"{n} records: rank 8 below 10k records, 16 above",
            f"{n} 条数据：少于 1 万条用秩 8，更多用 16",
        )
        advice.add(
            "lora_alpha",
            2 * rank,
            "alpha = 2 x rank (update scale alpha/r = 2 at any rank)",
            "alpha = 2 × 秩（任意秩下更新尺度 alpha/r 均为 2）",
        )
        dropout = recipes.lora_dropout_for(n_params)
        advice.add(
            "lora_dropout",
            dropout,
            f"{size} model: 0.1 up to 13B, 0.05 above (QLoRA)",
            f"{size} 模型：13B 及以下用 0.1，更大用 0.05（QLoRA）",
        )
    _advise_precision(advice, config, hardware)
    has_eval_set, taken = _existing_split(config, n)
    _advise_eval(advice, n, batch, has_eval_set=has_eval_set, taken=taken)
    advise_memory(advice, config, cutoff, batch, apply_updates(config, advice.updates()))
    advice.notes += data_quality_notes(config)
    settle_learning_rate(
        advice, config, measure=measure, measure_steps=measure_steps, lr_dir=lr_dir,
        config_path=config_path, study=study, console=console,
    )  # fmt: skip
    if config.finetuning.stage == "kd":
        from tunelab.tune.advise_kd import advise_kd

        advise_kd(advice, config)
    return advice


def _advise_cutoff(advice: Advice, config: RunConfig) -> int:
    facts, shape = advice.facts, advice.shape
    if not facts.lengths:
        advice.notes.append(
            (
                f"token lengths unknown ({facts.problem}); cutoff_len kept",
                f"未能测量 token 长度（{facts.problem}）；保留 cutoff_len",
            )
        )
        return config.data.cutoff_len
    p50, p95, p99, longest = facts.p(0.5), facts.p(0.95), facts.p(0.99), max(facts.lengths)
    cutoff, which = cutoff_from_lengths(p95, p99, max_position=shape.max_position)
    cut = sum(1 for length in facts.lengths if length > cutoff) / len(facts.lengths)
    stats = f"tokens per sample p50 {p50}, p95 {p95}, p99 {p99}, max {longest}"
    advice.add(
        "cutoff_len",
        cutoff,
        f"{stats}: {which} rounded up to 64 ({100 * cut:.1f}% of samples cut)"
        + ("; the long tail (p99 > 1.5 x p95) would set every batch's memory" if which == "p95" else ""),
        f"每条样本 token 数 p50 {p50}、p95 {p95}、p99 {p99}、最大 {longest}：取 {which} 向上取整到 64（{100 * cut:.1f}% 的样本被截断）"
        + ("；长尾（p99 > 1.5 × p95）会决定每个批次的显存" if which == "p95" else ""),
    )
    return cutoff


def _advise_batch(advice: Advice, n: int) -> int:
    base = recipes.base_effective_batch(n)
    batch = min(base, _power_of_two_at_most(max(1, n // 4)))
    extra_en = (
        f", at most a quarter of the data ({n} records) so an epoch has 4+ steps" if batch < base else ""
    )
    extra_zh = f"，且不超过数据量（{n} 条）的四分之一，保证每轮至少 4 步" if batch < base else ""
    advice.add(
        "effective_batch",
        batch,
        f"{n} records: effective batch {base} (8 below 1k, 16 below 10k, 32 below 100k, else 64){extra_en}",
        f"{n} 条数据：有效批大小 {base}（1 千以下 8，1 万以下 16，10 万以下 32，更多 64）{extra_zh}",
    )
    return batch


def _advise_schedule(advice: Advice, task: str, method: str, lr: float) -> None:
    schedule, warmup = recipes.schedule_for(task), recipes.warmup_for(task)
    advice.add("lr_scheduler_type", schedule, f"{task}: {schedule} decay", f"{task}：{schedule} 衰减")
    advice.add(
        "warmup_ratio",
        warmup,
        f"{task}: warm up over {100 * warmup:.0f}% of the steps",
        f"{task}：前 {100 * warmup:.0f}% 的步数预热",
    )
    wd = recipes.weight_decay_for(method)
    advice.add(
        "weight_decay",
        wd,
        f"{method}: {wd} (biases and norm weights are excluded from decay)",
        f"{method}：{wd}（偏置和归一化权重不做衰减）",
    )
    advice.add(
        "max_grad_norm",
        1.0,
        "clip gradients at norm 1.0 (standard for LLM fine-tuning)",
        "梯度范数裁剪到 1.0（大模型微调的常规做法）",
    )


def _advise_precision(advice: Advice, config: RunConfig, hardware: Hardware) -> None:
    if hardware.device == "cuda":
        value = "bf16" if hardware.bf16 else "fp16"
        en = (
            "bf16: fp32's range, no loss scaling (use fp16 only on pre-Ampere GPUs such as V100/T4)"
            if hardware.bf16
            else "this GPU lacks bf16: fp16 with loss scaling"
        )
        zh = (
            "bf16：与 fp32 数值范围相同，无需损失缩放（仅在 V100/T4 等 Ampere 之前的 GPU 上用 fp16）"
            if hardware.bf16
            else "该 GPU 不支持 bf16：使用带损失缩放的 fp16"
        )
    else:
        value = "auto"
        en = f"CPU: auto picks {'bf16 (hardware bf16 matmul)' if hardware.bf16 else 'fp32 (no AMX/AVX512-BF16, where bf16 is far slower)'}"
        zh = f"CPU：auto 会选择 {'bf16（硬件支持 bf16 矩阵乘）' if hardware.bf16 else 'fp32（无 AMX/AVX512-BF16，bf16 会慢很多）'}"
    advice.add("compute_type", value, en, zh)
    if config.training.bf16 or config.training.fp16:  # the HF flags would contradict compute_type
        advice.add("bf16", value == "bf16", "follows compute_type", "与 compute_type 一致")
        advice.add("fp16", value == "fp16", "follows compute_type", "与 compute_type 一致")


def _steps(n_train: int, batch: int, epochs: float) -> int:
    return max(1, math.ceil(n_train / batch)) * max(1, math.ceil(epochs))


def _existing_split(config: RunConfig, n: int) -> tuple[bool, int]:
    """(the config already evaluates on held-out data, records its val/test splits take from training).

    An eval_dataset, a val_size, or stage cls (70/15/15 when unset) already hold data out: advise keeps
    that split rather than replacing it, so its numbers describe the run the user will get.
    """
    d = config.data
    if d.eval_dataset:
        return True, 0
    val, test = d.val_size, d.test_size
    if config.finetuning.stage == "cls":
        val, test = val or 0.15, test or 0.15
    taken = sum(int(size) if size >= 1 else round(size * n) for size in (val, test))
    return val > 0, taken


def _advise_eval(advice: Advice, n: int, batch: int, *, has_eval_set: bool, taken: int) -> None:
    epochs = recipes.epochs_for(n)
    en = f"{n} records: {epochs} epochs (5 below 1k, 3 below 10k, 2 below 100k, else 1)"
    zh = f"{n} 条数据：{epochs} 轮（1 千以下 5 轮，1 万以下 3 轮，10 万以下 2 轮，更多 1 轮）"
    n_train = n - taken - (max(1, round(0.1 * n)) if n >= 50 and not has_eval_set else 0)
    if _steps(n_train, batch, epochs) < recipes.MIN_TOTAL_STEPS:
        per_epoch = max(1, math.ceil(n_train / batch))
        epochs = min(recipes.MAX_EPOCHS, math.ceil(recipes.MIN_TOTAL_STEPS / per_epoch))
        en += f"; raised to {epochs} for at least {recipes.MIN_TOTAL_STEPS} optimizer steps (at most {recipes.MAX_EPOCHS})"
        zh += f"；提高到 {epochs} 轮，保证至少 {recipes.MIN_TOTAL_STEPS} 个优化步（最多 {recipes.MAX_EPOCHS} 轮）"
    advice.add("num_train_epochs", epochs, en, zh)
    total = _steps(n_train, batch, epochs)
    advice.add("logging_steps", max(1, total // 50), "about 50 log rows per run", "每次训练约 50 行日志")
    if n < 50 and not has_eval_set:
        advice.notes.append(
            (
                "fewer than 50 records: no validation split, so no early stopping",
                "少于 50 条数据：不划分验证集，因此不启用早停",
            )
        )
        return
    every = max(1, total // 10)
    if not has_eval_set:
        advice.add("val_size", 0.1, "hold out 10% to watch overfitting", "留出 10% 作验证集以观察过拟合")
    advice.add(
        "eval_strategy", "steps", f"evaluate about 10 times ({total} steps)", f"约评估 10 次（共 {total} 步）"
    )
    advice.add("eval_steps", every, f"every {every} steps", f"每 {every} 步")
    advice.add(
        "save_steps",
        every,
        "a checkpoint at every evaluation, so the best one can be restored",
        "每次评估都保存检查点，以便恢复最佳模型",
    )
    advice.add("save_total_limit", 2, "keep the best and the latest checkpoint", "保留最佳和最新两个检查点")
    advice.add(
        "load_best_model_at_end", True, "end with the best evaluated weights", "训练结束时加载评估最好的权重"
    )
    advice.add(
        "early_stopping.enabled", True, "stop when eval_loss stops improving", "eval_loss 不再下降时停止"
    )
    advice.add(
        "early_stopping.patience", 3, "after 3 evaluations without improvement", "连续 3 次评估没有提升"
    )


def apply_updates(config: RunConfig, updates: dict[str, Any]) -> RunConfig:
    """``config`` with ``Advice.updates()`` applied (nested groups merged) and validated again."""
    flat = config.to_flat()
    for key, value in updates.items():
        if key in DISPLAY_ONLY:
            continue
        if isinstance(value, dict):
            flat[key] = {**flat.get(key, {}), **value}
        else:
            flat[key] = value
    return config_from_dict(flat, source="advice")
