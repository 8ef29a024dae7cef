"""The typed config schema: one model per group, key names from LLaMA-Factory and HF TrainingArguments.

Keys are flat in YAML (as in LLaMA-Factory) and unique across groups, so a user's existing
training YAML maps onto these groups key by key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from tunelab.config.fields import Group, field
from tunelab.config.schema_eval import EvalArgs
from tunelab.config.schema_export import ExportArgs
from tunelab.config.schema_kd import KDArgs
from tunelab.config.schema_methods import MethodArgs, method_problems
from tunelab.config.schema_pref import PreferenceArgs
from tunelab.config.schema_train import GenerationArgs, OutputArgs, TrainingArgs, split_csv

__all__ = [
    "ADAPTER_TYPES",
    "FINETUNING_TYPES",
    "STAGES",
    "DataArgs",
    "EvalArgs",
    "ExportArgs",
    "FinetuningArgs",
    "GenerationArgs",
    "KDArgs",
    "ModelArgs",
    "OutputArgs",
    "PreferenceArgs",
    "TrainingArgs",
]

STAGES = ("pt", "sft", "rm", "dpo", "kto", "ppo", "cls", "kd")
FINETUNING_TYPES = ("lora", "oft", "freeze", "full")
ADAPTER_TYPES = ("lora", "oft")  # finetuning types whose result is a PEFT adapter (adapter_config.json)


class ModelArgs(Group):
    """Which model to load and how to run its arithmetic."""

    model_name_or_path: str = field(
        en="Local model directory, a .gguf file, 'smollm2', 'minilm' (encoder for stage cls), "
        "or 'tiny:<preset>' (random tiny model: llama, qwen2, bert).",
        zh="本地模型目录、.gguf 文件、'smollm2'、'minilm'（用于 cls 阶段的编码器），"
        "或 'tiny:<预设>'（随机初始化的小模型：llama、qwen2、bert）。",
    )
    adapter_name_or_path: list[str] | None = field(
        None,
        en="LoRA adapter directories to load on top of the model (comma-separated).",
        zh="加载到模型上的 LoRA 适配器目录（逗号分隔）。",
    )
    trust_remote_code: bool = field(
        False,
        en="Allow model code shipped inside the model directory to run.",
        zh="允许运行模型目录中自带的代码。",
    )
    compute_type: Literal["auto", "bf16", "fp16", "fp32"] = field(
        "auto",
        en="Arithmetic precision; auto picks bf16 where the device supports it, else fp32.",
        zh="计算精度；auto 在设备支持时选择 bf16，否则 fp32。",
    )
    flash_attn: Literal["auto", "disabled", "eager", "sdpa", "fa2"] = field(
        "auto",
        en="Attention implementation: auto (fa2 on a CUDA GPU with flash-attn, else sdpa; packed rows on "
        "CPU: sdpa per sample), disabled or eager (plain PyTorch), sdpa, fa2 (flash-attention 2, CUDA).",
        zh="注意力实现：auto（CUDA GPU 且装有 flash-attn 时用 fa2，否则 sdpa；CPU 上的打包行逐样本 sdpa）、"
        "disabled 或 eager（普通 PyTorch）、sdpa、fa2（flash-attention 2，需 CUDA）。",
    )
    loss_kernel: Literal["auto", "chunked", "liger", "cce", "standard"] = field(
        "auto",
        en="Training loss: chunked (cross-entropy from hidden states on label positions only, no full "
        "logits), liger / cce (fused kernels, CUDA), standard (transformers'); auto: liger on CUDA "
        "when installed, else chunked.",
        zh="训练损失：chunked（只在有标签的位置由隐藏状态分块计算交叉熵，不生成完整 logits）、"
        "liger / cce（融合内核，需 CUDA）、standard（transformers 自带）；auto：CUDA 且已安装时用 "
        "liger，否则 chunked。",
    )
    enable_liger_kernel: bool = field(
        False,
        en="Patch the model with Liger Kernel's Triton kernels (RMSNorm, RoPE, SwiGLU, fused loss); "
        "needs a CUDA GPU and liger-kernel.",
        zh="用 Liger Kernel 的 Triton 内核替换模型算子（RMSNorm、RoPE、SwiGLU、融合损失）；"
        "需要 CUDA GPU 和 liger-kernel。",
    )
    use_unsloth: bool = field(
        False,
        en="Load and patch the model with Unsloth's kernels (LoRA/QLoRA); needs a CUDA GPU and unsloth.",
        zh="用 Unsloth 加载并加速模型（LoRA/QLoRA）；需要 CUDA GPU 和 unsloth。",
    )
    quantization_bit: Literal[4, 8] | None = field(
        None,
        en="Load the base model in 4 or 8 bits (QLoRA); needs bitsandbytes and a CUDA GPU.",
        zh="以 4 或 8 比特加载基座模型（QLoRA）；需要 bitsandbytes 和 CUDA GPU。",
    )
    quantization_method: Literal["bnb"] = field(
        "bnb",
        en="Quantization backend used with quantization_bit.",
        zh="与 quantization_bit 配合使用的量化后端。",
    )
    double_quantization: bool = field(
        True,
        en="Quantize the 4-bit quantization constants too (saves ~0.4 bit per parameter).",
        zh="对 4 比特量化常数再做一次量化（每参数约省 0.4 比特）。",
    )
    infer_backend: Literal["huggingface", "vllm", "sglang"] = field(
        "huggingface",
        en="Engine behind `tunelab api`: huggingface (tunelab's own batching engine, CPU or GPU), "
        "vllm or sglang (those packages' servers; they need a CUDA GPU).",
        zh="`tunelab api` 使用的推理引擎：huggingface（tunelab 自带的批处理引擎，CPU 或 GPU）、"
        "vllm 或 sglang（这些包自带的服务器，需要 CUDA GPU）。",
    )
    rope_scaling: Literal["linear", "dynamic", "yarn", "llama3"] | None = field(
        None,
        en="RoPE scaling method to extend the context beyond the model's trained length.",
        zh="RoPE 缩放方法，用于把上下文扩展到模型训练长度之外。",
    )
    model_max_length: int | None = field(
        None,
        en="Context length used with rope_scaling; defaults to cutoff_len.",
        zh="与 rope_scaling 配合使用的上下文长度；默认等于 cutoff_len。",
        gt=0,
    )
    cache_dir: str | None = field(
        None,
        en="Where converted (GGUF) and tiny models are cached; default ~/.cache/tunelab.",
        zh="转换后的 GGUF 模型和 tiny 模型的缓存目录；默认 ~/.cache/tunelab。",
    )
    shift_attn: bool = field(
        False,
        en="LongLoRA shifted sparse attention (S²-Attn) in training: attention within 4 groups per sequence, "
        "half of the heads shifted by half a group; full attention at inference.",
        zh="训练时使用 LongLoRA 的移位稀疏注意力（S²-Attn）：每条序列分 4 组、组内注意力，"
        "一半注意力头平移半组；推理时仍为全注意力。",
    )
    mixture_of_depths: Literal["convert", "load"] | None = field(
        None,
        en="Mixture-of-Depths (full fine-tuning): convert adds a router to every other decoder layer and "
        "trains with 12.5% of each sequence's tokens through it; load reloads a model saved after convert. "
        "Every token goes through every layer at eval/inference.",
        zh="深度混合（仅全参数微调）：convert 为每隔一层解码层加路由器，训练时每条序列只有 12.5% 的 token "
        "经过该层；load 加载 convert 后保存的模型。评估/推理时所有 token 经过所有层。",
    )

    _split_adapters = field_validator("adapter_name_or_path", mode="before")(lambda cls, v: split_csv(v))


class DataArgs(Group):
    """Which datasets to read and how to turn them into token sequences."""

    dataset: list[str] | None = field(
        None,
        en="Names of training datasets in dataset_info.json (comma-separated), or data file paths.",
        zh="dataset_info.json 中的训练数据集名称（逗号分隔），或数据文件路径。",
    )
    eval_dataset: list[str] | None = field(
        None,
        en="Names of evaluation datasets; if unset, val_size splits the training data.",
        zh="评估数据集名称；未设置时用 val_size 从训练数据中划分。",
    )
    dataset_dir: str = field(
        "data",
        en="Folder holding dataset_info.json and the data files; 'builtin' uses tunelab's bundled data.",
        zh="存放 dataset_info.json 和数据文件的目录；'builtin' 使用 tunelab 自带数据。",
    )
    template: str | None = field(
        None,
        en="Chat template name, as in LLaMA-Factory (qwen, qwen3, qwen3_nothink, qwen3_5, llama3, llama4, "
        "gemma3, mistral, phi4, deepseek3, deepseekr1, glm4, gpt, ... see the README), or tokenizer (the "
        "tokenizer's own chat template); unset uses the tokenizer's own chat template when it has one.",
        zh="对话模板名，与 LLaMA-Factory 相同（qwen、qwen3、qwen3_nothink、qwen3_5、llama3、llama4、gemma3、"
        "mistral、phi4、deepseek3、deepseekr1、glm4、gpt 等，见 README），或 tokenizer（分词器自带的对话模板）；"
        "未设置时优先使用分词器自带的对话模板。",
    )
    enable_thinking: bool = field(
        True,
        en="Thinking templates (qwen3, qwen3_5, deepseekr1, gpt, ...): true learns each final response with "
        "its reasoning block (an empty one if the record has none); false drops the reasoning and puts an "
        "empty block in the prompt, so the model learns to answer directly.",
        zh="思考型模板（qwen3、qwen3_5、deepseekr1、gpt 等）：true 时学习带思考块的最终回复（样本无思考内容则为空块）；"
        "false 时去掉思考内容，把空思考块放进提示词，模型学习直接回答。",
    )
    cutoff_len: int = field(
        2048,
        en="Maximum tokens per training sequence; longer samples are cut.",
        zh="每条训练序列的最大 token 数；更长的样本会被截断。",
        gt=0,
    )
    max_samples: int | None = field(
        None,
        en="Use at most this many records from each dataset (for quick runs).",
        zh="每个数据集最多使用的样本数（用于快速实验）。",
        gt=0,
    )
    val_size: float = field(
        0.0,
        en="Validation split: a fraction in [0, 1) or a record count >= 1 (stage cls: 0.15 when unset).",
        zh="验证集划分：[0, 1) 之间的比例，或 >= 1 的样本数（cls 阶段未设置时为 0.15）。",
        ge=0,
    )
    test_size: float = field(
        0.0,
        en="Test split held out from training and model selection, scored once at the end: a fraction "
        "in [0, 1) or a record count >= 1 (stage cls: 0.15 when unset, giving 70/15/15).",
        zh="测试集划分：不参与训练和模型选择，只在最后评估一次；[0, 1) 之间的比例或 >= 1 的样本数"
        "（cls 阶段未设置时为 0.15，即 70/15/15 划分）。",
        ge=0,
    )
    train_on_prompt: bool = field(
        False,
        en="Also compute the loss on prompt tokens (normally only responses are learned).",
        zh="在提示词 token 上也计算损失（通常只学习回复部分）。",
    )
    mask_history: bool = field(
        False,
        en="Learn only the last turn of multi-turn conversations.",
        zh="多轮对话中只学习最后一轮回复。",
    )
    packing: bool = field(
        False,
        en="Pack several samples into one sequence without attention across them (faster on short data).",
        zh="把多个样本打包进一条序列，且样本间互不注意（短数据更快）。",
    )
    neat_packing: bool = field(
        False,
        en="LLaMA-Factory's packing without cross-attention: implies packing (tunelab's packing "
        "always restarts positions and keeps attention inside each sample).",
        zh="LLaMA-Factory 的无交叉注意力打包：等同于开启 packing（tunelab 的打包总是重置位置编号，"
        "并让注意力只在样本内部）。",
    )
    group_by_length: bool = field(
        False,
        en="Batch samples of similar length together to reduce padding.",
        zh="把长度相近的样本放在同一批，减少填充。",
    )
    streaming: bool = field(
        False,
        en="Read the training data lazily, record by record, for datasets larger than memory (needs max_steps; "
        "val_size must then be a count: the first records become the eval split).",
        zh="逐条惰性读取训练数据，用于放不进内存的数据集（需要 max_steps；此时 val_size 须为条数：取最前面的记录作为验证集）。",
    )
    buffer_size: int = field(
        16384,
        en="With streaming: records held in the shuffle buffer (larger shuffles better, costs memory).",
        zh="流式读取时打乱缓冲区中的记录数（越大打乱越充分，占用内存越多）。",
    )
    mix_strategy: Literal["concat", "interleave_under", "interleave_over"] = field(
        "concat",
        en="How several datasets are mixed: concatenated, or interleaved until the smallest/largest ends.",
        zh="多个数据集的混合方式：拼接，或交错采样直到最小/最大的数据集用完。",
    )
    interleave_probs: list[float] | None = field(
        None,
        en="Sampling probabilities per dataset for the interleave strategies.",
        zh="交错混合时各数据集的采样概率。",
    )
    tool_format: str | None = field(
        None,
        en="How tool definitions are rendered into the system prompt (default: JSON list).",
        zh="工具定义写入系统提示词的格式（默认 JSON 列表）。",
    )
    default_system: str | None = field(
        None,
        en="System prompt used when a record has none.",
        zh="样本没有系统提示词时使用的默认系统提示词。",
    )
    overwrite_cache: bool = field(
        False,
        en="Accepted for LLaMA-Factory compatibility; tunelab tokenizes in memory on every run.",
        zh="为兼容 LLaMA-Factory 而接受；tunelab 每次运行都在内存中重新分词。",
    )
    tokenized_path: str | None = field(
        None,
        en="Folder of the tokenized datasets (pt/sft): saved there on the first run, loaded from there (skipping "
        "data loading, as in LLaMA-Factory) when it exists.",
        zh="分词后数据集的目录（pt/sft）：首次运行时保存到此处，目录存在时直接加载（跳过数据加载，与 LLaMA-Factory 相同）。",
    )
    preprocessing_num_workers: int | None = field(
        None,
        en="Processes used to tokenize the data.",
        zh="分词使用的进程数。",
        gt=0,
    )

    _split_lists = field_validator("dataset", "eval_dataset", "interleave_probs", mode="before")(
        lambda cls, v: split_csv(v)
    )

    @field_validator("template")
    @classmethod
    def _check_template(cls, value: str | None) -> str | None:
        from tunelab.config.template_catalog import (  # plain data, no torch
            TEMPLATE_NAMES,
            unknown_template_hint,
        )

        if value is not None and value not in TEMPLATE_NAMES:
            raise ValueError(f"unknown chat template {value!r}; {unknown_template_hint(value)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _neat_packing_packs(cls, data: object) -> object:
        """neat_packing (LLaMA-Factory) is packing without cross-attention, which is tunelab's packing."""
        if isinstance(data, dict) and str(data.get("neat_packing", "")).lower() in ("true", "1", "yes"):
            return {**data, "packing": True}
        return data

    @model_validator(mode="after")
    def _check_val_size(self) -> DataArgs:
        for key in ("val_size", "test_size"):
            size = getattr(self, key)
            if size >= 1 and size != int(size):
                raise ValueError(f"{key}={size}: use a fraction in [0, 1) or a whole record count")
        if self.val_size < 1 and self.test_size < 1 and self.val_size + self.test_size >= 1:
            raise ValueError(
                f"val_size={self.val_size} and test_size={self.test_size} leave nothing to train on; "
                "keep their sum below 1"
            )
        return self


