"""Config keys of the extra fine-tuning methods, optimizers and losses, with LLaMA-Factory's names.

OFT (``finetuning_type: oft``), GaLore, APOLLO, BAdam, Adam-mini, Muon, pure bf16, LLaMA Pro and the
DFT / EAFT / ASFT losses. The fields are part of the ``finetuning`` group (FinetuningArgs inherits
them), as they are of LLaMA-Factory's FinetuningArguments; each key means what it means there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator

from tunelab.config.fields import Group, field
from tunelab.config.schema_train import split_csv

__all__ = ["MethodArgs", "method_problems", "optimizer_problems"]


class MethodArgs(Group):
    """OFT, memory-saving optimizers, LLaMA Pro and alternative SFT losses."""

    pissa_convert: bool = field(
        False,
        en="PiSSA: also keep the unconverted adapter in pissa_backup/. tunelab always saves a PiSSA run's "
        "adapter as a plain LoRA delta (rank 2r) that applies to the original base model.",
        zh="PiSSA：另外在 pissa_backup/ 中保留未转换的适配器。tunelab 总是把 PiSSA 适配器保存为"
        "可直接加载到原始基座模型上的普通 LoRA 增量（秩 2r）。",
    )
    oft_rank: int = field(
        0,
        en="OFT: number of orthogonal blocks per layer (0: derived from oft_block_size). Set exactly one of "
        "oft_rank and oft_block_size.",
        zh="OFT：每层正交块的个数（0 表示由 oft_block_size 推出）。oft_rank 与 oft_block_size 只能设一个。",
        ge=0,
    )
    oft_block_size: int = field(
        32,
        en="OFT: size of each orthogonal block (must divide the layers' input size; 0: derived from oft_rank).",
        zh="OFT：每个正交块的大小（须整除层的输入维度；0 表示由 oft_rank 推出）。",
        ge=0,
    )
    oft_target: list[str] = field(
        ["all"],
        en="OFT: modules that get orthogonal adapters: 'all' linear layers, or names like q_proj,v_proj.",
        zh="OFT：加正交适配器的模块：'all' 表示所有线性层，或如 q_proj,v_proj 的名称。",
    )
    module_dropout: float = field(
        0.0,
        en="OFT: probability of dropping a whole OFT block during training.",
        zh="OFT：训练时整块丢弃 OFT 块的概率。",
        ge=0,
        lt=1,
    )
    use_galore: bool = field(
        False,
        en="GaLore: project gradients of full/freeze training to low rank (package galore-torch).",
        zh="GaLore：把全参/冻结训练的梯度投影到低秩（需 galore-torch 包）。",
    )
    galore_target: list[str] = field(
        ["all"],
        en="GaLore: linear layers whose weights are projected: 'all', layer names (q_proj,down_proj) or "
        "blocks (mlp,self_attn).",
        zh="GaLore：其权重做梯度投影的线性层：'all'、层名（q_proj,down_proj）或模块（mlp,self_attn）。",
    )
    galore_rank: int = field(
        16, en="GaLore: rank of the projected gradients.", zh="GaLore：投影梯度的秩。", gt=0
    )
    galore_update_interval: int = field(
        200, en="GaLore: steps between projection updates.", zh="GaLore：两次更新投影之间的步数。", gt=0
    )
    galore_scale: float = field(
        2.0, en="GaLore: scale of the projected update.", zh="GaLore：投影更新的缩放系数。", gt=0
    )
    galore_proj_type: Literal["std", "reverse_std", "right", "left", "full"] = field(
        "std", en="GaLore: projection side.", zh="GaLore：投影方向。"
    )
    galore_layerwise: bool = field(
        False,
        en="GaLore: step each weight during the backward pass (saves the gradients' memory); needs "
        "gradient_accumulation_steps: 1, one process, and does not clip gradients.",
        zh="GaLore：在反向传播中逐个权重更新（省去梯度的内存）；需要 gradient_accumulation_steps: 1、"
        "单进程，且不做梯度裁剪。",
    )
    use_apollo: bool = field(
        False,
        en="APOLLO: AdamW with low-rank auxiliary states and channel-wise scaling (package apollo-torch).",
        zh="APOLLO：使用低秩辅助状态和按通道缩放的 AdamW（需 apollo-torch 包）。",
    )
    apollo_target: list[str] = field(
        ["all"],
        en="APOLLO: linear layers it applies to: 'all', layer names (q_proj,down_proj) or blocks (mlp,self_attn).",
        zh="APOLLO：作用的线性层：'all'、层名（q_proj,down_proj）或模块（mlp,self_attn）。",
    )
    apollo_rank: int = field(16, en="APOLLO: rank of the auxiliary space.", zh="APOLLO：辅助空间的秩。", gt=0)
    apollo_update_interval: int = field(
        200, en="APOLLO: steps between projection updates.", zh="APOLLO：两次更新投影之间的步数。", gt=0
    )
    apollo_scale: float = field(
        32.0, en="APOLLO: gradient scaling factor.", zh="APOLLO：梯度缩放系数。", gt=0
    )
    apollo_proj: Literal["svd", "random"] = field(
        "random", en="APOLLO: projection (svd or random).", zh="APOLLO：投影方式（svd 或 random）。"
    )
    apollo_proj_type: Literal["std", "right", "left"] = field(
        "std", en="APOLLO: projection side.", zh="APOLLO：投影方向。"
    )
    apollo_scale_type: Literal["channel", "tensor"] = field(
        "channel", en="APOLLO: scale per channel or per tensor.", zh="APOLLO：按通道或按张量缩放。"
    )
    apollo_layerwise: bool = field(
        False,
        en="APOLLO: step each weight during the backward pass (saves the gradients' memory); needs "
        "gradient_accumulation_steps: 1, one process, and does not clip gradients.",
        zh="APOLLO：在反向传播中逐个权重更新（省去梯度的内存）；需要 gradient_accumulation_steps: 1、"
        "单进程，且不做梯度裁剪。",
    )
    apollo_scale_front: bool = field(
        False,
        en="APOLLO: apply the norm-growth limiter before the gradient scaling.",
        zh="APOLLO：在梯度缩放之前应用范数增长限制。",
    )
    use_badam: bool = field(
        False,
        en="BAdam: full-parameter training that updates one block of layers at a time (package badam).",
        zh="BAdam：每次只更新一组层的全参数训练（需 badam 包）。",
    )
    badam_mode: Literal["layer", "ratio"] = field(
        "layer",
        en="BAdam: switch whole layers (layer) or update a share of every matrix (ratio, not supported yet).",
        zh="BAdam：按层切换（layer）或更新每个矩阵的一部分（ratio，暂不支持）。",
    )
    badam_start_block: int | None = field(
        None, en="BAdam: index of the first block to train.", zh="BAdam：最先训练的块的序号。", ge=0
    )
    badam_switch_mode: Literal["ascending", "descending", "random", "fixed"] | None = field(
        "ascending", en="BAdam: order in which blocks are trained.", zh="BAdam：各块的训练顺序。"
    )
    badam_switch_interval: int | None = field(
        50,
        en="BAdam: optimizer steps before switching to the next block (-1: never switch).",
        zh="BAdam：切换到下一块之前的优化步数（-1 表示不切换）。",
        ge=-1,
    )
    badam_update_ratio: float = field(
        0.05,
        en="BAdam ratio mode: share of each matrix updated.",
        zh="BAdam ratio 模式：每个矩阵更新的比例。",
        gt=0,
        le=1,
    )
    badam_mask_mode: Literal["adjacent", "scatter"] = field(
        "adjacent",
        en="BAdam ratio mode: layout of the updated entries.",
        zh="BAdam ratio 模式：被更新元素的分布。",
    )
    badam_verbose: int = field(
        0,
        en="BAdam: 0 silent, 1 prints the active block, 2 also its parameters.",
        zh="BAdam：0 不输出，1 输出当前块，2 同时输出其参数。",
        ge=0,
        le=2,
    )
    use_adam_mini: bool = field(
        False,
        en="Adam-mini: one second-moment value per parameter block instead of per weight (package adam-mini).",
        zh="Adam-mini：每个参数块只保留一个二阶矩，而不是每个权重一个（需 adam-mini 包）。",
    )
    use_muon: bool = field(
        False,
        en="Muon (torch.optim.Muon) for the 2-D weights of the hidden layers, AdamW for the rest.",
        zh="隐藏层的二维权重使用 Muon（torch.optim.Muon），其余参数使用 AdamW。",
    )
    pure_bf16: bool = field(
        False,
        en="Keep weights, gradients and optimizer states in bf16 without mixed precision (half the memory "
        "of fp32 weights; slow on CPUs without bf16 units).",
        zh="权重、梯度和优化器状态都保持 bf16，不使用混合精度（权重内存为 fp32 的一半；"
        "在没有 bf16 单元的 CPU 上很慢）。",
    )
    use_llama_pro: bool = field(
        False,
        en="LLaMA Pro: train only the blocks `tunelab expand-model` (or LLaMA-Factory's llama_pro.py) added; "
        "freeze_trainable_layers is their number, they sit at every (layers / it)-th layer; with freeze or lora.",
        zh="LLaMA Pro：只训练 `tunelab expand-model`（或 LLaMA-Factory 的 llama_pro.py）新增的块；"
        "freeze_trainable_layers 为新增块数，它们位于每隔（层数 / 该值）层的位置；配合 freeze 或 lora。",
    )
    use_dft_loss: bool = field(
        False,
        en="sft: Dynamic Fine-Tuning loss, each token's cross-entropy weighted by its (detached) probability.",
        zh="sft：动态微调（DFT）损失，每个 token 的交叉熵乘以其（不求梯度的）概率。",
    )
    use_eaft_loss: bool = field(
        False,
        en="sft: Entropy-Adaptive Fine-Tuning loss, cross-entropy weighted by the normalised top-20 entropy.",
        zh="sft：熵自适应微调（EAFT）损失，交叉熵乘以归一化的 top-20 熵。",
    )
    eaft_alpha: float = field(1.0, en="EAFT: power of the entropy weight.", zh="EAFT：熵权重的幂次。", gt=0)
    use_asft_loss: bool = field(
        False,
        en="sft: Anchored SFT loss, the DFT loss plus asft_alpha x KL(reference || model) per token.",
        zh="sft：锚定 SFT（ASFT）损失，DFT 损失加上 asft_alpha × 每个 token 的 KL(参考模型 || 模型)。",
    )
    asft_alpha: float = field(0.1, en="ASFT: weight of the KL anchor.", zh="ASFT：KL 锚定项的权重。", ge=0)

    @property
    def steps_in_backward(self) -> bool:
        """Whether layer-wise GaLore/APOLLO updates the weights inside the backward pass."""
        return (self.use_galore and self.galore_layerwise) or (self.use_apollo and self.apollo_layerwise)

    _split_method_lists = field_validator("oft_target", "galore_target", "apollo_target", mode="before")(
        lambda cls, v: split_csv(v)
    )


def method_problems(args: MethodArgs, finetuning_type: str, stage: str) -> list[str]:
    """Every combination of these keys that cannot work, each with its reason and the fix."""
    problems: list[str] = []
    optimizers = [
        k for k in ("use_galore", "use_apollo", "use_badam", "use_adam_mini", "use_muon") if getattr(args, k)
    ]
    if len(optimizers) > 1:
        problems.append(f"{' and '.join(optimizers)} each choose the optimizer; keep one of them")
    low_rank = [k for k in ("use_galore", "use_apollo") if getattr(args, k)]
    if args.use_badam and finetuning_type != "full":
        problems.append(
            f"use_badam switches which decoder layer trains, so it needs finetuning_type: full "
            f"(got {finetuning_type})"
        )
    if low_rank and finetuning_type in ("lora", "oft"):
        problems.append(
            f"{low_rank[0]} saves optimizer memory of full/freeze training and cannot be combined with "
            f"finetuning_type: {finetuning_type} (as in LLaMA-Factory); set finetuning_type: full"
        )
    if args.use_badam and args.badam_mode == "ratio":
        problems.append(
            "badam_mode=ratio needs the Trainer's gradient clipping replaced for sparse gradients, which "
            "tunelab does not patch; use badam_mode: layer"
        )
    losses = [k for k in ("use_dft_loss", "use_eaft_loss", "use_asft_loss") if getattr(args, k)]
    if len(losses) > 1:
        problems.append(f"{' and '.join(losses)} each replace the sft loss; keep one of them")
    if losses and stage != "sft":
        problems.append(f"{losses[0]} changes the sft token loss, but stage is {stage}; use stage: sft")
    if args.use_llama_pro and finetuning_type not in ("freeze", "lora"):
        problems.append(
            f"use_llama_pro trains only the expanded blocks, with finetuning_type freeze or lora "
            f"(got {finetuning_type})"
        )
    if finetuning_type == "oft" and (args.oft_rank == 0) == (args.oft_block_size == 0):
        problems.append(
            f"finetuning_type: oft needs exactly one of oft_rank and oft_block_size set (got oft_rank="
            f"{args.oft_rank}, oft_block_size={args.oft_block_size}); e.g. oft_rank: 0 with oft_block_size: 32"
        )
    return problems


# optim values each use_* optimizer can build on (LLaMA-Factory's choices where it has them)
_OPTIM_FOR = {
    "use_galore": ("adamw_torch", "adamw_torch_fused", "adafactor", "adamw_8bit"),
    "use_apollo": ("adamw_torch", "adamw_torch_fused"),
    "use_badam": ("adamw_torch", "adamw_torch_fused"),
    "use_adam_mini": ("adamw_torch", "adamw_torch_fused"),
    "use_muon": ("adamw_torch", "adamw_torch_fused"),
}


def optimizer_problems(
    args: MethodArgs, optim: str, loraplus_lr_ratio: float | None, gradient_accumulation_steps: int
) -> list[str]:
    """Problems of a use_* optimizer key together with the TrainingArgs ``optim``, LoRA+ and accumulation."""
    problems = []
    if args.steps_in_backward and gradient_accumulation_steps > 1:
        problems.append(
            "galore_layerwise / apollo_layerwise steps each weight during backward, so it cannot accumulate "
            f"gradients (gradient_accumulation_steps={gradient_accumulation_steps}); set gradient_accumulation_steps: 1"
        )
    for key, allowed in _OPTIM_FOR.items():
        if not getattr(args, key):
            continue
        if optim not in allowed:
            problems.append(
                f"{key}=true builds on optim {' / '.join(allowed)}, not optim={optim}; set optim: adamw_torch"
            )
        if loraplus_lr_ratio is not None:
            problems.append(f"{key}=true builds its own parameter groups; remove loraplus_lr_ratio")
    return problems
