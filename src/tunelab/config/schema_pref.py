"""Config group of the preference stages rm, dpo, kto and ppo (LLaMA-Factory key names)."""

from __future__ import annotations

from typing import Literal

from tunelab.config.fields import Group, field

__all__ = ["PREF_LOSSES", "PreferenceArgs"]

PREF_LOSSES = ("sigmoid", "ipo", "hinge", "orpo", "simpo")


class PreferenceArgs(Group):
    """How rm, dpo, kto and ppo turn preferences into a training signal."""

    pref_beta: float = field(
        0.1,
        en="dpo/kto: beta, how far the policy may move from the reference (higher = stays closer); "
        "ipo: the regularisation tau; orpo: weight of the odds-ratio term; simpo: reward scale (2.0 is typical).",
        zh="dpo/kto：beta，策略可偏离参考模型的程度（越大越贴近参考模型）；ipo：正则系数 tau；"
        "orpo：优势比项的权重；simpo：奖励缩放（常用 2.0）。",
        gt=0,
    )
    pref_loss: Literal["sigmoid", "ipo", "hinge", "orpo", "simpo"] = field(
        "sigmoid",
        en="dpo: preference loss: sigmoid (DPO), ipo, hinge (SLiC), orpo or simpo (the last two need no "
        "reference model).",
        zh="dpo：偏好损失：sigmoid（DPO）、ipo、hinge（SLiC）、orpo 或 simpo（后两者不需要参考模型）。",
    )
    pref_ftx: float = field(
        0.0,
        en="dpo/kto: weight of an added SFT loss (mean negative log-likelihood of the chosen / desirable "
        "responses); 0 turns it off.",
        zh="dpo/kto：附加 SFT 损失的权重（被选 / 期望回答的平均负对数似然）；0 表示关闭。",
        ge=0,
    )
    simpo_gamma: float = field(
        0.5,
        en="simpo: target reward margin gamma between chosen and rejected responses.",
        zh="simpo：被选与被拒回答之间的目标奖励间隔 gamma。",
        ge=0,
    )
    dpo_label_smoothing: float = field(
        0.0,
        en="dpo sigmoid: assumed share of flipped preference labels (robust / conservative DPO), in [0, 0.5).",
        zh="dpo sigmoid：假定被标反的偏好比例（稳健 / 保守 DPO），取值 [0, 0.5)。",
        ge=0,
        lt=0.5,
    )
    kto_chosen_weight: float = field(
        1.0,
        en="kto: weight of the loss on desirable responses (raise it when they are the minority).",
        zh="kto：期望回答损失的权重（期望样本较少时调高）。",
        gt=0,
    )
    kto_rejected_weight: float = field(
        1.0,
        en="kto: weight of the loss on undesirable responses.",
        zh="kto：非期望回答损失的权重。",
        gt=0,
    )
    reward_model: str | None = field(
        None,
        en="ppo: the reward model: the run directory of a `stage: rm` run.",
        zh="ppo：奖励模型：一次 `stage: rm` 训练的运行目录。",
    )
    ppo_epochs: int = field(
        4,
        en="ppo: optimisation passes over each batch of generated responses.",
        zh="ppo：对每批生成的回答做几遍优化。",
        gt=0,
    )
    ppo_buffer_size: int = field(
        1,
        en="ppo: mini-batches (of per_device_train_batch_size x gradient_accumulation_steps prompts) "
        "generated before each optimisation round.",
        zh="ppo：每轮优化前生成多少个小批（每个小批 per_device_train_batch_size × "
        "gradient_accumulation_steps 条提示）。",
        gt=0,
    )
    ppo_kl_coef: float = field(
        0.2,
        en="ppo: initial weight of the per-token KL penalty to the reference model.",
        zh="ppo：对参考模型的逐 token KL 惩罚的初始权重。",
        ge=0,
    )
    ppo_target: float | None = field(
        6.0,
        en="ppo: target KL (nats per response) that adapts ppo_kl_coef; unset keeps ppo_kl_coef fixed.",
        zh="ppo：目标 KL（每条回答的奈特数），据此自适应调整 ppo_kl_coef；不设置则 ppo_kl_coef 固定。",
        gt=0,
    )
    ppo_score_norm: bool = field(
        False,
        en="ppo: normalise reward-model scores with their running mean and standard deviation.",
        zh="ppo：用滑动均值和标准差对奖励模型分数做归一化。",
    )
    ppo_whiten_rewards: bool = field(
        False,
        en="ppo: whiten the per-token rewards of each batch before computing advantages.",
        zh="ppo：计算优势前对每批的逐 token 奖励做白化。",
    )
