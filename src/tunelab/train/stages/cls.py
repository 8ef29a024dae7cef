"""Stage ``cls``: sequence classification with an encoder (BERT, MiniLM) or a causal LM plus a head.

The story: records (text + label) -> label map -> tokenizer and tokenized train/val/test splits ->
classifier with LoRA/freeze/full -> TunelabTrainer (weighted cross-entropy when class_weights is
balanced; accuracy and macro precision/recall/F1 at every evaluation) -> run directory, then one
scoring of the held-out test split: metrics.json, confusion_matrix.json and plots/confusion_matrix.png.
With ``teacher_model_name_or_path`` the training loss also distils a teacher classifier's soft labels
(kd_alpha, kd_temperature, kd_loss; see :mod:`tunelab.train.cls_distill`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import DataCollatorWithPadding

from tunelab.config import RunConfig
from tunelab.config.rules import STAGE_EVAL_METRICS
from tunelab.config.schema_kd import KDArgs
from tunelab.data.classification import (
    ClassificationData,
    LabelMap,
    balanced_class_weights,
    build_classification_data,
    class_counts,
    load_classification_records,
)
from tunelab.distributed import prepare_once
from tunelab.evaluate.classification import (
    classification_report,
    compute_classification_metrics,
    write_confusion_matrix,
)
from tunelab.model import count_parameters, load_classifier_for_training, load_tokenizer
from tunelab.runs.rundir import RunDir
from tunelab.train.builders import build_callbacks, build_training_arguments, drop_default_printers
from tunelab.train.cls_distill import (
    TEACHER_LOGITS,
    SoftLabelCollator,
    attach_teacher_logits,
    check_teacher_labels,
    load_teacher_classifier,
    soft_label_loss,
)
from tunelab.train.context import RunContext
from tunelab.train.runner import RunResult, run_trainer
from tunelab.train.trainer import TunelabTrainer

__all__ = ["ClassificationTrainer", "run_cls"]


class ClassificationTrainer(TunelabTrainer):
    """TunelabTrainer whose loss is cross-entropy over the head's logits, optionally class-weighted.

    The loss is computed here for every model (not by the model's own forward), so encoders and
    causal-LM heads get the same loss, and ``class_weights`` weights it per class. It is a per-batch
    mean, which the Trainer divides by the gradient-accumulation steps (``loss_is_scaled_for_ga``).
    Batches with teacher logits (``kd``: cls distillation) mix in the soft-label loss by kd_alpha.
    """

    loss_is_scaled_for_ga = False

    def __init__(
        self, *args: Any, class_weights: torch.Tensor | None = None, kd: KDArgs | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.class_weights = class_weights
        self.kd = kd

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        teacher_logits = inputs.pop(TEACHER_LOGITS, None)
        labels = inputs["labels"]
        outputs = model(**{key: value for key, value in inputs.items() if key != "labels"})
        logits = outputs.logits.float()
        weight = self.class_weights.to(logits.device) if self.class_weights is not None else None
        loss = torch.nn.functional.cross_entropy(logits, labels, weight=weight)
        if teacher_logits is not None and self.kd is not None:
            alpha = self.kd.kd_alpha
            soft = soft_label_loss(logits, teacher_logits.to(logits.device), self.kd)
            loss = alpha * soft + (1 - alpha) * loss
        return (loss, outputs) if return_outputs else loss


def run_cls(config: RunConfig, run: RunDir, ctx: RunContext, resume_from: Path | None) -> RunResult:
    """Load, build, train, save and score a cls run; see the module docstring."""
    # data first: a dataset without a label column fails before any model is loaded
    splits, label_map = load_classification_records(config.data, seed=config.training.seed)
    tokenizer = load_tokenizer(config.model)
    data = prepare_once(
        build_classification_data, splits, label_map, tokenizer, cutoff_len=config.data.cutoff_len
    )
    ctx.say(f"{data.stats.describe()}; {data.n_test} test samples")
    ctx.say(f"classes ({len(label_map)}): {', '.join(label_map.labels)}")
    teacher = config.kd.teacher_model_name_or_path
    if teacher:  # its classes are checked before any model loads
        check_teacher_labels(teacher, label_map, ",".join(config.data.dataset or []))

    model = load_classifier_for_training(
        config, label_map.id2label, tokenizer.pad_token_id, ctx.compute_dtype
    )
    trainable, total = count_parameters(model)
    ctx.say(f"trainable parameters: {trainable:,} of {total:,} ({100 * trainable / total:.3f}%)")
    collator: Any = DataCollatorWithPadding(tokenizer)
    if teacher:  # after the student: the teacher's loading must not shift the student's random head
        teacher_run = load_teacher_classifier(teacher, cutoff_len=config.data.cutoff_len)
        data.train = attach_teacher_logits(
            data.train, list(splits.train["text"]), tokenizer, teacher_run, label_map
        )
        collator = SoftLabelCollator(collator)
        del teacher_run
        kd = config.kd
        ctx.say(f"teacher: {teacher} ({kd.kd_loss}, T={kd.kd_temperature}, alpha={kd.kd_alpha})")

    counts = class_counts(data.train["labels"], len(label_map))
    weights = balanced_class_weights(counts) if config.finetuning.class_weights == "balanced" else None
    args = build_training_arguments(
        config,
        run.path,
        ctx.compute_dtype,
        eval_metrics=STAGE_EVAL_METRICS["cls"],
        has_eval_set=data.eval is not None and len(data.eval) > 0,
        prediction_loss_only=False,
        label_names=["labels"],
    )
    callbacks, stop = build_callbacks(config, run)
    callbacks.extend(ctx.callbacks)  # e.g. the Optuna pruning callback of `tunelab tune`
    trainer = ClassificationTrainer(
        model=model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        data_collator=collator,
        processing_class=tokenizer,
        callbacks=callbacks,
        compute_metrics=lambda pred: compute_classification_metrics(
            pred.label_ids, pred.predictions, len(label_map)
        ),
        preprocess_logits_for_metrics=lambda logits, labels: logits.argmax(dim=-1),
        training=config.training,
        finetuning=config.finetuning,
        run=run,
        class_weights=torch.tensor(weights, dtype=torch.float32) if weights is not None else None,
        kd=config.kd if teacher else None,
    )
    drop_default_printers(trainer)
    if run.writer:
        label_map.save(run.path)  # LoRA runs save no config.json: the run keeps its id2label here
    extra = ctx.run_metrics(
        trainable,
        total,
        data.stats,
        num_labels=len(label_map),
        labels=list(label_map.labels),
        train_class_counts=dict(zip(label_map.labels, counts)),
        **({"class_weights": dict(zip(label_map.labels, weights))} if weights is not None else {}),
        data_n_test=data.n_test,
        **({"teacher": teacher, "kd_loss_type": config.kd.kd_loss} if teacher else {}),
    )
    card = {
        "base_model": config.model.model_name_or_path,
        "stage": "cls",
        "finetuning_type": config.finetuning.finetuning_type,
        "datasets": ",".join(config.data.dataset or []),
        "classes": ", ".join(label_map.labels),
        "class_weights": config.finetuning.class_weights,
        "cutoff_len": config.data.cutoff_len,
        "learning_rate": config.training.learning_rate,
        "effective_batch": ctx.global_batch_size,
        "trainable_params": f"{trainable:,} / {total:,}",
    }
    if teacher:
        card["teacher"] = (
            f"{teacher} ({config.kd.kd_loss}, T={config.kd.kd_temperature}, alpha={config.kd.kd_alpha})"
        )
    result = run_trainer(
        trainer, run, stop, resume_from=resume_from, extra_metrics=extra, card_info=card, perplexity=False
    )
    if result.status == "interrupted":
        return result
    final = _score_held_out(trainer, data, label_map, run)
    result.metrics.update(final)
    ctx.say(_describe(final))
    return result


def _score_held_out(
    trainer: ClassificationTrainer, data: ClassificationData, label_map: LabelMap, run: RunDir
) -> dict[str, Any]:
    """Score the test split (else the eval split) once: metrics, per-class scores, confusion matrix."""
    split, prefix = (data.test, "test") if data.n_test else (data.eval, "eval")
    if split is None or len(split) == 0:
        return {}
    output = trainer.predict(split, metric_key_prefix=prefix)
    report = classification_report(output.label_ids, output.predictions, list(label_map.labels))
    metrics: dict[str, Any] = report.as_metrics(prefix)
    if output.metrics and f"{prefix}_loss" in output.metrics:
        metrics[f"{prefix}_loss"] = output.metrics[f"{prefix}_loss"]
    if run.writer:
        write_confusion_matrix(
            report, run.path, plots_dir=run.plots_dir, title=f"confusion matrix, {prefix} split"
        )
    run.write_metrics(metrics)
    return metrics


def _describe(metrics: dict[str, Any]) -> str:
    prefix = "test" if "test_accuracy" in metrics else "eval"
    if f"{prefix}_accuracy" not in metrics:
        return "no held-out split to score (set test_size or val_size)"
    return (
        f"{prefix}: accuracy {metrics[f'{prefix}_accuracy']:.3f}, F1 macro {metrics[f'{prefix}_f1_macro']:.3f} "
        f"on {metrics[f'{prefix}_samples']} samples; confusion matrix in plots/confusion_matrix.png"
    )
