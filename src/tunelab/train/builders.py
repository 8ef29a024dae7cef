"""Shared builders every stage assembles its trainer from: arguments and callbacks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainingArguments

from tunelab.config import RunConfig
from tunelab.config.rules import Problem, config_problems, eval_save_problems
from tunelab.errors import ConfigError
from tunelab.runs.rundir import RunDir
from tunelab.train.callbacks import GracefulStopCallback, ProgressCallback, RunLogCallback
from tunelab.train.engines import engine_arguments
from tunelab.train.integrations import resolve_report_to

__all__ = ["build_callbacks", "build_training_arguments", "drop_default_printers"]


# lr_scheduler_type values TrainingArguments accepts; the schedule itself is built by
# TunelabTrainer.create_scheduler (train/schedule.py), so for the others (step) any valid name does
_HF_SCHEDULERS = frozenset(
    "constant constant_with_warmup linear cosine cosine_with_restarts polynomial inverse_sqrt "
    "reduce_lr_on_plateau".split()
)


def build_training_arguments(
    config: RunConfig,
    output_dir: Path,
    compute_dtype: torch.dtype,
    *,
    eval_metrics: Sequence[str] = ("loss",),
    has_eval_set: bool | None = None,
    **overrides: Any,
) -> TrainingArguments:
    """Map the validated config onto HF TrainingArguments (names are the same by design).

    ``eval_metrics`` names what the stage's evaluation reports (without ``eval_``), so a
    metric_for_best_model it cannot compute fails now instead of at the first evaluation;
    ``has_eval_set=False`` says the evaluation split came out empty. Settings that cannot work
    together raise one ConfigError listing all of them, instead of transformers' ValueError.
    """
    t, o = config.training, config.output
    # the config's own rules (config.validate ran them already for configs loaded from YAML)
    problems = eval_save_problems(config, eval_metrics)
    if has_eval_set is False and t.eval_strategy != "no":
        problems.append(
            Problem(
                "eval_strategy",
                f"eval_strategy={t.eval_strategy}, but the evaluation split is empty after tokenization",
                "raise val_size, check eval_dataset's records (too long for cutoff_len? no response?), "
                "or set eval_strategy=no",
            )
        )
    if problems:
        raise ConfigError("; ".join(p.message for p in problems), "; ".join(p.hint for p in problems))

    use_cuda = torch.cuda.is_available()
    warmup: float = t.warmup_steps if t.warmup_steps > 0 else t.warmup_ratio
    evaluates = t.eval_strategy != "no"
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        lr_scheduler_type=t.lr_scheduler_type if t.lr_scheduler_type in _HF_SCHEDULERS else "constant",
        warmup_steps=warmup,
        weight_decay=t.weight_decay,
        # layer-wise GaLore/APOLLO steps inside backward: no global norm to clip (train/optim_layerwise.py)
        max_grad_norm=0.0 if config.finetuning.steps_in_backward else t.max_grad_norm,
        optim=t.optim,
        adam_beta1=t.adam_beta1,
        adam_beta2=t.adam_beta2,
        adam_epsilon=t.adam_epsilon,
        # bf16/fp16 = autocast; fp16 also gets the Trainer's dynamic loss scaling (GradScaler);
        # pure_bf16: the weights themselves are bf16, so there is nothing to autocast (no AMP)
        bf16=compute_dtype == torch.bfloat16 and not config.finetuning.pure_bf16,
        fp16=compute_dtype == torch.float16,
        use_cpu=not use_cuda,
        activation_checkpointing=t.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        seed=t.seed,
        eval_strategy=t.eval_strategy,
        eval_steps=(t.eval_steps or o.logging_steps) if t.eval_strategy == "steps" else None,
        # with a metric set, every evaluation records the best checkpoint, which checkpoint
        # rotation (save_total_limit) then never deletes, with or without load_best_model_at_end
        metric_for_best_model=t.metric_for_best_model if evaluates else None,
        greater_is_better=t.best_metric_higher if evaluates else None,
        load_best_model_at_end=t.load_best_model_at_end,
        logging_steps=o.logging_steps,
        logging_first_step=False,
        save_strategy=o.save_strategy,
        save_steps=o.save_steps,
        save_total_limit=o.save_total_limit,
        save_only_model=o.save_only_model,
        neftune_noise_alpha=t.neftune_noise_alpha,
        report_to=resolve_report_to(o.report_to) or "none",
        run_name=o.run_name or output_dir.name,
        disable_tqdm=True,  # our ProgressCallback replaces tqdm
        dataloader_num_workers=t.dataloader_num_workers,
        torch_compile=t.torch_compile,
        use_liger_kernel=config.model.enable_liger_kernel,  # checked by train.boosters before loading
        train_sampling_strategy="group_by_length" if config.data.group_by_length else "random",
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,  # our collators build exactly the inputs the model takes
        ddp_timeout=t.ddp_timeout,
        # every trainable parameter takes part in every step (LoRA, freeze, full): DDP need not search
        # the graph for unused ones, which with gradient checkpointing fails with "mark a variable
        # ready only once"; stages with parameters a step may skip pass True
        ddp_find_unused_parameters=False,
        prediction_loss_only=True,
        do_eval=evaluates,
    )
    kwargs.update(
        engine_arguments(t, use_cuda=use_cuda, half_precision=compute_dtype != torch.float32)
    )  # DeepSpeed / FSDP, when configured
    kwargs.update(overrides)
    return TrainingArguments(**kwargs)


def build_callbacks(
    config: RunConfig, run: RunDir, *, lang: str | None = None, console: Any = None
) -> tuple[list[Any], GracefulStopCallback]:
    """Run-directory logging, graceful stop, progress display, health monitor and early stopping.

    The monitor and early stopping print in ``lang`` ('en'/'zh'; default: TUNELAB_LANG/LANG) to the progress display's console
    when there is one (messages land above the bar), else to ``console`` (default: stderr), and stop
    the run through ``control.should_training_stop``; after training, their ``stop_reason`` says why.
    """
    from tunelab.cli_text import cli_lang
    from tunelab.train.early_stopping import EarlyStopCallback
    from tunelab.train.monitor import HealthMonitor
    from tunelab.train.world import WorldRecordCallback

    lang = lang or cli_lang()

    from tunelab.train.losses import custom_token_loss

    # other stages' eval_loss is no token NLL, nor is the DFT/EAFT/ASFT loss
    perplexity = config.finetuning.stage in ("pt", "sft") and not custom_token_loss(config.finetuning)
    # in a multi-process run only the writer (rank 0) logs, plots and shows progress
    log = RunLogCallback(run, plot=config.output.plot_loss and run.writer, perplexity=perplexity)
    stop = GracefulStopCallback()
    callbacks: list[Any] = [log, stop, WorldRecordCallback(config)]
    if not config.output.disable_tqdm and run.writer:
        callbacks.append(ProgressCallback(log))
        console = callbacks[-1].console  # printing through the bar's console keeps the bar intact
    if config.health.enabled:
        lr = config.training.learning_rate
        callbacks.append(HealthMonitor(config.health, run, learning_rate=lr, lang=lang, console=console))
    if config.early_stopping.enabled:
        for problem in config_problems(config):  # config.validate runs these where the config is built
            if problem.key == "early_stopping":
                raise ConfigError(problem.message, problem.hint)
        callbacks.append(EarlyStopCallback(config.early_stopping, run, lang=lang, console=console))
    return callbacks, stop


def drop_default_printers(trainer: Any) -> None:
    """Remove transformers' own console printers: ours show the same numbers once, formatted.

    (transformers' PrinterCallback also turns the logged floats into strings in place.)
    """
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_callback import ProgressCallback as HFProgress

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(HFProgress)
