"""Classification data for stage ``cls``: the label <-> id mapping, tokenized rows, class weights.

Records come from the loader like every stage's (``text`` + ``label``, see :mod:`tunelab.data.records`);
this module turns them into what ``AutoModelForSequenceClassification`` takes: ``input_ids``,
``attention_mask`` (``token_type_ids`` for BERT-like tokenizers) and an integer ``labels``.

Example::

    label_map = LabelMap.from_labels(splits.train["label"])
    label_map.id2label      # {0: "negative", 1: "positive"}
    rows, report = tokenize_classification(splits.train, tokenizer, label_map, cutoff_len=128)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.data.pipeline import DataStats
from tunelab.errors import DataError

if TYPE_CHECKING:
    import datasets

    from tunelab.config.schema import DataArgs
    from tunelab.data.loader import RecordSplits

__all__ = [
    "LABELS_FILE",
    "ClassificationData",
    "ClassificationTokenizeReport",
    "LabelMap",
    "balanced_class_weights",
    "build_classification_data",
    "class_counts",
    "load_classification_records",
    "tokenize_classification",
]

# Written into every cls run directory (LoRA runs have no config.json of their own to carry id2label).
LABELS_FILE = "labels.json"


def _sort_key(label: str) -> tuple[int, float, str]:
    """Whole numbers in numeric order (2 before 10), then everything else alphabetically."""
    try:
        return (0, float(int(label)), "")
    except ValueError:
        return (1, 0.0, label)


@dataclass(frozen=True)
class LabelMap:
    """Class names in id order; ids are positions, so the mapping is fixed by the sorted label set."""

    labels: tuple[str, ...]

    @classmethod
    def from_labels(cls, values: Iterable[str | None]) -> LabelMap:
        """The sorted unique labels of ``values`` (numbers numerically, text alphabetically)."""
        unique = {str(v) for v in values if v is not None}
        if len(unique) < 2:
            found = ", ".join(repr(v) for v in sorted(unique)) or "none"
            raise DataError(
                f"stage cls needs at least 2 classes, but the labels hold {len(unique)} ({found})",
                "check the label column of the dataset (and max_samples: the first records may share one class)",
            )
        return cls(tuple(sorted(unique, key=_sort_key)))

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.labels))

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, label: str) -> int:
        """The id of ``label``; a label the model has no output for is a DataError."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise DataError(
                f"label {label!r} is not one of the model's classes ({', '.join(self.labels)})",
                "evaluate on data with the labels the model was trained on",
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"id2label": {"0": ...}, "label2id": {...}}`` (the config.json spelling)."""
        return {"id2label": {str(i): label for i, label in self.id2label.items()}, "label2id": self.label2id}

    def save(self, directory: str | Path) -> Path:
        """Write ``labels.json`` into ``directory``; returns its path."""
        path = Path(directory) / LABELS_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> LabelMap:
        """Read ``labels.json`` (or a config.json's ``id2label``) from a run or model directory."""
        directory = Path(directory)
        for name in (LABELS_FILE, "config.json"):
            path = directory / name
            if path.is_file():
                id2label = json.loads(path.read_text(encoding="utf-8")).get("id2label")
                if id2label and not _is_placeholder(id2label):
                    ordered = sorted(id2label.items(), key=lambda item: int(item[0]))
                    return cls(tuple(str(label) for _, label in ordered))
        raise DataError(
            f"{directory} holds no class labels ({LABELS_FILE} or config.json with id2label)",
            "point at the run directory of a stage cls run",
        )


def _is_placeholder(id2label: dict[str, Any]) -> bool:
    """transformers' default names (LABEL_0, LABEL_1, ...): a config that was never given classes."""
    return all(str(label) == f"LABEL_{i}" for i, label in id2label.items())


@dataclass
class ClassificationTokenizeReport:
    """Token lengths before the cut, and how many texts cutoff_len shortened or had nothing left."""

    lengths: list[int] = field(default_factory=list)
    n_cut: int = 0
    n_dropped: int = 0


def tokenize_classification(
    records: datasets.Dataset, tokenizer: Any, label_map: LabelMap, *, cutoff_len: int
) -> tuple[datasets.Dataset, ClassificationTokenizeReport]:
    """Tokenized rows (``input_ids``, ``attention_mask``, ``labels``, ...) of cls ``records``.

    Texts longer than ``cutoff_len`` tokens are cut (the tokenizer's own truncation, so BERT keeps its
    closing [SEP]); texts that give no token at all are dropped and counted.
    """
    from datasets import Dataset

    texts, labels = list(records["text"]), list(records["label"])
    full = tokenizer(texts, truncation=False, add_special_tokens=True)
    report = ClassificationTokenizeReport()
    columns: dict[str, list[Any]] = {key: [] for key in full}
    columns["labels"] = []
    for index, ids in enumerate(full["input_ids"]):
        report.lengths.append(len(ids))
        if not ids:
            report.n_dropped += 1
            continue
        row = {key: full[key][index] for key in full}
        if len(ids) > cutoff_len:
            report.n_cut += 1
            row = dict(tokenizer(texts[index], truncation=True, max_length=cutoff_len))
        for key in full:
            columns[key].append(row[key])
        columns["labels"].append(label_map.encode(labels[index]))
    return Dataset.from_dict(columns), report


def class_counts(labels: Sequence[int], n_classes: int) -> list[int]:
    """How many rows carry each class id (``labels`` are ids)."""
    counts = [0] * n_classes
    for label in labels:
        counts[int(label)] += 1
    return counts


def balanced_class_weights(counts: Sequence[int]) -> list[float]:
    """scikit-learn's ``balanced`` weights: n_samples / (n_classes x count) per class.

    Every class then contributes the same total weight to the loss. Classes with no training rows
    get weight 0 (no row carries them, so the value never enters the loss).
    """
    present = [c for c in counts if c > 0]
    n_samples, n_classes = sum(present), len(present)
    return [n_samples / (n_classes * c) if c > 0 else 0.0 for c in counts]


@dataclass
class ClassificationData:
    """Tokenized train / eval / test splits of a cls run, the label map, and what the data looks like."""

    train: datasets.Dataset
    eval: datasets.Dataset | None
    test: datasets.Dataset | None
    label_map: LabelMap
    stats: DataStats

    @property
    def n_test(self) -> int:
        return len(self.test) if self.test is not None else 0


def load_classification_records(data_args: DataArgs, *, seed: int) -> tuple[RecordSplits, LabelMap]:
    """Records of stage cls split into train/eval/test, and the labels of all of them in id order.

    The label map covers every split, so a class that happens to fall only into the test split
    still has an output (the model will just not have learned it).
    """
    from tunelab.data.loader import load_records

    splits = load_records(data_args, "cls", seed=seed)
    parts = [s for s in (splits.train, splits.eval, splits.test) if s is not None]
    return splits, LabelMap.from_labels(label for part in parts for label in part["label"])


def build_classification_data(
    splits: RecordSplits, label_map: LabelMap, tokenizer: Any, *, cutoff_len: int
) -> ClassificationData:
    """Tokenize every split of ``splits`` for ``label_map`` and summarise the training lengths."""
    from tunelab.data.pipeline import length_stats

    train, report = tokenize_classification(splits.train, tokenizer, label_map, cutoff_len=cutoff_len)
    held_out: dict[str, datasets.Dataset | None] = {}
    n_dropped = report.n_dropped
    for name in ("eval", "test"):
        records = getattr(splits, name)
        if records is None:
            held_out[name] = None
            continue
        held_out[name], part = tokenize_classification(records, tokenizer, label_map, cutoff_len=cutoff_len)
        n_dropped += part.n_dropped
    low, mean, p95, high = length_stats(report.lengths)
    stats = DataStats(
        n_train=len(train),
        n_eval=len(held_out["eval"]) if held_out["eval"] is not None else 0,
        n_train_sequences=len(train),
        len_min=low,
        len_mean=mean,
        len_p95=p95,
        len_max=high,
        share_cut=report.n_cut / len(report.lengths) if report.lengths else 0.0,
        n_dropped=n_dropped,
        cutoff_len=cutoff_len,
    )
    return ClassificationData(train, held_out["eval"], held_out["test"], label_map, stats)
