"""Config group of stage ``kd`` (knowledge distillation): the teacher and how its knowledge is moved.

LLaMA-Factory has no distillation stage, so these keys are tunelab's own; they follow the names of
the papers (temperature T and mixing weight alpha from Hinton et al. 2015, the generalized JSD beta
from GKD, Agarwal et al. 2024).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import field_validator, model_validator

from tunelab.config.fields import Group, field
from tunelab.config.schema_train import split_csv

__all__ = ["KD_LOSSES", "KDArgs", "parse_student_init"]

KD_LOSSES = ("forward_kl", "reverse_kl", "jsd")
_FIRST_N = re.compile(r"^first_n:(\d+)$")


def parse_student_init(spec: str, n_layers: int) -> list[int]:
    """The teacher layer indices a ``kd_student_init`` spec keeps, for a model of ``n_layers`` layers.

    every_other_layer keeps 0, 2, 4, ... (DistilBERT kept one layer in two); first_n:K keeps 0..K-1.
    """
    if spec == "every_other_layer":
        return list(range(0, n_layers, 2))
    match = _FIRST_N.match(spec)
    if match is None:
        raise ValueError(f"kd_student_init={spec!r}: use every_other_layer or first_n:K (e.g. first_n:6)")
    k = int(match.group(1))
    if not 0 < k < n_layers:
        raise ValueError(
            f"kd_student_init={spec}: K must be between 1 and {n_layers - 1} (the model has {n_layers} layers)"
        )
    return list(range(k))


class KDArgs(Group):
    """Which teacher stage kd distils from, and the distillation loss."""

    teacher_model_name_or_path: str | None = field(
        None,
        en="kd: the teacher: a model directory, a .gguf file, 'smollm2', 'tiny:<preset>', or a tunelab "
        "run directory (its LoRA adapter is applied). It must share the student's vocabulary. "
        "Stage cls: a cls run directory or classification model directory whose soft labels are distilled.",
        zh="kd：教师模型：模型目录、.gguf 文件、'smollm2'、'tiny:<预设>'，或 tunelab 运行目录"
        "（会加载其 LoRA 适配器）。必须与学生模型使用同一词表。"
        "cls 阶段：cls 运行目录或分类模型目录，蒸馏其软标签。",
    )
    teacher_adapter_name_or_path: list[str] | None = field(
        None,
        en="kd: LoRA adapter directories applied to the teacher (comma-separated).",
        zh="kd：加载到教师模型上的 LoRA 适配器目录（逗号分隔）。",
    )
    teacher_compute_type: Literal["auto", "bf16", "fp16", "fp32"] | None = field(
        None,
        en="kd: precision of the teacher's forward passes; unset uses the student's compute_type.",
        zh="kd：教师前向计算的精度；未设置时与学生的 compute_type 相同。",
    )
    kd_loss: Literal["forward_kl", "reverse_kl", "jsd"] = field(
        "forward_kl",
        en="kd: divergence between teacher and student token distributions: forward_kl (Hinton et al.; "
        "mode-covering), reverse_kl (mode-seeking), jsd (GKD's generalized Jensen-Shannon, kd_jsd_beta).",
        zh="kd：教师与学生逐 token 分布之间的散度：forward_kl（Hinton 等，覆盖所有模式）、"
        "reverse_kl（寻找主模式）、jsd（GKD 的广义 Jensen-Shannon 散度，见 kd_jsd_beta）。",
    )
    kd_jsd_beta: float = field(
        0.5,
        en="kd jsd: mixture weight beta of the generalized JSD; near 0 it behaves like forward KL, "
        "near 1 like reverse KL (0.5 is the symmetric JSD).",
        zh="kd jsd：广义 JSD 的混合权重 beta；接近 0 时近似前向 KL，接近 1 时近似反向 KL（0.5 为对称 JSD）。",
        gt=0,
        lt=1,
    )
    kd_temperature: float = field(
        1.0,
        en="kd: softmax temperature T applied to teacher and student logits; the KD loss is multiplied "
        "by T^2 so its gradients keep their size (Hinton et al.). 1-2 is typical.",
        zh="kd：同时作用于教师和学生 logits 的 softmax 温度 T；KD 损失乘以 T^2 以保持梯度量级"
        "（Hinton 等）。常用 1-2。",
        gt=0,
    )
    kd_alpha: float = field(
        0.5,
        en="kd: weight of the KD loss: loss = alpha x KD + (1 - alpha) x cross-entropy on the labels "
        "(0 = plain sft, 1 = KD only); stage cls with a teacher mixes the same way with the hard-label CE.",
        zh="kd：KD 损失的权重：损失 = alpha × KD + (1 - alpha) × 标签交叉熵（0 即普通 sft，1 只用 KD）；"
        "带教师的 cls 阶段同样与硬标签交叉熵混合。",
        ge=0,
        le=1,
    )
    kd_topk: int | None = field(
        None,
        en="kd: compare the distributions on the teacher's top-k tokens only (both renormalised there); "
        "saves memory and is what kd_teacher_cache stores. Unset: the whole vocabulary.",
        zh="kd：只在教师概率最高的 k 个 token 上比较分布（两者都在其上重新归一化）；节省内存，"
        "kd_teacher_cache 保存的也是它。未设置：整个词表。",
        gt=0,
    )
    kd_chunk_tokens: int = field(
        1024,
        en="kd: response tokens whose vocabulary-sized logits are computed at once; lower it to save "
        "memory on large vocabularies (the result does not change).",
        zh="kd：一次计算词表大小 logits 的回复 token 数；词表很大时调低以省内存（结果不变）。",
        gt=0,
    )
    kd_teacher_cache: str | None = field(
        None,
        en="kd: directory written by `tunelab data teacher-logits`: train from the stored teacher top-k "
        "log-probs without loading the teacher.",
        zh="kd：`tunelab data teacher-logits` 写出的目录：用保存的教师 top-k 对数概率训练，无需加载教师。",
    )
    kd_on_policy_ratio: float = field(
        0.0,
        en="kd: share of optimizer steps that are on-policy (GKD's lmbda): the student samples its own "
        "responses to the batch's prompts (with the generation settings temperature, top_p, top_k) and "
        "the teacher scores them; the loss is the KD loss over the generated tokens. Needs a live teacher.",
        zh="kd：同策略（在线）优化步的比例（即 TRL GKD 的 `lmbda`）：学生按生成设置（temperature、top_p、"
        "top_k）自己回答该批的提示，教师为这些 token 打分，损失为生成 token 上的 KD 损失。需要加载教师模型。",
        ge=0,
        le=1,
    )
    kd_max_new_tokens: int = field(
        128,
        en="kd on-policy: most tokens the student generates per response (GKD's max_new_tokens), also "
        "capped so that prompt + response fit in cutoff_len.",
        zh="kd 在线策略：学生每个回答最多生成的 token 数（GKD 的 max_new_tokens），"
        "并且提示加回答不超过 cutoff_len。",
        gt=0,
    )
    kd_student_init: str | None = field(
        None,
        en="kd: start the student from the teacher's own layers (as DistilBERT did): every_other_layer, or "
        "first_n:K. `tunelab train` builds it into <output_dir>/student_init (model_name_or_path must name the "
        "teacher); `tunelab data init-student` saves one anywhere.",
        zh="kd：用教师模型自身的层初始化学生（DistilBERT 的做法）：every_other_layer（隔层保留）或 first_n:K"
        "（前 K 层）。`tunelab train` 会把学生写入 <output_dir>/student_init（model_name_or_path 须为教师模型）；"
        "`tunelab data init-student` 可保存到任意目录。",
    )

    _split_adapters = field_validator("teacher_adapter_name_or_path", mode="before")(
        lambda cls, v: split_csv(v)
    )

    @model_validator(mode="after")
    def _check_student_init(self) -> KDArgs:
        spec = self.kd_student_init
        if spec is not None and spec != "every_other_layer" and not _FIRST_N.match(spec):
            raise ValueError(f"kd_student_init={spec!r}: use every_other_layer or first_n:K (e.g. first_n:6)")
        return self
