"""Stage ``kd``: knowledge distillation of a teacher's token distributions into the student.

The student trains on the sft data (same templates, masking and cutoff as stage sft); on every
response token its softened distribution is pulled towards the teacher's (kd_loss, kd_temperature,
kd_topk), mixed with the ordinary cross-entropy by kd_alpha; see :mod:`tunelab.train.kd_loss` and
:mod:`tunelab.train.kd_trainer`. The teacher is loaded frozen (``teacher_model_name_or_path``) or
replaced by its stored top-k log-probs (``kd_teacher_cache``, from `tunelab data teacher-logits`).
``kd_on_policy_ratio`` makes that share of steps on-policy (GKD): the student answers the prompts and
the teacher scores its tokens (:mod:`tunelab.train.kd_on_policy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab import distributed
from tunelab.config import RunConfig, dump_config
from tunelab.data.collator import build_collator
from tunelab.data.pipeline import build_datasets
from tunelab.infer.teacher import check_shared_vocabulary, load_teacher, teacher_name
from tunelab.model import count_parameters, load_model_for_training, load_tokenizer
from tunelab.runs.rundir import RunDir
from tunelab.train.builders import build_callbacks, build_training_arguments, drop_default_printers
from tunelab.train.context import RunContext
from tunelab.train.kd_health import KDFlatLossCallback
from tunelab.train.kd_on_policy import OnPolicySampler
from tunelab.train.kd_trainer import KDTrainer
from tunelab.train.runner import RunResult, run_trainer

__all__ = ["KD_EVAL_METRICS", "run_kd"]

KD_EVAL_METRICS = ("loss", "kd_loss", "ce_loss", "perplexity", "top1_agreement")


def run_kd(config: RunConfig, run: RunDir, ctx: RunContext, resume_from: Path | None) -> RunResult:
    """Load the student and the teacher (or its cache), build, train and save a kd run."""
    if config.kd.kd_student_init:  # the student is built from the teacher's layers, into the run directory
        from tunelab.train.student_init import prepare_student

        config = prepare_student(
            config, run.path, resuming=resume_from is not None, event=run.write_event, say=ctx.say
        )
        run.write_config(dump_config(config))  # eval, chat, export and resume load this student as the base
    tokenizer = load_tokenizer(config.model)
    model = load_model_for_training(config, ctx.compute_dtype)
    trainable, total = count_parameters(model)
    ctx.say(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.3f}%)")

    train_set, eval_set, stats = build_datasets(config, tokenizer)
    ctx.say(stats.describe())
    teacher, cache, n_vocab = _teacher(config, tokenizer, model, ctx)
    if cache is not None:
        cache.check_data({"train": train_set, "eval": eval_set})
        train_set = train_set.add_column("kd_row", list(range(len(train_set))))
    if (
        eval_set is not None
    ):  # the cache's rows; also how eval counts each sample once under several processes
        eval_set = eval_set.add_column("kd_row", list(range(len(eval_set))))

    args = build_training_arguments(
        config, run.path, ctx.compute_dtype, eval_metrics=KD_EVAL_METRICS, has_eval_set=eval_set is not None
    )
    callbacks, stop = build_callbacks(config, run)
    if config.health.enabled:
        callbacks.append(KDFlatLossCallback(run, say=ctx.say))
    callbacks.extend(ctx.callbacks)
    trainer = KDTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=_KDCollator(build_collator(tokenizer, packing=False)),
        processing_class=tokenizer,
        callbacks=callbacks,
        training=config.training,
        finetuning=config.finetuning,
        run=run,
        kd=config.kd,
        n_shared_vocab=n_vocab,
        teacher=teacher,
        cache=cache,
        on_policy=_on_policy(config, tokenizer, ctx),
    )
    drop_default_printers(trainer)
    kd = config.kd
    extra = ctx.run_metrics(trainable, total, stats, teacher=teacher_name(config), kd_loss_type=kd.kd_loss)
    card = {
        "base_model": config.model.model_name_or_path,
        "stage": "kd",
        "teacher": teacher_name(config),
        "kd_loss": f"{kd.kd_loss} (T={kd.kd_temperature}, alpha={kd.kd_alpha}, top-k={kd.kd_topk or 'all'}, "
        f"on-policy share={kd.kd_on_policy_ratio})",
        "finetuning_type": config.finetuning.finetuning_type,
        "datasets": ",".join(config.data.dataset or []),
        "template": config.data.template or "(tokenizer's own)",
        "cutoff_len": config.data.cutoff_len,
        "learning_rate": config.training.learning_rate,
        "trainable_params": f"{trainable:,} / {total:,}",
    }
    if kd.kd_student_init:
        card["student_init"] = f"{kd.kd_student_init} of the teacher's layers"
    return run_trainer(
        trainer, run, stop, resume_from=resume_from, extra_metrics=extra, card_info=card, perplexity=False
    )


def _teacher(config: RunConfig, tokenizer: Any, student: Any, ctx: RunContext) -> tuple[Any, Any, int]:
    """(frozen teacher model or None, teacher cache or None, shared vocabulary rows)."""
    student_rows = student.get_output_embeddings().weight.shape[0]
    if config.kd.kd_teacher_cache:
        from tunelab.train.teacher_cache import TeacherCache

        cache = TeacherCache.open(config.kd.kd_teacher_cache)
        cache.check_config(config, tokenizer)
        ctx.say(f"teacher: cached top-{cache.topk} log-probs of {cache.teacher} in {cache.path}")
        return None, cache, student_rows
    with (
        distributed.main_process_first()
    ):  # rank 0 builds or converts a tiny/GGUF teacher, the others reuse it
        engine = load_teacher(config)
    teacher = engine.model.to(next(student.parameters()).device)
    n_vocab = check_shared_vocabulary(
        tokenizer,
        engine.tokenizer,
        student_rows=student_rows,
        teacher_rows=teacher.get_output_embeddings().weight.shape[0],
        student_name=config.model.model_name_or_path,
        teacher_name=teacher_name(config),
    )
    t_params = sum(p.numel() for p in teacher.parameters())
    ctx.say(f"teacher: {teacher_name(config)} ({t_params:,} parameters, frozen)")
    return teacher, None, n_vocab


def _on_policy(config: RunConfig, tokenizer: Any, ctx: RunContext) -> OnPolicySampler | None:
    """The sampler of on-policy steps, or None when kd_on_policy_ratio is 0 (every step off-policy)."""
    kd, g = config.kd, config.generation
    if kd.kd_on_policy_ratio == 0:
        return None
    from tunelab.data.template import template_for
    from tunelab.train.preference import pad_token_id

    sampling = f"temperature={g.temperature}, top_p={g.top_p}, top_k={g.top_k}" if g.do_sample else "greedy"
    ctx.say(
        f"kd: {kd.kd_on_policy_ratio:.0%} of steps on-policy: the student answers the prompts "
        f"(at most {kd.kd_max_new_tokens} new tokens, {sampling}) and the teacher scores its tokens"
    )
    return OnPolicySampler(
        ratio=kd.kd_on_policy_ratio,
        seed=config.training.seed,
        generation=g,
        max_new_tokens=kd.kd_max_new_tokens,
        cutoff_len=config.data.cutoff_len,
        stop_ids=tuple(template_for(config.data, tokenizer).stop_token_ids(tokenizer)),
        pad_token_id=pad_token_id(tokenizer),
    )


class _KDCollator:
    """The sft collator, passing each row's ``kd_row`` (its index in the teacher cache) through."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        batch = self.base([{k: v for k, v in f.items() if k != "kd_row"} for f in features])
        if "kd_row" in features[0]:
            batch["kd_row"] = torch.tensor([f["kd_row"] for f in features], dtype=torch.long)
        return batch
