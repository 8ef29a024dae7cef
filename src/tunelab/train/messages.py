"""Readable health and early-stopping messages, in English and Chinese: what happened, why, what to try.

Events in events.jsonl keep the numbers and the English text; :func:`describe_health` can render an
event's numbers again in either language (the web UI does so for Chinese).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["HEALTH_TEXTS", "describe_action", "describe_health", "format_lr", "suggest_lr", "text"]

# Rule -> (en, zh). Placeholders are filled from the finding's numbers plus step, lr and suggest.
HEALTH_TEXTS: dict[str, tuple[str, str]] = {
    "nonfinite": (
        "{what} at step {step}. Likely cause: learning rate {lr} too high for this run, or an fp16 "
        "overflow. Try learning_rate={suggest}, bf16 or fp32 instead of fp16, and max_grad_norm=1.0.",
        "第 {step} 步{what}。可能原因：学习率 {lr} 对本次训练过高，或 fp16 溢出。"
        "建议：learning_rate={suggest}，用 bf16 或 fp32 代替 fp16，并设置 max_grad_norm=1.0。",
    ),
    "update_ratio": (
        "the trainable weights changed by {update_ratio:.0%} of their size per step by step {step} "
        "(healthy fine-tuning: 0.01%-1%): the run is diverging. Likely cause: learning rate {lr} far "
        "too high for this run. Try learning_rate={suggest}.",
        "到第 {step} 步，可训练权重每步的变化达到其自身大小的 {update_ratio:.0%}（正常微调约 0.01%-1%），"
        "训练正在发散。可能原因：学习率 {lr} 对本次训练远远过高。建议：learning_rate={suggest}。",
    ),
    "grad_norm": (
        "gradient norm above {alarm:g} for {consecutive} log steps in a row ({values}) up to step {step}. "
        "Likely cause: learning rate {lr} too high for this run{clip}. Try learning_rate={suggest}.",
        "截至第 {step} 步，梯度范数连续 {consecutive} 个日志步超过 {alarm:g}（{values}）。"
        "可能原因：学习率 {lr} 对本次训练过高{clip}。建议：learning_rate={suggest}。",
    ),
    "spike": (
        "loss {loss:.4g} at step {step} is {ratio:.1f}x its recent average {average:.4g}. Likely cause: "
        "learning rate {lr} too high, or an unusual batch. If it repeats, try learning_rate={suggest} "
        "and check the samples trained near step {step}.",
        "第 {step} 步的损失 {loss:.4g} 是近期平均值 {average:.4g} 的 {ratio:.1f} 倍。可能原因：学习率 {lr} "
        "过高，或遇到异常批次。如果反复出现，建议 learning_rate={suggest}，并检查第 {step} 步附近的训练样本。",
    ),
    "oscillation": (
        "the loss oscillates: spread {spread:.3g} around its trend over the last {window} log steps, while "
        "the trend itself went only from {trend_from:.4g} to {trend_to:.4g} (step {step}). Likely cause: "
        "learning rate {lr} too high to settle. "
        "Try learning_rate={suggest}, or a larger effective batch (gradient_accumulation_steps).",
        "损失在震荡：最近 {window} 个日志步围绕趋势的波动为 {spread:.3g}，而趋势本身只从 {trend_from:.4g} "
        "变到 {trend_to:.4g}"
        "（第 {step} 步）。可能原因：学习率 {lr} 过高，无法收敛。建议：learning_rate={suggest}，"
        "或增大有效批大小（gradient_accumulation_steps）。",
    ),
    "stagnation": (
        "{what} (step {step}). Likely cause: learning rate {lr} too low, no trainable parameter reaching "
        "the loss, or weights kept in bf16/fp16 so that updates this small are rounded away. Try "
        "learning_rate={suggest}, check the trainable parameter count, and keep trainable weights in fp32.",
        "{what}（第 {step} 步）。可能原因：学习率 {lr} 过低、没有可训练参数影响损失，或权重以 bf16/fp16 "
        "存储导致如此小的更新被舍入掉。建议：learning_rate={suggest}，检查可训练参数数量，"
        "并让可训练权重保持 fp32。",
    ),
    "overfitting": (
        "eval loss rose {evals} evaluations in a row ({values}) while the train loss fell "
        "({train_first:.4g} -> {train_last:.4g}) by step {step}. Likely cause: overfitting, too many "
        "epochs for this much data. Try fewer epochs (num_train_epochs), more data, a lower learning rate "
        "(e.g. learning_rate={suggest}), lora_dropout or weight_decay, or early_stopping.",
        "截至第 {step} 步，评估损失连续 {evals} 次上升（{values}），而训练损失在下降"
        "（{train_first:.4g} -> {train_last:.4g}）。可能原因：过拟合，对这么多数据训练轮数过多。"
        "建议：减少轮数（num_train_epochs）、增加数据、降低学习率（如 learning_rate={suggest}）、"
        "使用 lora_dropout 或 weight_decay，或启用 early_stopping。",
    ),
}

# Simple texts: key -> (en, zh).
_TEXTS: dict[str, tuple[str, str]] = {
    "prefix": ("health", "健康检查"),
    "loss_nonfinite": ("the loss is {value}", "损失为 {value}"),
    "grad_nonfinite": ("the gradient norm is {value}", "梯度范数为 {value}"),
    "weights_nonfinite": ("the trainable weights contain NaN/Inf", "可训练权重中出现 NaN/Inf"),
    "flat_loss": (
        "the loss has not moved over the last {window} log steps ({first:.4g} -> {last:.4g})",
        "最近 {window} 个日志步损失几乎没有变化（{first:.4g} -> {last:.4g}）",
    ),
    "frozen_weights": (
        "the trainable weights changed by only {update_ratio:.1e} of their size per step over the last "
        "{window} log steps",
        "最近 {window} 个日志步可训练权重每步的变化只有其自身大小的 {update_ratio:.1e}",
    ),
    "no_clip": (" and gradients are not clipped (max_grad_norm=0)", "，且未做梯度裁剪（max_grad_norm=0）"),
    "typical_lr": (
        " (fine-tuning learning rates are usually 1e-5..5e-5 for full fine-tuning, 1e-4..5e-4 for LoRA)",
        "（常见微调学习率：全参数微调 1e-5..5e-5，LoRA 1e-4..5e-4）",
    ),
    "warn": ("Warning only (health.{field}=warn).", "仅警告（health.{field}=warn）。"),
    "halve_lr": ("Action: learning rate halved, {old} -> {new}.", "处理：学习率减半，{old} -> {new}。"),
    "rollback": (
        "Action: weights restored from step {restored} ({source}), learning rate halved, {old} -> {new}.",
        "处理：权重恢复到第 {restored} 步（{source}），学习率减半，{old} -> {new}。",
    ),
    "rollback_none": (
        "Action: no healthy state to restore; learning rate halved, {old} -> {new}.",
        "处理：没有可恢复的健康状态；学习率减半，{old} -> {new}。",
    ),
    "stop": ("Action: stopping; checkpoint at {checkpoint}.", "处理：停止训练；检查点位于 {checkpoint}。"),
    "stop_restored": (
        "Action: stopping; checkpoint at {checkpoint} holds the healthy weights of step {restored}.",
        "处理：停止训练；检查点 {checkpoint} 保存的是第 {restored} 步的健康权重。",
    ),
    "escalated": (
        " ({n} interventions already, health.max_interventions={limit})",
        "（已干预 {n} 次，health.max_interventions={limit}）",
    ),
    "snapshot": ("in-memory copy", "内存副本"),
    "saved": ("checkpoint saved: {checkpoint}", "检查点已保存：{checkpoint}"),
    "es_halve": (
        "early stopping: {metric} has not improved for {patience} evaluation(s) (best {best:.4g} at step "
        "{best_step}); learning rate halved, {old} -> {new}; the next plateau stops the run.",
        "早停：{metric} 已连续 {patience} 次评估没有提升（最佳 {best:.4g}，第 {best_step} 步）；"
        "学习率减半，{old} -> {new}；再次进入平台期时停止训练。",
    ),
    "es_stop": (
        "early stopping: {metric} has not improved for {patience} evaluation(s) (best {best:.4g} at step "
        "{best_step}); stopping at step {step}. Best checkpoint: {best_checkpoint}.",
        "早停：{metric} 已连续 {patience} 次评估没有提升（最佳 {best:.4g}，第 {best_step} 步）；"
        "在第 {step} 步停止训练。最佳检查点：{best_checkpoint}。",
    ),
}

# How far to move the learning rate for each rule's suggestion.
_LR_FACTOR = {
    "nonfinite": 0.1,
    "grad_norm": 0.25,
    "spike": 0.5,
    "oscillation": 0.3,
    "stagnation": 10.0,
    "overfitting": 0.5,
}
# The per-step update ratio a suggestion for a diverging run aims at (a usual fine-tuning value).
_TARGET_UPDATE_RATIO = 1e-2


def text(key: str, lang: str = "en", **values: Any) -> str:
    """The short text ``key`` in ``lang`` ('en' or 'zh'), filled with ``values``."""
    en, zh = _TEXTS[key]
    return (zh if lang == "zh" else en).format(**values)


def format_lr(value: float) -> str:
    """A learning rate as people write it: 2e-4, 2.5e-3, 0.5, 5."""
    if value == 0:
        return "0"
    if 1e-2 <= abs(value) < 1e3:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def suggest_lr(rule: str, numbers: dict[str, Any], learning_rate: float) -> float:
    """A learning rate to try instead of ``learning_rate`` (the configured peak), rounded to one digit.

    When the weights' update ratio was measured (divergence, frozen weights) it says how far off the
    LR is: Adam's step is about the LR per weight, so scaling the LR by target/measured brings the
    update to a usual size (1% of the weights per step).
    """
    ratio = float(numbers.get("update_ratio") or 0.0)
    if rule == "update_ratio" and ratio > 0:
        factor = min(0.1, _TARGET_UPDATE_RATIO / ratio)
    elif rule == "stagnation" and ratio > 0:
        factor = max(10.0, _TARGET_UPDATE_RATIO / ratio)
    else:
        factor = _LR_FACTOR.get(rule, 0.5)
    return float(f"{learning_rate * factor:.1g}")


def _what(rule: str, numbers: dict[str, Any], lang: str) -> str:
    if rule == "nonfinite":
        loss, grad = numbers.get("loss"), numbers.get("grad_norm")
        if loss is not None and not math.isfinite(loss):
            return text("loss_nonfinite", lang, value=loss)
        if numbers.get("weights_finite") is False:
            return text("weights_nonfinite", lang)
        return text("grad_nonfinite", lang, value=grad)
    if rule == "stagnation":
        return text(numbers.get("kind", "flat_loss"), lang, **numbers)
    return ""


def describe_health(
    rule: str, step: int, numbers: dict[str, Any], *, learning_rate: float, lang: str = "en"
) -> str:
    """What a health rule saw, the likely cause and the suggested fix, in ``lang``."""
    suggest = suggest_lr(rule, numbers, learning_rate)
    values: dict[str, Any] = {**numbers, "step": step, "lr": format_lr(learning_rate)}
    values["suggest"] = format_lr(suggest) + (text("typical_lr", lang) if suggest > 1e-2 else "")
    values["what"] = _what(rule, numbers, lang)
    if rule == "grad_norm":
        values["values"] = ", ".join(f"{g:.3g}" for g in numbers["grad_norms"])
        values["clip"] = text("no_clip", lang) if numbers.get("max_grad_norm") == 0 else ""
    if rule == "overfitting":
        values["values"] = " -> ".join(f"{v:.4g}" for v in numbers["eval_losses"])
    en, zh = HEALTH_TEXTS[rule]
    return (zh if lang == "zh" else en).format(**values)


def describe_action(action: str, lang: str = "en", **values: Any) -> str:
    """The sentence saying what the monitor did (values: old/new LR, restored step, checkpoint, ...)."""
    if action == "rollback" and values.get("restored") is None:
        action = "rollback_none"
    if action == "stop" and values.get("restored") is not None:
        action = "stop_restored"
    for key in ("old", "new"):
        if isinstance(values.get(key), float):
            values[key] = format_lr(values[key])
    if values.get("source") == "snapshot":
        values["source"] = text("snapshot", lang)
    sentence = text(action, lang, **values)
    if values.get("escalated"):
        sentence = (
            sentence.rstrip(".。")
            + text("escalated", lang, n=values["n"], limit=values["limit"])
            + ("。" if lang == "zh" else ".")
        )
    return sentence
