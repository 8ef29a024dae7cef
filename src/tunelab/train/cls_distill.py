"""Distillation for stage cls: soft labels from a teacher classifier (Hinton et al. 2015).

With ``teacher_model_name_or_path`` (a stage cls run directory, or a classification model directory
whose config.json names its classes), the teacher scores every training text once before training, with
its own tokenizer (so teacher and student need not share one), and its logits become a column of the
training set. The loss per sample is then

    kd_alpha x T^2 x D(softmax(z_t / T), softmax(z_s / T)) + (1 - kd_alpha) x CE(z_s, label)

with D the divergence of ``kd_loss`` (forward_kl, reverse_kl, jsd with kd_jsd_beta) from
:mod:`tunelab.train.kd_loss`, so kd_alpha = 0 trains exactly what plain cls trains. Evaluation and the
held-out scoring stay on the hard labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tunelab.data.classification import LabelMap
from tunelab.errors import ModelError
from tunelab.train.kd_loss import token_divergence

if TYPE_CHECKING:
    import datasets

    from tunelab.config.schema_kd import KDArgs
    from tunelab.infer.classify import ClassifierRun

__all__ = [
    "TEACHER_LOGITS",
    "SoftLabelCollator",
    "attach_teacher_logits",
    "check_teacher_labels",
    "load_teacher_classifier",
    "soft_label_loss",
]

TEACHER_LOGITS = "teacher_logits"  # the training-set column holding the teacher's logits per sample


def check_teacher_labels(teacher: str, student: LabelMap, student_data: str) -> LabelMap:
    """The teacher's classes, read without loading it; a ModelError when they are not the student's.

    The same classes in another order are fine (the logits are reordered); a different set is not,
    since a soft label over other classes says nothing about the student's.
    """
    path = Path(teacher).expanduser()
    if not path.is_dir():
        raise ModelError(
            f"teacher_model_name_or_path={teacher} is not a directory",
            "for stage cls point it at a stage cls run directory (or a classification model directory)",
        )
    labels = LabelMap.load(path)
    if set(labels.labels) != set(student.labels):
        raise ModelError(
            f"the teacher {teacher} has classes ({', '.join(labels.labels)}) but the student's data "
            f"{student_data} has classes ({', '.join(student.labels)})",
            "distil from a teacher trained on the same label set (e.g. the same dataset), or relabel the data",
        )
    return labels


def load_teacher_classifier(teacher: str, *, cutoff_len: int) -> ClassifierRun:
    """The frozen teacher classifier of a cls run directory, or of a classification model directory."""
    from tunelab.infer.classify import ClassifierRun, load_classifier_run
    from tunelab.infer.source import is_run_dir

    if is_run_dir(teacher):
        return load_classifier_run(teacher)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        model = AutoModelForSequenceClassification.from_pretrained(teacher, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(teacher)
    except (OSError, ValueError) as err:
        raise ModelError(
            f"cannot load the teacher classifier in {teacher}: {err}",
            "point teacher_model_name_or_path at a stage cls run directory or a saved classification model",
        ) from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return ClassifierRun(model.eval(), tokenizer, LabelMap.load(teacher), cutoff_len)


def attach_teacher_logits(
    train: datasets.Dataset,
    texts: Sequence[str],
    student_tokenizer: Any,
    teacher: ClassifierRun,
    student_labels: LabelMap,
) -> datasets.Dataset:
    """``train`` with the teacher's logits of each row's text, in the student's class order.

    ``texts`` are the training records; tokenization dropped those that gave no token, so the same
    rows are dropped here.
    """
    kept = [i for i, ids in enumerate(student_tokenizer(list(texts))["input_ids"]) if ids]
    if len(kept) != len(train):
        raise ModelError(
            f"{len(kept)} training texts but {len(train)} tokenized rows",
            "report this: the cls rows no longer line up with their texts",
        )
    logits = teacher.logits([texts[i] for i in kept])
    order = [teacher.label_map.labels.index(label) for label in student_labels.labels]
    return train.add_column(TEACHER_LOGITS, logits[:, order].tolist())


def soft_label_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, kd: KDArgs) -> torch.Tensor:
    """Mean over the batch of T^2 x D(teacher || student) on the temperature-softened class distributions."""
    # token_divergence softens log_softmax(teacher / T); logits differ from log-probs by a constant per row
    per_sample = token_divergence(
        student_logits,
        teacher_logits,
        None,
        kind=kd.kd_loss,
        temperature=kd.kd_temperature,
        beta=kd.kd_jsd_beta,
    )
    return per_sample.mean()


class SoftLabelCollator:
    """The cls collator, stacking each row's teacher logits beside the padded batch."""

    def __init__(self, base: Any) -> None:
        self.base = base

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.base([{k: v for k, v in f.items() if k != TEACHER_LOGITS} for f in features])
        if TEACHER_LOGITS in features[0]:
            batch[TEACHER_LOGITS] = torch.tensor([f[TEACHER_LOGITS] for f in features], dtype=torch.float32)
        return batch