class FinetuningArgs(MethodArgs):
    """Which training stage runs and which parameters it may change (method keys: schema_methods.py)."""

    stage: Literal["pt", "sft", "rm", "dpo", "kto", "ppo", "cls", "kd"] = field(
        "sft",
        en="Training stage: pt (pre-training), sft, rm (reward model), dpo, kto, ppo, cls (classification), "
        "kd (knowledge distillation from a teacher).",
        zh="训练阶段：pt（预训练）、sft（监督微调）、rm（奖励模型）、dpo、kto、ppo、cls（分类）、"
        "kd（从教师模型做知识蒸馏）。",
    )
    finetuning_type: Literal["lora", "oft", "freeze", "full"] = field(
        "lora",
        en="lora trains small adapter matrices; oft trains orthogonal block rotations (PEFT's OFT); "
        "freeze trains the last layers; full trains everything.",
        zh="lora 训练低秩适配矩阵；oft 训练正交块旋转（PEFT 的 OFT）；freeze 只训练最后几层；full 训练全部参数。",
    )
    lora_rank: int = field(
        8, en="LoRA rank r: capacity of the adapter.", zh="LoRA 秩 r：适配器的容量。", gt=0
    )
    lora_alpha: float | None = field(
        None,
        en="LoRA scaling alpha; unset means 2 x lora_rank.",
        zh="LoRA 缩放系数 alpha；未设置时为 2 × lora_rank。",
        gt=0,
    )
    lora_dropout: float = field(
        0.0, en="Dropout on the LoRA input.", zh="LoRA 输入上的 dropout。", ge=0, lt=1
    )
    lora_target: list[str] = field(
        ["all"],
        en="Modules that get LoRA adapters: 'all' linear layers, or names like q_proj,v_proj.",
        zh="加 LoRA 的模块：'all' 表示所有线性层，或如 q_proj,v_proj 的名称。",
    )
    additional_target: list[str] | None = field(
        None,
        en="Extra modules trained fully beside LoRA (e.g. embed_tokens,lm_head).",
        zh="在 LoRA 之外完整训练的额外模块（如 embed_tokens,lm_head）。",
    )
    use_rslora: bool = field(
        False,
        en="Rank-stabilized LoRA: scale by alpha/sqrt(r) instead of alpha/r.",
        zh="秩稳定 LoRA：按 alpha/sqrt(r) 而不是 alpha/r 缩放。",
    )
    use_dora: bool = field(
        False,
        en="Weight-decomposed LoRA (DoRA): learns magnitude and direction separately.",
        zh="权重分解 LoRA（DoRA）：分别学习幅度和方向。",
    )
    pissa_init: bool = field(
        False,
        en="Initialize LoRA from the principal singular vectors of the weights (PiSSA).",
        zh="用权重的主奇异向量初始化 LoRA（PiSSA）。",
    )
    pissa_iter: int = field(
        16,
        en="Fast-SVD iterations for PiSSA; -1 uses the exact SVD.",
        zh="PiSSA 快速 SVD 的迭代次数；-1 使用精确 SVD。",
        ge=-1,
    )
    loraplus_lr_ratio: float | None = field(
        None,
        en="LoRA+: learning rate of LoRA B matrices = ratio x learning_rate (16 is typical).",
        zh="LoRA+：LoRA B 矩阵学习率 = 该比例 × learning_rate（常用 16）。",
        gt=0,
    )
    freeze_trainable_layers: int = field(
        2,
        en="freeze: number of trainable layers; positive = last layers, negative = first layers.",
        zh="freeze：可训练的层数；正数为最后几层，负数为最前几层。",
    )
    freeze_trainable_modules: list[str] = field(
        ["all"],
        en="freeze: modules trained inside the trainable layers ('all', or names like mlp,self_attn).",
        zh="freeze：可训练层中要训练的模块（'all'，或如 mlp,self_attn 的名称）。",
    )
    freeze_extra_modules: list[str] | None = field(
        None,
        en="freeze: modules outside the layers to train too (e.g. embed_tokens,norm).",
        zh="freeze：层之外也要训练的模块（如 embed_tokens,norm）。",
    )
    class_weights: Literal["none", "balanced"] = field(
        "none",
        en="cls: weight the cross-entropy per class; balanced = n_samples / (n_classes x class count), "
        "so rare classes count as much as common ones.",
        zh="cls：按类别加权交叉熵；balanced = 样本数 / (类别数 × 该类样本数)，让少数类与多数类同等重要。",
    )

    _split_lists = field_validator(
        "lora_target",
        "additional_target",
        "freeze_trainable_modules",
        "freeze_extra_modules",
        mode="before",
    )(lambda cls, v: split_csv(v))

    @model_validator(mode="after")
    def _check_freeze_layers(self) -> FinetuningArgs:
        if self.freeze_trainable_layers == 0:
            raise ValueError("freeze_trainable_layers=0 trains nothing; use a positive or negative count")
        problems = method_problems(self, self.finetuning_type, self.stage)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def effective_lora_alpha(self) -> float:
        """lora_alpha, or 2 x lora_rank when it was left unset."""
        return self.lora_alpha if self.lora_alpha is not None else 2.0 * self.lora_rank


GROUP_TYPES: dict[str, type[Group]] = {
    "model": ModelArgs,
    "data": DataArgs,
    "finetuning": FinetuningArgs,
    "training": TrainingArgs,
    "generation": GenerationArgs,
    "output": OutputArgs,
    "export": ExportArgs,
    "eval": EvalArgs,
    "preference": PreferenceArgs,
    "kd": KDArgs,
}
