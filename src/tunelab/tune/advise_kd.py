"""`tunelab advise` for stage kd: the distillation settings, each with the rule behind it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunelab.config import RunConfig
    from tunelab.tune.advise import Advice

__all__ = ["advise_kd"]


def advise_kd(advice: Advice, config: RunConfig) -> None:
    """kd_temperature, kd_alpha, kd_loss and a note on the learning rate, for a stage kd config."""
    lr = next((item for item in advice.items if item.key == "learning_rate"), None)
    if lr is not None:  # the sft rule holds: the T^2 factor keeps KD gradients sft-sized
        advice.add(
            "learning_rate",
            lr.value,
            lr.en
            + "; kd: the same rule as sft (the KD loss is scaled by T^2, so its gradients are sft-sized)",
            lr.zh + "；kd：与 sft 同一规则（KD 损失乘以 T^2，梯度量级与 sft 相同）",
        )
    advice.add(
        "kd_temperature",
        2.0,
        "T=2: softened teacher distributions show which wrong tokens are nearly right (Hinton et al. used "
        "2-20 on small vocabularies; LLM distillation works at 1-2, higher T flattens a 50k-token vocabulary)",
        "T=2：软化后的教师分布能显示哪些错误 token 几乎正确（Hinton 等在小词表上用 2-20；大模型蒸馏常用 1-2，"
        "更高的 T 会把 5 万词表的分布压平）",
    )
    advice.add(
        "kd_alpha",
        0.5,
        "alpha=0.5: half KD, half cross-entropy on the reference responses, which keeps the student anchored "
        "to the data when the teacher is wrong; raise it towards 1 when the teacher is much better than the labels",
        "alpha=0.5：KD 与参考回答交叉熵各占一半，教师出错时学生仍以数据为准；教师明显优于标注时可向 1 调高",
    )
    advice.add(
        "kd_loss",
        "forward_kl",
        "forward KL on fixed (dataset) responses, as in Hinton et al.; reverse_kl / jsd pay off mainly when "
        "the student's own samples are scored (on-policy, GKD)",
        "在固定（数据集）回答上用前向 KL（Hinton 等）；reverse_kl / jsd 主要在对学生自己的采样打分"
        "（on-policy，GKD）时更有利",
    )
