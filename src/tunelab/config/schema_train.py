"""Config groups of the optimisation loop, generation and outputs (HF TrainingArguments names)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator, model_validator

from tunelab.config.engines import DEEPSPEED_PRESETS, check_deepspeed, check_fsdp
from tunelab.config.fields import Group, field

__all__ = ["TrainingArgs", "GenerationArgs", "OutputArgs", "split_csv"]


def split_csv(value: object) -> object:
    """Accept LLaMA-Factory's comma-separated strings where a list is meant."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class TrainingArgs(Group):
    """The optimisation loop, with HF TrainingArguments names."""

    learning_rate: float = field(1e-4, en="Peak learning rate.", zh="峰值学习率。", gt=0)
    num_train_epochs: float = field(3.0, en="Passes over the training data.", zh="训练数据的遍历轮数。", gt=0)
    max_steps: int = field(
        -1,
        en="Stop after this many optimizer steps (overrides num_train_epochs when > 0).",
        zh="在这么多优化步后停止（大于 0 时覆盖 num_train_epochs）。",
        ge=-1,
    )
    per_device_train_batch_size: int = field(
        4, en="Micro-batch size per device.", zh="每个设备的微批大小。", gt=0
    )
    per_device_eval_batch_size: int = field(
        8, en="Evaluation batch size per device.", zh="每个设备的评估批大小。", gt=0
    )
    gradient_accumulation_steps: int = field(
        1,
        en="Micro-batches accumulated per optimizer step (effective batch = micro-batch x this x devices).",
        zh="每个优化步累积的微批数（有效批大小 = 微批 × 该值 × 设备数）。",
        gt=0,
    )
    lr_scheduler_type: Literal[
        "constant",
        "constant_with_warmup",
        "linear",
        "cosine",
        "cosine_with_restarts",
        "polynomial",
        "inverse_sqrt",
        "step",
        "reduce_lr_on_plateau",
    ] = field(
        "cosine",
        en="Learning-rate schedule (all with warmup_steps/warmup_ratio).",
        zh="学习率调度方式（都支持 warmup_steps/warmup_ratio 预热）。",
    )
    num_cycles: float = field(
        1.0,
        en="cosine_with_restarts: number of hard restarts (cycles) over training.",
        zh="cosine_with_restarts：训练期间硬重启（周期）的次数。",
        gt=0,
    )
    lr_power: float = field(
        1.0,
        en="polynomial: power of the decay (1 = linear).",
        zh="polynomial：衰减的幂次（1 为线性）。",
        gt=0,
    )
    lr_end: float = field(1e-7, en="polynomial: final learning rate.", zh="polynomial：最终学习率。", ge=0)
    step_size: int | None = field(
        None,
        en="step: optimizer steps between decays (default: a third of the steps after warm-up).",
        zh="step：两次衰减之间的优化步数（默认：预热后步数的三分之一）。",
        gt=0,
    )
    step_gamma: float = field(
        0.1, en="step: factor applied at each decay.", zh="step：每次衰减乘以的系数。", gt=0, le=1
    )
    plateau_factor: float = field(
        0.5,
        en="reduce_lr_on_plateau: factor applied when the metric stops improving.",
        zh="reduce_lr_on_plateau：指标不再提升时学习率乘以的系数。",
        gt=0,
        lt=1,
    )
    plateau_patience: int = field(
        1,
        en="reduce_lr_on_plateau: evaluations without improvement before reducing.",
        zh="reduce_lr_on_plateau：连续多少次评估没有提升后降低学习率。",
        ge=0,
    )
    plateau_min_lr: float = field(
        0.0, en="reduce_lr_on_plateau: lowest learning rate.", zh="reduce_lr_on_plateau：学习率下限。", ge=0
    )
    warmup_ratio: float = field(
        0.0,
        en="Share of steps spent warming the learning rate up from 0.",
        zh="学习率从 0 预热所占的步数比例。",
        ge=0,
        lt=1,
    )
    warmup_steps: int = field(
        0,
        en="Warm-up steps (overrides warmup_ratio when > 0).",
        zh="预热步数（大于 0 时覆盖 warmup_ratio）。",
        ge=0,
    )
    weight_decay: float = field(0.0, en="Decoupled weight decay.", zh="解耦权重衰减。", ge=0)
    max_grad_norm: float = field(
        1.0,
        en="Clip the gradient norm to this value (0 disables clipping).",
        zh="把梯度范数裁剪到该值（0 表示不裁剪）。",
        ge=0,
    )
    optim: Literal[
        "adamw_torch",
        "adamw_torch_fused",
        "adam",
        "sgd",
        "adafactor",
        "adamw_8bit",
        "paged_adamw_8bit",
        "paged_adamw_32bit",
    ] = field(
        "adamw_torch",
        en="Optimizer; adamw_* exclude biases and norm weights from weight decay; *_8bit/paged_* need "
        "bitsandbytes and a CUDA GPU.",
        zh="优化器；adamw_* 不对偏置和归一化权重做权重衰减；*_8bit/paged_* 需要 bitsandbytes 和 CUDA GPU。",
    )
    sgd_momentum: float = field(0.9, en="SGD momentum.", zh="SGD 动量。", ge=0, lt=1)
    sgd_nesterov: bool = field(False, en="Use Nesterov momentum with sgd.", zh="sgd 使用 Nesterov 动量。")
    adam_beta1: float = field(
        0.9,
        en="Adam beta1: decay of the gradient moving average.",
        zh="Adam beta1：梯度滑动平均的衰减系数。",
        ge=0,
        lt=1,
    )
    adam_beta2: float = field(
        0.999,
        en="Adam beta2: decay of the squared-gradient moving average.",
        zh="Adam beta2：梯度平方滑动平均的衰减系数。",
        ge=0,
        lt=1,
    )
    adam_epsilon: float = field(
        1e-8,
        en="Adam epsilon: keeps the update finite where gradients are tiny.",
        zh="Adam epsilon：梯度极小时保持更新有限的常数。",
        gt=0,
    )
    bf16: bool = field(
        False,
        en="Train in bfloat16 (same as compute_type: bf16).",
        zh="以 bfloat16 训练（等同 compute_type: bf16）。",
    )
    fp16: bool = field(
        False,
        en="Train in float16 with loss scaling (same as compute_type: fp16).",
        zh="以 float16 加损失缩放训练（等同 compute_type: fp16）。",
    )
    gradient_checkpointing: bool = field(
        False,
        en="Recompute activations in the backward pass: less memory, ~30% slower.",
        zh="反向传播时重算激活值：更省显存，约慢 30%。",
    )
    seed: int = field(
        42, en="Random seed for data order and initialisation.", zh="数据顺序和初始化的随机种子。"
    )
    eval_strategy: Literal["no", "steps", "epoch"] = field(
        "no",
        en="When to evaluate: no, every eval_steps, or every epoch.",
        zh="何时评估：不评估、每 eval_steps 步、或每轮。",
    )
    eval_steps: int | None = field(
        None,
        en="Evaluate every N steps (default: logging_steps).",
        zh="每 N 步评估一次（默认等于 logging_steps）。",
        gt=0,
    )

    @field_validator("eval_strategy", mode="before")
    @classmethod
    def _yaml_no(cls, value: object) -> object:
        """YAML 1.1 reads a bare ``no`` as false: ``eval_strategy: no`` means "no", as in transformers."""
        return "no" if value is False else value

    metric_for_best_model: str = field(
        "eval_loss",
        en="Evaluation metric that defines the best checkpoint (and drives reduce_lr_on_plateau).",
        zh="定义最佳检查点的评估指标（也用于 reduce_lr_on_plateau）。",
    )
    greater_is_better: bool | None = field(
        None,
        en="Whether a higher metric_for_best_model is better; default: false for losses, true otherwise.",
        zh="metric_for_best_model 是否越高越好；默认：损失类为 false，其余为 true。",
    )
    load_best_model_at_end: bool = field(
        False,
        en="At the end, load the best checkpoint's weights instead of the last ones.",
        zh="训练结束时加载最佳检查点的权重，而不是最后的权重。",
    )
    neftune_noise_alpha: float | None = field(
        None,
        en="NEFTune: add uniform noise of this scale to input embeddings during training (5 is typical).",
        zh="NEFTune：训练时向输入嵌入加入该强度的均匀噪声（常用 5）。",
        gt=0,
    )
    resume_from_checkpoint: str | None = field(
        None,
        en="Checkpoint directory to resume from, or 'auto' for the run's latest checkpoint.",
        zh="从该检查点目录恢复训练；'auto' 表示使用本次运行最新的检查点。",
    )
    dataloader_num_workers: int = field(0, en="Data-loading worker processes.", zh="数据加载进程数。", ge=0)
    torch_compile: bool = field(
        False,
        en="Compile the model with torch.compile (inductor; on CPU it needs a C compiler). Pays on long "
        "runs with fixed shapes; see docs/benchmarks.md for when it did here.",
        zh="用 torch.compile（inductor）编译模型（CPU 上需要 C 编译器）。适合形状固定的长时间训练；"
        "何时有收益见 docs/benchmarks.md。",
    )
    do_train: bool = field(
        True,
        en="train: train the model; false with do_eval/do_predict only evaluates/predicts (as in LLaMA-Factory); "
        "unset: true unless do_eval or do_predict is set.",
        zh="train：训练模型；为 false 且设置 do_eval/do_predict 时只做评估/预测（与 LLaMA-Factory 相同）；"
        "未设置时：除非设置了 do_eval 或 do_predict，否则为 true。",
    )
    do_eval: bool = field(
        False,
        en="train: after training, evaluate on the evaluation split (loss, perplexity) into <run>/eval.",
        zh="train：训练结束后在评估划分上评估（损失、困惑度），结果写入 <运行目录>/eval。",
    )
    do_predict: bool = field(
        False,
        en="train: after training, generate answers for the evaluation split (with predict_with_generate), "
        "as `tunelab eval --predict` does, into <run>/eval/generated_predictions.jsonl.",
        zh="train：训练结束后为评估划分生成回答（需 predict_with_generate），与 `tunelab eval --predict` 相同，"
        "写入 <运行目录>/eval/generated_predictions.jsonl。",
    )
    ddp_timeout: int = field(
        1800,
        en="Seconds a distributed process waits for the others.",
        zh="分布式进程等待其他进程的秒数。",
        gt=0,
    )

    deepspeed: str | None = field(
        None,
        en=f"DeepSpeed: a JSON config path, or a preset ({', '.join(DEEPSPEED_PRESETS)}); "
        "'auto' values are filled from this config. Needs `pip install deepspeed`.",
        zh=f"DeepSpeed：JSON 配置文件路径，或预设（{', '.join(DEEPSPEED_PRESETS)}）；"
        "其中的 'auto' 值由本配置填充。需要 `pip install deepspeed`。",
    )
    fsdp: bool | str | None = field(
        None,
        en="PyTorch FSDP: true, or options such as 'full_shard auto_wrap' (as in HF TrainingArguments).",
        zh="PyTorch FSDP：true，或 'full_shard auto_wrap' 等选项（与 HF TrainingArguments 相同）。",
    )
    fsdp_config: dict[str, Any] | str | None = field(
        None,
        en="FSDP settings (a mapping or a JSON path): version (2 = FSDP2), state_dict_type, cpu_offload, ...",
        zh="FSDP 设置（映射或 JSON 路径）：version（2 即 FSDP2）、state_dict_type、cpu_offload 等。",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_do_train(cls, data: object) -> object:
        """LLaMA-Factory's meaning: a config with do_eval/do_predict and no do_train only evaluates."""
        if (
            isinstance(data, dict)
            and "do_train" not in data
            and (data.get("do_eval") or data.get("do_predict"))
        ):
            return {**data, "do_train": False}
        return data

    @model_validator(mode="after")
    def _check_precision(self) -> TrainingArgs:
        if self.bf16 and self.fp16:
            raise ValueError("bf16 and fp16 are both true; choose one (or set compute_type)")
        return self

    @field_validator("fsdp", mode="before")
    @classmethod
    def _fsdp_flag(cls, value: object) -> object:
        """`fsdp=true` on the command line arrives as a string: the flag, not an option named 'true'."""
        if isinstance(value, str) and value.strip().lower() in ("true", "false", ""):
            return value.strip().lower() == "true"
        return value

    @model_validator(mode="after")
    def _check_engines(self) -> TrainingArgs:
        """DeepSpeed and FSDP each shard the model their own way: one at a time, with valid settings."""
        if self.deepspeed and self.fsdp:
            raise ValueError("deepspeed and fsdp are both set; choose one sharding engine")
        if self.deepspeed:
            check_deepspeed(self.deepspeed, optim=self.optim)
        check_fsdp(self.fsdp, self.fsdp_config)
        return self

    @property
    def best_metric_higher(self) -> bool:
        """greater_is_better, or its default from the metric's name."""
        if self.greater_is_better is not None:
            return self.greater_is_better
        return not ("loss" in self.metric_for_best_model or "perplexity" in self.metric_for_best_model)


class GenerationArgs(Group):
    """How the model generates text (eval, chat, demo before/after)."""

    max_new_tokens: int = field(
        1024, en="Maximum tokens generated per answer.", zh="每次回答最多生成的 token 数。", gt=0
    )
    do_sample: bool = field(True, en="Sample instead of greedy decoding.", zh="采样解码而非贪心解码。")
    temperature: float = field(
        0.95, en="Sampling temperature (with do_sample).", zh="采样温度（需开启 do_sample）。", gt=0
    )
    top_p: float = field(0.7, en="Nucleus sampling probability mass.", zh="核采样的概率质量。", gt=0, le=1)
    top_k: int = field(
        50, en="Sample only from the k most likely tokens.", zh="只从概率最高的 k 个 token 中采样。", ge=0
    )
    num_beams: int = field(
        1, en="Beam-search width (1 = no beam search).", zh="束搜索宽度（1 表示不用束搜索）。", gt=0
    )
    repetition_penalty: float = field(
        1.0, en="Penalty > 1 discourages repeating tokens.", zh="大于 1 时抑制重复 token。", gt=0
    )


class OutputArgs(Group):
    """Where the run directory goes and what is written into it."""

    output_dir: str | None = field(
        None,
        en="Run directory; default runs/<stage>-<finetuning_type>-<time>.",
        zh="运行目录；默认 runs/<阶段>-<微调类型>-<时间>。",
    )
    overwrite_output_dir: bool = field(
        False,
        en="Allow training into a run directory that already holds a finished run.",
        zh="允许在已有完成结果的运行目录中重新训练。",
    )
    logging_steps: int = field(
        10, en="Write a trainer_log.jsonl row every N steps.", zh="每 N 步写一行 trainer_log.jsonl。", gt=0
    )
    save_strategy: Literal["steps", "epoch"] = field(
        "steps",
        en="When to save checkpoints: every save_steps, or every epoch.",
        zh="何时保存检查点：每 save_steps 步，或每轮。",
    )
    save_steps: int = field(
        500, en="Save a resumable checkpoint every N steps.", zh="每 N 步保存一个可恢复的检查点。", gt=0
    )
    save_total_limit: int | None = field(
        None,
        en="Keep at most N checkpoints (oldest removed first).",
        zh="最多保留 N 个检查点（先删除最旧的）。",
        gt=0,
    )
    save_only_model: bool = field(
        False,
        en="Save weights only in checkpoints (smaller, but not resumable).",
        zh="检查点只保存权重（更小，但无法恢复训练）。",
    )
    plot_loss: bool = field(True, en="Write plots/loss.png and friends.", zh="生成 plots/loss.png 等图表。")
    report_to: list[str] = field(
        ["none"],
        en="Logging integrations: none, tensorboard, wandb, mlflow.",
        zh="日志集成：none、tensorboard、wandb、mlflow。",
    )
    disable_tqdm: bool = field(False, en="Hide the progress display.", zh="隐藏进度显示。")
    run_name: str | None = field(
        None,
        en="Name of the run in report_to integrations (wandb, mlflow, tensorboard); default: the run directory's name.",
        zh="在 report_to 集成（wandb、mlflow、tensorboard）中显示的运行名；默认为运行目录名。",
    )

    _split_report = field_validator("report_to", mode="before")(lambda cls, v: split_csv(v))

    @field_validator("report_to")
    @classmethod
    def _check_report_to(cls, value: list[str]) -> list[str]:
        allowed = {"none", "tensorboard", "wandb", "mlflow"}
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ValueError(f"unknown report_to {bad}; choose from {sorted(allowed)}")
        return value
