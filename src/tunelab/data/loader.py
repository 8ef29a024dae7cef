"""Turn the config's dataset names into train/eval record sets: read, convert, cap, mix, split, shuffle.

Order of operations, per dataset: read rows -> ``num_samples`` (from the registry entry: a seeded
sample, repeated when larger than the data, as in LLaMA-Factory) -> ``max_samples`` -> convert.
Then the datasets are mixed, the eval split is taken, and the training records are shuffled.

``max_samples`` keeps the *first* N records of each dataset, as LLaMA-Factory does, rather than a
seeded sample: a config then selects the same records as it does there, the file order stays the
user's to control, and runs that differ only in ``seed`` train on identical data (the seed changes
the order and the validation split, not which records exist).

Example::

    splits = load_records(config.data, "sft", seed=42)
    splits.train[0]["messages"]   # [{"role": "user", ...}, {"role": "assistant", ...}]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunelab.data.files import read_row_files
from tunelab.data.formats import to_records
from tunelab.data.registry import get_dataset_attr
from tunelab.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets

    from tunelab.config.schema import DataArgs

__all__ = [
    "RecordSplits",
    "assemble_splits",
    "load_dataset_records",
    "load_records",
    "record_features",
    "records_to_dataset",
]


@dataclass
class RecordSplits:
    """Training records (shuffled), evaluation records and held-out test records (None when absent)."""

    train: datasets.Dataset
    eval: datasets.Dataset | None
    test: datasets.Dataset | None = None


def record_features() -> datasets.Features:
    """The explicit schema of a record, so datasets whose optional columns are all None still mix."""
    from datasets import Features, List, Value

    text = Value("string")
    return Features(
        {
            "messages": List({"role": text, "content": text}),
            "system": text,
            "tools": text,
            "text": text,
            "chosen": text,
            "rejected": text,
            "kto_tag": Value("bool"),
            "label": text,
            "source": text,
        }
    )


def records_to_dataset(records: Sequence[dict[str, Any]]) -> datasets.Dataset:
    """A ``datasets.Dataset`` of records with :func:`record_features` (works for zero records too)."""
    from datasets import Dataset

    features = record_features()
    return Dataset.from_dict({key: [r[key] for r in records] for key in features}, features=features)


def load_records(data_args: DataArgs, stage: str, *, seed: int) -> RecordSplits:
    """Records of ``data_args.dataset`` for ``stage``: mixed, split into train/eval, train shuffled.

    ``seed`` drives every random choice (num_samples sampling, interleaving, shuffle, val/test split),
    so the same config gives the same records in the same order. ``test_size`` holds out a test split
    first; ``val_size`` then takes the eval split; both are fractions of the whole data (or counts).
    """
    names = list(data_args.dataset or [])
    if not names:
        raise ConfigError(
            "no training dataset: the 'dataset' key is empty", "set dataset: <name or file path>"
        )
    if data_args.eval_dataset and data_args.val_size > 0:
        raise ConfigError(
            f"both eval_dataset ({', '.join(data_args.eval_dataset)}) and val_size "
            f"({data_args.val_size}) are set",
            "keep one: eval_dataset for a separate eval set, or val_size to split the training data",
        )
    load = {
        "dataset_dir": data_args.dataset_dir,
        "stage": stage,
        "max_samples": data_args.max_samples,
        "seed": seed,
    }
    parts = [load_dataset_records(name, **load) for name in names]
    eval_parts = [load_dataset_records(n, **load) for n in data_args.eval_dataset or []]
    return assemble_splits(parts, eval_parts, data_args, stage, seed=seed)


def assemble_splits(
    parts: Sequence[datasets.Dataset],
    eval_parts: Sequence[datasets.Dataset],
    data_args: DataArgs,
    stage: str,
    *,
    seed: int,
) -> RecordSplits:
    """Mix the per-dataset ``parts``, shuffle, hold out test/val splits exactly as training does.

    Separate from :func:`load_records` so that ``tunelab data check`` can split the records it read
    (skipping malformed ones) the same way a run would, and find eval records that leak into train.
    """
    names = list(data_args.dataset or [])
    train = _mix(list(parts), data_args.mix_strategy, data_args.interleave_probs, seed)
    train = train.shuffle(seed=seed)
    test_set = None
    if data_args.test_size > 0:
        train, test_set = _split(train, data_args.test_size, names, key="test_size", stratify=stage == "cls")
    eval_set = None
    if eval_parts:
        from datasets import concatenate_datasets

        # Eval sets are concatenated whatever mix_strategy says: interleaving would drop eval records.
        eval_set = concatenate_datasets(list(eval_parts))
    elif data_args.val_size > 0:
        n_total = len(train) + (len(test_set) if test_set is not None else 0)
        train, eval_set = _split(train, data_args.val_size, names, n_total=n_total, stratify=stage == "cls")
    return RecordSplits(train=train, eval=eval_set, test=test_set)


def load_dataset_records(
    name: str, *, dataset_dir: str, stage: str, max_samples: int | None = None, seed: int = 0
) -> datasets.Dataset:
    """Records of one dataset (registry name or file path), capped by num_samples and max_samples."""
    attr = get_dataset_attr(name, dataset_dir)
    assert attr.path is not None  # get_dataset_attr refuses hub-only entries
    files = read_row_files(attr.path)
    places = [(f, i) for f, rows in files for i in range(len(rows))]
    if not places:
        raise DataError(f"dataset '{name}' ({attr.path}) has no records", "check the file is not empty")
    if attr.num_samples is not None:
        places = [places[i] for i in _sample_indices(len(places), attr.num_samples, seed)]
    if max_samples is not None:
        places = places[:max_samples]
    rows_of = dict(files)
    records: list[dict[str, Any]] = []
    for file, group in _group_by_file(places):
        tag = name if len(files) == 1 else f"{name}/{file.name}"
        rows = [rows_of[file][i] for i in group]
        records += to_records(rows, attr, stage, tag, file, indices=group)
    return records_to_dataset(records)


def _group_by_file(places: list[tuple[Any, int]]) -> list[tuple[Any, list[int]]]:
    """Consecutive runs of (file, [indices]), keeping the sampled order."""
    groups: list[tuple[Any, list[int]]] = []
    for file, index in places:
        if groups and groups[-1][0] == file:
            groups[-1][1].append(index)
        else:
            groups.append((file, [index]))
    return groups


def _sample_indices(n_rows: int, num_samples: int, seed: int) -> list[int]:
    """``num_samples`` row indices: a seeded permutation, topped up with repeats when it exceeds the data."""
    import numpy as np

    rng = np.random.default_rng(seed)
    picked = rng.permutation(n_rows)[:num_samples]
    extra = rng.integers(0, n_rows, size=max(0, num_samples - n_rows))
    return [int(i) for i in np.concatenate([picked, extra])]


def _mix(
    parts: list[datasets.Dataset], strategy: str, probs: list[float] | None, seed: int
) -> datasets.Dataset:
    """One dataset from several: concatenated, or interleaved until the smallest / largest runs out."""
    from datasets import concatenate_datasets, interleave_datasets

    if len(parts) == 1:
        return parts[0]
    if strategy == "concat":
        return concatenate_datasets(parts)
    if strategy not in ("interleave_under", "interleave_over"):
        raise ConfigError(
            f"mix_strategy '{strategy}' is unknown", "use concat, interleave_under or interleave_over"
        )
    if probs is not None:
        if len(probs) != len(parts):
            raise ConfigError(
                f"interleave_probs has {len(probs)} values for {len(parts)} datasets",
                "give one probability per dataset, in the order of 'dataset'",
            )
        if any(p < 0 for p in probs) or not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
            raise ConfigError(
                f"interleave_probs {probs} must be non-negative and sum to 1 (they sum to {sum(probs):g})",
                "rescale them so they add up to 1",
            )
    stopping = "first_exhausted" if strategy == "interleave_under" else "all_exhausted"
    return interleave_datasets(parts, probabilities=probs, seed=seed, stopping_strategy=stopping)


def _split(
    data: datasets.Dataset,
    size: float,
    names: list[str],
    *,
    key: str = "val_size",
    n_total: int | None = None,
    stratify: bool = False,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Hold out the last ``size`` records of the (already shuffled) data (``key`` names the setting).

    A fraction is taken of ``n_total`` (default: ``len(data)``), so that val_size and test_size are
    both shares of the whole dataset even when the test split was taken first. With ``stratify``
    (stage cls) every class keeps its share in both parts, so a small eval or test split cannot miss
    a class or over-represent one by chance.
    """
    n_have = len(data)
    n_total = n_have if n_total is None else n_total
    n_out = int(size) if size >= 1 else math.ceil(size * n_total)
    if n_out >= n_have:
        raise DataError(
            f"{key}={size:g} asks for {n_out} {'eval' if key == 'val_size' else 'test'} records but "
            f"{', '.join(names)} has only {n_have} records, leaving none to train on",
            f"use a {key} below {n_have} (a count) or a smaller fraction such as 0.1",
        )
    if stratify and "label" in data.column_names:
        held = _stratified_indices(data["label"], n_out)
        if held is not None:
            kept = [i for i in range(n_have) if i not in held]
            return data.select(kept), data.select(sorted(held))
    return data.select(range(n_have - n_out)), data.select(range(n_have - n_out, n_have))


def _stratified_indices(labels: list[Any], n_out: int) -> set[int] | None:
    """``n_out`` row indices holding every label in its share (scikit-learn's stratified split; the
    data is already shuffled, so a fixed random_state adds no bias). None when a label has a single
    record or there are more labels than held-out rows: then the plain split is used."""
    from collections import Counter

    counts = Counter(labels)
    if min(counts.values()) < 2 or not len(counts) <= n_out <= len(labels) - len(counts):
        return None
    from sklearn.model_selection import train_test_split

    _, held = train_test_split(range(len(labels)), test_size=n_out, stratify=labels, random_state=0)
    return set(held)
