"""Shared builders every stage assembles its trainer from: arguments, optimizer, callbacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import TrainingArguments

from tunelab.config import RunConfig
from tunelab.runs.rundir import RunDir
from tunelab.train.callbacks import GracefulStopCallback, ProgressCallback, RunLogCallback

__all__ = ["build_callbacks", "build_optimizer", "build_training_arguments", "drop_default_printers"]


def build_training_arguments(
    config: RunConfig, output_dir: Path, compute_dtype: torch.dtype, **overrides: Any
) -> TrainingArguments:
    """Map the validated config onto HF TrainingArguments (names are the same by design)."""
    t, o = config.training, config.output
    use_cuda = torch.cuda.is_available()
    warmup: float = t.warmup_steps if t.warmup_steps > 0 else t.warmup_ratio
    has_eval = t.eval_strategy != "no"
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        lr_scheduler_type=t.lr_scheduler_type,
        warmup_steps=warmup,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=t.optim,
        adam_beta1=t.adam_beta1,
        adam_beta2=t.adam_beta2,
        adam_epsilon=t.adam_epsilon,
        bf16=compute_dtype == torch.bfloat16,
        fp16=compute_dtype == torch.float16,
        use_cpu=not use_cuda,
        activation_checkpointing=t.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        seed=t.seed,
        eval_strategy=t.eval_strategy,
        eval_steps=(t.eval_steps or o.logging_steps) if t.eval_strategy == "steps" else None,
        logging_steps=o.logging_steps,
        logging_first_step=False,
        save_strategy="steps",
        save_steps=o.save_steps,
        save_total_limit=o.save_total_limit,
        save_only_model=o.save_only_model,
        report_to=[r for r in o.report_to if r != "none"] or "none",
        disable_tqdm=True,  # our ProgressCallback replaces tqdm
        dataloader_num_workers=t.dataloader_num_workers,
        train_sampling_strategy="group_by_length" if config.data.group_by_length else "random",
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,  # our collators build exactly the inputs the model takes
        ddp_timeout=t.ddp_timeout,
        prediction_loss_only=True,
        do_eval=has_eval,
    )
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def build_optimizer(model: torch.nn.Module, config: RunConfig) -> torch.optim.Optimizer | None:
    """A LoRA+ optimizer when loraplus_lr_ratio is set; None lets the Trainer build its default.

    LoRA+ (Hayou et al., 2024) gives the B matrices a larger learning rate than A, which speeds up
    feature learning at the same stability; the Trainer has no option for it, so it is built here.
    """
    ratio = config.finetuning.loraplus_lr_ratio
    if ratio is None or config.finetuning.finetuning_type != "lora":
        return None
    from tunelab.model.adapters import build_loraplus_param_groups

    t = config.training
    groups = build_loraplus_param_groups(model, t.learning_rate, ratio, t.weight_decay)
    return torch.optim.AdamW(
        groups, lr=t.learning_rate, betas=(t.adam_beta1, t.adam_beta2), eps=t.adam_epsilon
    )


def build_callbacks(config: RunConfig, run: RunDir) -> tuple[list[Any], GracefulStopCallback]:
    """Run-directory logging, progress display and graceful stop, in that order."""
    log = RunLogCallback(run, plot=config.output.plot_loss)
    stop = GracefulStopCallback()
    callbacks: list[Any] = [log, stop]
    if not config.output.disable_tqdm:
        callbacks.append(ProgressCallback(log))
    return callbacks, stop


def drop_default_printers(trainer: Any) -> None:
    """Remove transformers' own console printers: ours show the same numbers once, formatted.

    (transformers' PrinterCallback also turns the logged floats into strings in place.)
    """
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_callback import ProgressCallback as HFProgress

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(HFProgress)
