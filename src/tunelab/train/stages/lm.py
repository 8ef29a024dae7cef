"""Stages ``pt`` and ``sft``: causal language modelling on the plain transformers Trainer.

The two stages differ only in how records become tokens (whole text vs. prompt-masked
conversations), which the data pipeline decides from ``stage``; the trainer is the same.
The plain Trainer is used instead of TRL's SFTTrainer because it was measured faster on the
same work (see DESIGN.md) and our pipeline already does templating, masking and packing.
"""

from __future__ import annotations

from pathlib import Path

from tunelab.compat.transformers import attn_implementation
from tunelab.config import RunConfig
from tunelab.data.collator import build_collator
from tunelab.data.packing import packing_mode
from tunelab.data.pipeline import build_datasets
from tunelab.errors import ConfigError
from tunelab.model import count_parameters, load_model_for_training, load_tokenizer
from tunelab.runs.rundir import RunDir
from tunelab.train.builders import build_callbacks, build_training_arguments, drop_default_printers
from tunelab.train.context import RunContext
from tunelab.train.runner import RunResult, run_trainer
from tunelab.train.trainer import TunelabTrainer

__all__ = ["run_lm"]


def run_lm(config: RunConfig, run: RunDir, ctx: RunContext, resume_from: Path | None) -> RunResult:
    """Load, build, train and save a pt or sft run; see the module docstring."""
    tokenizer = load_tokenizer(config.model)
    model = load_model_for_training(config, ctx.compute_dtype)
    flatten = _packing_layout(config, attn_implementation(model.config))
    trainable, total = count_parameters(model)
    ctx.say(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.3f}%)")

    train_set, eval_set, stats = build_datasets(config, tokenizer)
    ctx.say(stats.describe())

    args = build_training_arguments(config, run.path, ctx.compute_dtype)
    callbacks, stop = build_callbacks(config, run)
    callbacks.extend(ctx.callbacks)
    trainer = TunelabTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=build_collator(tokenizer, packing=config.data.packing, flatten=flatten),
        processing_class=tokenizer,
        callbacks=callbacks,
        training=config.training,
        finetuning=config.finetuning,
        run=run,
    )
    drop_default_printers(trainer)
    extra = ctx.run_metrics(trainable, total, stats)
    card = {
        "base_model": config.model.model_name_or_path,
        "stage": config.finetuning.stage,
        "finetuning_type": config.finetuning.finetuning_type,
        "datasets": ",".join(config.data.dataset or []),
        "template": config.data.template or "(tokenizer's own)",
        "cutoff_len": config.data.cutoff_len,
        "learning_rate": config.training.learning_rate,
        "effective_batch": config.training.per_device_train_batch_size
        * config.training.gradient_accumulation_steps,
        "trainable_params": f"{trainable:,} / {total:,}",
    }
    return run_trainer(trainer, run, stop, resume_from=resume_from, extra_metrics=extra, card_info=card)


def _packing_layout(config: RunConfig, attn_implementation: str) -> bool:
    """Whether packed batches must be flattened into one row (flash-attention); refuse unsafe packing."""
    if not config.data.packing:
        return False
    mode = packing_mode(attn_implementation)
    if mode is None:
        raise ConfigError(
            f"packing=true is not safe with attention implementation {attn_implementation!r}: "
            "packed samples would attend to each other",
            "set flash_attn=sdpa (or fa2), or use packing=false with group_by_length=true",
        )
    return mode == "flatten"
