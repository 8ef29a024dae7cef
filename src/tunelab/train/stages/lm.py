"""Stages ``pt`` and ``sft``: causal language modelling on the plain transformers Trainer.

The two stages differ only in how records become tokens (whole text vs. prompt-masked
conversations), which the data pipeline decides from ``stage``; the trainer is the same.
The plain Trainer is used instead of TRL's SFTTrainer because it was measured faster on the
same work (see DESIGN.md) and our pipeline already does templating, masking and packing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.compat.transformers import attn_implementation
from tunelab.config import RunConfig
from tunelab.data.collator import build_collator
from tunelab.data.packing import packing_mode
from tunelab.data.pipeline import build_datasets
from tunelab.data.tokenized_cache import has_tokenized_data
from tunelab.distributed import prepare_once
from tunelab.errors import ConfigError
from tunelab.model import count_parameters, load_model_for_training, load_tokenizer
from tunelab.model.shift_attn import N_GROUPS
from tunelab.runs.rundir import RunDir
from tunelab.train.builders import build_callbacks, build_training_arguments, drop_default_printers
from tunelab.train.context import RunContext
from tunelab.train.loss import install_training_loss
from tunelab.train.losses import build_token_loss, custom_token_loss
from tunelab.train.runner import RunResult, run_trainer
from tunelab.train.trainer import TunelabTrainer

__all__ = ["run_lm"]


def run_lm(config: RunConfig, run: RunDir, ctx: RunContext, resume_from: Path | None) -> RunResult:
    """Load, build, train and save a pt or sft run; see the module docstring."""
    tokenizer = load_tokenizer(config.model)
    model = load_model_for_training(config, ctx.compute_dtype)
    flatten = _packing_layout(config, attn_implementation(model.config))
    # Unsloth brings its own fused loss; DFT/EAFT/ASFT weigh each token's loss from the logits
    if not config.model.use_unsloth and not custom_token_loss(config.finetuning):
        ctx.say(install_training_loss(model, config.model.loss_kernel))
    trainable, total = count_parameters(model)
    ctx.say(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.3f}%)")

    reused = bool(config.data.tokenized_path) and has_tokenized_data(config.data.tokenized_path)
    train_set, eval_set, stats = prepare_once(build_datasets, config, tokenizer)
    if config.data.tokenized_path:
        verb = "loaded from" if reused else "saved to"
        run.write_event(
            "tokenized_path",
            f"tokenized datasets {verb} {config.data.tokenized_path}",
            reused=reused,
            message_zh=f"分词后的数据集{'读取自' if reused else '已保存到'} {config.data.tokenized_path}",
        )
        ctx.say(
            f"tokenized datasets {verb} {config.data.tokenized_path}"
            + (" (data keys not read)" if reused else "")
        )
    ctx.say(stats.describe())

    args = build_training_arguments(config, run.path, ctx.compute_dtype)
    callbacks, stop = build_callbacks(config, run)
    callbacks.extend(ctx.callbacks)
    trainer_class, loss_kwargs = _loss_setup(config, model)
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=build_collator(
            tokenizer,
            packing=config.data.packing,
            flatten=flatten,
            pad_to_multiple_of=N_GROUPS if config.model.shift_attn else None,  # S²-Attn's 4 equal groups
        ),
        processing_class=tokenizer,
        callbacks=callbacks,
        training=config.training,
        finetuning=config.finetuning,
        run=run,
        **loss_kwargs,
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
        "effective_batch": ctx.global_batch_size,
        "trainable_params": f"{trainable:,} / {total:,}",
    }
    return run_trainer(
        trainer,
        run,
        stop,
        resume_from=resume_from,
        extra_metrics=extra,
        card_info=card,
        perplexity=not custom_token_loss(config.finetuning),  # a DFT/EAFT/ASFT eval_loss is no NLL
    )


def _loss_setup(config: RunConfig, model: Any) -> tuple[type[TunelabTrainer], dict[str, Any]]:
    """The trainer class and its loss arguments: plain cross-entropy, DFT/EAFT, or ASFT (train/losses.py)."""
    f = config.finetuning
    if f.use_asft_loss:
        from tunelab.train.asft import AnchoredSFTTrainer, frozen_reference
        from tunelab.train.preference import uses_adapter_reference

        adapter_off = uses_adapter_reference(config) or (
            f.finetuning_type == "oft" and not config.model.adapter_name_or_path
        )
        reference = None if adapter_off else frozen_reference(model)
        return AnchoredSFTTrainer, {"asft_alpha": f.asft_alpha, "reference": reference}
    return TunelabTrainer, {"compute_loss_func": build_token_loss(f)}


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
