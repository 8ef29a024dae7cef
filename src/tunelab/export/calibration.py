"""Calibration texts for GPTQ export (export_quantization_dataset): what the model will see, cut to size.

GPTQ rounds each layer's weights so that its outputs on sample inputs change least, so the samples
should look like the model's real inputs. A registered dataset is therefore read with tunelab's own
loaders and every record rendered as the chat template renders it in training (prompt + response,
system prompt and special tokens included); pre-training text and plain files are used as they are.

The texts are handed to transformers' GPTQConfig, which tokenizes each one again with the tokenizer's
special tokens added, so a leading BOS the template wrote is dropped here and each text is cut until
its re-tokenized length fits export_quantization_maxlen.

Example::

    texts = calibration_texts("instruct_en", tokenizer, template, dataset_dir="builtin",
                              n_samples=128, max_len=1024, seed=42)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.data.files import read_row_files
from tunelab.data.formats import to_records
from tunelab.data.registry import DATA_SUFFIXES, DatasetAttr, get_dataset_attr, resolve_dataset_dir
from tunelab.errors import DataError

if TYPE_CHECKING:
    from tunelab.data.template import Template

__all__ = ["calibration_texts"]

KEY = "export_quantization_dataset"


def calibration_texts(
    dataset: str,
    tokenizer: Any,
    template: Template,
    *,
    dataset_dir: str,
    n_samples: int,
    max_len: int,
    seed: int = 42,
) -> list[str]:
    """At most `n_samples` texts from `dataset` (a seeded choice), each at most `max_len` tokens long.

    `dataset` is a name registered in `dataset_dir`'s dataset_info.json or a path to a .txt (one sample
    per non-empty line), .json or .jsonl file. Raises DataError naming export_quantization_dataset when
    it cannot be read or holds no text.
    """
    records = _read_records(dataset, dataset_dir)
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    added = list(tokenizer("", add_special_tokens=True)["input_ids"])
    texts: list[str] = []
    for index in order:
        ids = _record_ids(records[index], tokenizer, template)
        if ids and ids[0] == tokenizer.bos_token_id and ids[0] in added:
            ids = ids[1:]  # GPTQ's own tokenizer call adds it again
        if ids:
            texts.append(_fit(tokenizer, ids, max_len, n_added=len(added)))
        if len(texts) == n_samples:
            break
    if not texts:
        raise DataError(
            f"{KEY}={dataset!r} holds no text to calibrate GPTQ on",
            f"point {KEY} at a dataset or file with non-empty records",
        )
    return texts


def _read_records(dataset: str, dataset_dir: str) -> list[dict[str, Any]]:
    """Every record of `dataset`, converted for the stage its columns fit (see _stage_for)."""
    try:
        attr = get_dataset_attr(dataset, dataset_dir)
    except DataError as err:
        folder = resolve_dataset_dir(dataset_dir)
        if Path(dataset).suffix.lower() in DATA_SUFFIXES and not _is_file(dataset, folder):
            raise DataError(
                f"{KEY}: calibration file {dataset} does not exist (looked as given and under {folder})",
                f"check the path, or set {KEY} to a dataset name registered in {folder}/dataset_info.json",
            ) from err
        raise DataError(
            f"{KEY}={dataset!r}: {err.message}", f"{err.hint}; or give a .txt/.json/.jsonl file"
        ) from err
    assert attr.path is not None  # get_dataset_attr refuses hub-only entries
    files = read_row_files(attr.path)
    present = set().union(*(row for _, rows in files for row in rows))
    stage = _stage_for(attr, present)
    return [record for file, rows in files for record in to_records(rows, attr, stage, dataset, file)]


def _is_file(dataset: str, folder: Path) -> bool:
    return Path(dataset).expanduser().is_file() or (folder / dataset).is_file()


def _stage_for(attr: DatasetAttr, present: set[str]) -> str:
    """The stage whose records hold the whole text: pairwise data keeps the chosen reply, alpaca rows
    without a response column (LLaMA-Factory's pre-training layout, .txt lines) are plain text."""
    if attr.ranking:
        return "dpo"
    kto_column = attr.column("kto_tag")
    if kto_column is not None and kto_column in present:
        return "kto"
    if attr.formatting == "alpaca" and attr.column("response") not in present:
        return "pt"
    return "sft"


def _record_ids(record: dict[str, Any], tokenizer: Any, template: Template) -> list[int]:
    """Token ids of one record: the conversation through the chat template, or the plain text."""
    messages = list(record["messages"])
    if not messages:
        return list(tokenizer.encode(record["text"], add_special_tokens=False)) if record["text"] else []
    if record["chosen"] is not None:
        messages.append({"role": "assistant", "content": record["chosen"]})
    turns = template.encode_turns(tokenizer, messages, record["system"], record["tools"])
    return [i for prompt, response in turns for i in (*prompt, *response)]


def _fit(tokenizer: Any, ids: Sequence[int], max_len: int, *, n_added: int) -> str:
    """The text of `ids`, cut so that tokenizing it again (special tokens added) gives <= max_len ids."""
    ids = list(ids[: max(1, max_len - n_added)])
    while True:
        text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        excess = len(tokenizer(text, add_special_tokens=True)["input_ids"]) - max_len
        if excess <= 0 or len(ids) <= 1:
            return text
        ids = ids[: max(1, len(ids) - excess)]
