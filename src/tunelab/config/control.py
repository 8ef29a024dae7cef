"""Nested config groups that control a run while it trains: ``health:`` and ``early_stopping:``.

Unlike the flat LLaMA-Factory keys, these are written as YAML mappings (``health: {enabled: false}``)
or dotted overrides (``health.grad_norm_alarm=5``), because their names would be ambiguous flat.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from tunelab.config.fields import Group, field
from tunelab.config.schema_tune import TuneArgs

__all__ = ["HealthArgs", "EarlyStoppingArgs", "NESTED_GROUP_TYPES", "Action"]

# "off" switches a rule off; the others are ordered by severity (the monitor applies the most severe).
Action = Literal["off", "warn", "halve_lr", "rollback", "stop"]

_ACTIONS_EN = (
    "off (rule disabled), warn, halve_lr, rollback (reload the last healthy weights, then halve the LR) "
    "or stop (save a checkpoint, then end the run)"
)
_ACTIONS_ZH = "off（关闭该规则）、warn、halve_lr、rollback（恢复最近健康的权重并把学习率减半）或 stop（保存检查点后结束训练）"


class HealthArgs(Group):
    """The health monitor: rules that watch the loss, gradients and weight updates at every log step.

    Each rule has an ``*_action``: off (the rule is switched off), warn, halve_lr, rollback or stop.
    halve_lr and rollback count as interventions, bounded by ``max_interventions``.
    """

    enabled: bool = field(
        True, en="Watch the run and act on the rules below.", zh="监控训练，并按下列规则处理异常。"
    )
    nonfinite_action: Action = field(
        "rollback",
        en="Action when the loss, gradient norm or weights are NaN/Inf; one of " + _ACTIONS_EN + ".",
        zh="损失、梯度范数或权重为 NaN/Inf 时的处理方式，可选 " + _ACTIONS_ZH + "。",
    )
    update_ratio_alarm: float = field(
        1.0,
        en="Divergence: trainable weights changing by more than this fraction of their size per optimizer "
        "step (healthy fine-tuning: ~0.0001-0.01); means the learning rate is far too high.",
        zh="发散：可训练权重每个优化步的变化超过其自身大小的该比例（正常微调约 0.0001-0.01），"
        "说明学习率远远过高。",
        gt=0,
    )
    update_ratio_action: Action = field(
        "stop", en="Action on divergence (weight updates too large).", zh="发散（权重更新过大）时的处理方式。"
    )
    grad_norm_alarm: float = field(
        10.0,
        en="Gradient norm above which a log step counts as exploding.",
        zh="梯度范数超过该值时，该日志步视为梯度爆炸。",
        gt=0,
    )
    grad_norm_consecutive: int = field(
        3,
        en="Log steps in a row above grad_norm_alarm before the rule fires.",
        zh="连续多少个日志步超过 grad_norm_alarm 才触发。",
        gt=0,
    )
    grad_norm_action: Action = field(
        "halve_lr", en="Action when gradients explode.", zh="梯度爆炸时的处理方式。"
    )
    spike_factor: float = field(
        3.0,
        en="Loss spike: loss above this multiple of its recent moving average.",
        zh="损失尖峰：损失超过近期滑动平均的该倍数。",
        gt=1,
    )
    spike_action: Action = field("warn", en="Action on a loss spike.", zh="出现损失尖峰时的处理方式。")
    window: int = field(
        10,
        en="Recent log steps the spike, oscillation and stagnation rules look at.",
        zh="尖峰、震荡、停滞规则参考的近期日志步数。",
        ge=4,
    )
    oscillation_ratio: float = field(
        0.5,
        en="Oscillation: spread of the recent loss around its trend above this share of the loss drop "
        "it achieved (learning rate too high).",
        zh="震荡：近期损失围绕趋势的波动超过其下降幅度的该比例（学习率过高）。",
        gt=0,
    )
    oscillation_min_spread: float = field(
        0.05,
        en="Oscillation also needs the spread to exceed this fraction of the loss itself, so that the "
        "ordinary batch-to-batch noise of a converged run does not count.",
        zh="震荡还要求波动超过损失值本身的该比例，以免把收敛后正常的批间噪声当作震荡。",
        ge=0,
    )
    oscillation_action: Action = field("warn", en="Action on oscillation.", zh="出现震荡时的处理方式。")
    stagnation_rel_change: float = field(
        1e-4,
        en="Stagnation: loss range over the window below this fraction of the loss (identical losses).",
        zh="停滞：窗口内损失的波动范围低于损失值的该比例（损失几乎完全相同）。",
        ge=0,
    )
    stagnation_update_ratio: float = field(
        1e-6,
        en="Stagnation: trainable weights changing by less than this fraction of their size per step over "
        "the window (LR too low, nothing trainable, or updates lost to low precision).",
        zh="停滞：窗口内可训练权重每步的变化低于其自身大小的该比例（学习率过低、没有可训练参数，"
        "或更新因精度不足而丢失）。",
        ge=0,
    )
    stagnation_action: Action = field("warn", en="Action on stagnation.", zh="出现停滞时的处理方式。")
    overfit_evals: int = field(
        3,
        en="Overfitting: eval loss rising this many evaluations in a row while train loss falls.",
        zh="过拟合：训练损失下降而评估损失连续上升的评估次数。",
        gt=0,
    )
    overfit_action: Action = field("stop", en="Action on overfitting.", zh="出现过拟合时的处理方式。")
    max_interventions: int = field(
        3,
        en="At most this many halve_lr/rollback actions; the next one stops the run.",
        zh="halve_lr/rollback 最多执行的次数；再次触发时停止训练。",
        ge=0,
    )
    snapshot_max_params: int = field(
        50_000_000,
        en="Keep an in-memory copy of the trainable weights and optimizer state at each healthy log step "
        "(for rollback) when there are at most this many trainable parameters; above it, rollback reloads "
        "the last healthy checkpoint instead (0: never copy).",
        zh="可训练参数不超过该数量时，在每个健康的日志步于内存中保存可训练权重和优化器状态的副本"
        "（供 rollback 使用）；超过时 rollback 改为加载最近健康的检查点（0 表示从不复制）。",
        ge=0,
    )

    def rule_actions(self) -> dict[str, str]:
        """Rule name -> configured action, in the order the monitor checks them."""
        return {
            "nonfinite": self.nonfinite_action,
            "update_ratio": self.update_ratio_action,
            "grad_norm": self.grad_norm_action,
            "spike": self.spike_action,
            "oscillation": self.oscillation_action,
            "stagnation": self.stagnation_action,
            "overfitting": self.overfit_action,
        }


class EarlyStoppingArgs(Group):
    """Stop when the monitored evaluation metric stops improving."""

    enabled: bool = field(False, en="Stop when the metric stops improving.", zh="指标不再提升时停止训练。")
    metric: str = field(
        "eval_loss",
        en="Evaluation metric to monitor (eval_loss, or an eval_* metric).",
        zh="监控的评估指标（eval_loss 或其他 eval_* 指标）。",
    )
    mode: Literal["auto", "min", "max"] = field(
        "auto",
        en="Whether lower (min) or higher (max) is better; auto: min for losses/perplexity, else max.",
        zh="越低越好（min）还是越高越好（max）；auto：损失/困惑度取 min，其余取 max。",
    )
    patience: int = field(
        3, en="Evaluations without improvement before stopping.", zh="连续多少次评估没有提升后停止。", gt=0
    )
    min_delta: float = field(
        0.0,
        en="Smallest change that counts as an improvement.",
        zh="视为提升的最小变化量。",
        ge=0,
    )
    on_plateau: Literal["stop", "halve_lr_then_stop"] = field(
        "stop",
        en="On a plateau: stop, or first halve the learning rate and stop only if it plateaus again.",
        zh="进入平台期时：直接停止，或先把学习率减半，再次进入平台期才停止。",
    )

    @model_validator(mode="after")
    def _check_metric(self) -> EarlyStoppingArgs:
        if not self.metric.startswith("eval_"):
            raise ValueError(f"early_stopping.metric={self.metric!r}: use an evaluation metric named eval_*")
        return self

    @property
    def lower_is_better(self) -> bool:
        """min mode, or auto on a loss/perplexity metric."""
        if self.mode != "auto":
            return self.mode == "min"
        return "loss" in self.metric or "perplexity" in self.metric


NESTED_GROUP_TYPES: dict[str, type[Group]] = {
    "health": HealthArgs,
    "early_stopping": EarlyStoppingArgs,
    "tune": TuneArgs,  # read by `tunelab tune` / `sweep`, ignored by training
}
