"""``streaming: true``: training data read record by record, for datasets larger than memory.

Files are read lazily (JSON lines, CSV rows and text lines one at a time, JSON arrays item by
item through ijson, parquet by row groups), converted and tokenized on the fly by a
``datasets.IterableDataset`` and shuffled through a buffer of ``buffer_size`` records, as in
LLaMA-Factory. The number of records is unknown in advance, hence max_steps; an integer
val_size takes the first records as the eval split (held in memory) and training skips them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.data.files import data_files
from tunelab.data.formats import to_records
from tunelab.data.registry import get_dataset_attr
from tunelab.errors import DataError

if TYPE_CHECKING:
    import datasets

    from tunelab.config import RunConfig
    from tunelab.data.template import Template

__all__ = ["iter_rows", "stream_datasets", "stream_records"]

_MAP_BATCH = 256  # records tokenized together: few enough to keep memory flat, enough to amortise calls


def iter_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of one data file, one at a time (never the whole file in memory)."""
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as err:
                        raise DataError(
                            f"{path} line {number} is not valid JSON: {err.msg}", "fix that line"
                        ) from err
    elif suffix == ".json":
        import ijson

        with path.open("rb") as handle:
            try:
                yield from ijson.items(handle, "item", use_float=True)
            except ijson.JSONError as err:
                raise DataError(
                    f"{path} is not a valid JSON list: {err}", "fix the file (json.tool shows where)"
                ) from err
    elif suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            yield from (dict(row) for row in csv.DictReader(handle))
    elif suffix == ".txt":
        with path.open(encoding="utf-8-sig") as handle:
            yield from ({"text": line.rstrip("\n")} for line in handle if line.strip())
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches():
            yield from batch.to_pylist()
    else:  # data_files only lists the suffixes above
        raise DataError(f"{path}: cannot stream {suffix} files", "use .jsonl, .json, .csv, .txt or .parquet")


def stream_records(name: str, *, dataset_dir: str, stage: str) -> Iterator[dict[str, Any]]:
    """Records of dataset ``name``, converted row by row (a malformed row is an error naming it)."""
    attr = get_dataset_attr(name, dataset_dir)
    assert attr.path is not None
    for file in data_files(attr.path):
        tag = name if attr.path.is_file() else f"{name}/{file.name}"
        for index, row in enumerate(iter_rows(file)):
            yield from to_records([row], attr, stage, tag, file, indices=[index])


def _generator(names: list[str], dataset_dir: str, stage: str, skip: int) -> Iterator[dict[str, Any]]:
    seen = 0
    for name in names:
        for record in stream_records(name, dataset_dir=dataset_dir, stage=stage):
            seen += 1
            if seen > skip:
                yield record


def _tokenizer_fn(config: RunConfig, tokenizer: Any, template: Template) -> Any:
    from tunelab.data.tokenize import chunk_documents, encode_documents, tokenize_supervised

    data = config.data
    if config.finetuning.stage == "pt":

        def pt_batch(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            blocks = chunk_documents(
                encode_documents(batch["text"], tokenizer), data.cutoff_len, concatenate=not data.packing
            )
            return {"input_ids": blocks, "labels": [list(b) for b in blocks]}

        return pt_batch

    def sft_batch(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"input_ids": [], "labels": []}
        columns = list(batch)
        for i in range(len(batch[columns[0]])):
            sample = tokenize_supervised(
                {c: batch[c][i] for c in columns},
                tokenizer,
                template,
                cutoff_len=data.cutoff_len,
                train_on_prompt=data.train_on_prompt,
                mask_history=data.mask_history,
            )
            if any(label != -100 for label in sample["labels"]):
                out["input_ids"].append(sample["input_ids"])
                out["labels"].append(sample["labels"])
        return out

    return sft_batch


def stream_datasets(
    config: RunConfig, tokenizer: Any, template: Template
) -> tuple[datasets.IterableDataset, list[dict[str, Any]]]:
    """(tokenized training stream, eval records) for a streaming config.

    The eval records are the first ``val_size`` records (a count) of the training data, which the
    stream then skips; with eval_dataset they are read whole, as without streaming.
    """
    from datasets import IterableDataset

    from tunelab.data.loader import record_features

    data, stage = config.data, config.finetuning.stage
    names = list(data.dataset or [])
    n_eval = int(data.val_size) if not data.eval_dataset else 0
    eval_records: list[dict[str, Any]] = []
    if n_eval:
        for record in _generator(names, data.dataset_dir, stage, 0):
            eval_records.append(record)
            if len(eval_records) == n_eval:
                break
    elif data.eval_dataset:
        for name in data.eval_dataset:
            eval_records += list(stream_records(name, dataset_dir=data.dataset_dir, stage=stage))
    stream = IterableDataset.from_generator(
        _generator,
        gen_kwargs={"names": names, "dataset_dir": data.dataset_dir, "stage": stage, "skip": n_eval},
        features=record_features(),
    )
    stream = stream.shuffle(seed=config.training.seed, buffer_size=data.buffer_size)
    tokenized = stream.map(
        _tokenizer_fn(config, tokenizer, template),
        batched=True,
        batch_size=_MAP_BATCH,
        remove_columns=list(record_features()),
    )
    return tokenized, eval_records
