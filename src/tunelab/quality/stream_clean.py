"""``tunelab data clean --streaming``: one pass over files larger than memory, writing kept rows as it goes.

Rows are read lazily (:func:`tunelab.data.streaming.iter_rows`) and judged against what came
before: malformed and empty records, exact duplicates (a 16-byte hash per record kept), near
duplicates (a MinHash signature of 128 x 32 bits per record, about 0.5 KB, plus the LSH index),
conflicting answers (a hash per prompt), and leaks of the eval_dataset records (read first; they
are usually small). Memory grows with the number of records, not with their text. What it cannot
do in one pass: a val_size split (the split needs all records), and too_long (use the in-memory
clean for those). Kept rows go to the output in the input's own format; .json arrays are written
as a list, item by item.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.data.files import data_files
from tunelab.data.formats import to_records
from tunelab.data.registry import REGISTRY_FILE, get_dataset_attr
from tunelab.errors import ConfigError, DataError
from tunelab.quality.dedup import NUM_PERM, check_threshold
from tunelab.quality.textkey import normalize, record_text, shingles
from tunelab.quality.writer import registry_entry, registry_name

if TYPE_CHECKING:
    from tunelab.config import RunConfig

__all__ = ["STREAMING_KINDS", "stream_clean"]

STREAMING_KINDS = ("malformed", "empty", "exact", "near", "conflicts", "chosen_eq_rejected", "contaminated")


class _Writer:
    """Appends rows to a file in the format of ``like``, opening it on first use."""

    def __init__(self, path: Path, like: Path) -> None:
        self.path, self.suffix, self.n = path, like.suffix.lower(), 0
        if self.suffix == ".parquet":
            raise ConfigError(
                f"{like}: --streaming writes json, jsonl, csv and txt",
                "convert parquet to jsonl, or clean without --streaming",
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = path.open("w", encoding="utf-8", newline="")
        self.csv: Any = None
        if self.suffix == ".json":
            self.handle.write("[\n")

    def write(self, row: dict[str, Any]) -> None:
        if self.suffix == ".jsonl":
            self.handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif self.suffix == ".json":
            self.handle.write(("  " if self.n == 0 else ",\n  ") + json.dumps(row, ensure_ascii=False))
        elif self.suffix == ".csv":
            if self.csv is None:
                self.csv = csv.DictWriter(self.handle, fieldnames=list(row))
                self.csv.writeheader()
            self.csv.writerow(row)
        else:
            self.handle.write(f"{row['text']}\n")
        self.n += 1

    def close(self) -> None:
        if self.suffix == ".json":
            self.handle.write("\n]\n")
        self.handle.close()


def _digest(text: str) -> bytes:
    return hashlib.blake2b(normalize(text).encode("utf-8"), digest_size=16).digest()


class _Near:
    """Incremental near-duplicate index: LSH buckets plus compact signatures for the similarity check."""

    def __init__(self, threshold: float) -> None:
        from datasketch import MinHashLSH

        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        self.signatures: dict[int, Any] = {}
        self.next_id = 0

    def _hash(self, text: str) -> Any:
        from datasketch import MinHash

        words = sorted(shingles(text))
        if not words:
            return None
        m = MinHash(num_perm=NUM_PERM, seed=1)
        m.update_batch([w.encode("utf-8") for w in words])
        return m

    def seen(self, text: str, *, add: bool = True) -> bool:
        """Whether a text near ``text`` was added before; adds ``text`` unless told not to."""
        import numpy as np

        m = self._hash(text)
        if m is None:
            return False
        for key in self.lsh.query(m):
            if float(np.mean(self.signatures[key] == m.hashvalues.astype(np.uint32))) >= self.threshold:
                return True
        if add:
            self.lsh.insert(self.next_id, m)
            self.signatures[self.next_id] = m.hashvalues.astype(np.uint32)
            self.next_id += 1
        return False


def _rows(path: Path) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    from tunelab.data.streaming import iter_rows

    for file in data_files(path):
        for index, row in enumerate(iter_rows(file)):
            yield file, index, row


def stream_clean(
    config: RunConfig, out_dir: str | Path, *, drop: Sequence[str], near_threshold: float = 0.8
) -> dict[str, Any]:
    """Clean ``config``'s training datasets in one lazy pass; returns {"kept": {...}, "removed": {...}}."""
    check_threshold(near_threshold)
    unsupported = [k for k in drop if k not in STREAMING_KINDS]
    if unsupported:
        raise ConfigError(
            f"--streaming cannot drop {', '.join(unsupported)} in one pass",
            "drop them with the in-memory clean (without --streaming)",
        )
    data, stage = config.data, config.finetuning.stage
    if "contaminated" in drop and not data.eval_dataset and data.val_size > 0:
        raise ConfigError(
            "--streaming cannot find leaks into a val_size split (the split needs every record first)",
            "give the eval records as eval_dataset, or clean without --streaming",
        )
    out = Path(out_dir)
    exact: set[bytes] = set()
    answers: dict[bytes, bytes] = {}
    near = _Near(near_threshold) if "near" in drop else None
    held_exact: set[bytes] = set()
    held_near = _Near(near_threshold) if "contaminated" in drop else None
    for name in data.eval_dataset or []:
        attr = get_dataset_attr(name, data.dataset_dir)
        for file, index, row in _rows(attr.path):  # type: ignore[arg-type]
            try:
                (record,) = to_records([row], attr, stage, name, file, indices=[index])
            except DataError:
                continue
            text = record_text(record, stage).full
            held_exact.add(_digest(text))
            if held_near is not None:
                held_near.seen(text)
    registry: dict[str, Any] = {}
    kept: dict[str, int] = {}
    removed: dict[str, int] = {}
    out.mkdir(parents=True, exist_ok=True)
    with (out / "removed.jsonl").open("w", encoding="utf-8") as log:
        for name in data.dataset or []:
            attr = get_dataset_attr(name, data.dataset_dir)
            assert attr.path is not None
            writers: dict[Path, _Writer] = {}
            for file, index, row in _rows(attr.path):
                reason = _judge(
                    row, attr, stage, name, file, index, drop, exact, answers, near, held_exact, held_near
                )
                if reason:
                    removed[reason[0]] = removed.get(reason[0], 0) + 1
                    log.write(
                        json.dumps(
                            {
                                "dataset": name,
                                "file": str(file),
                                "index": index,
                                "reason": reason[0],
                                "detail": reason[1],
                            },
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
                    continue
                if file not in writers:
                    writers[file] = _Writer(
                        out / (Path(name).name if attr.path.is_dir() else "") / file.name, file
                    )
                writers[file].write(row)
            for writer in writers.values():
                writer.close()
            kept[name] = sum(w.n for w in writers.values())
            target = Path(name).name if attr.path.is_dir() else attr.path.name
            registry[registry_name(name)] = registry_entry(attr, target)
    (out / REGISTRY_FILE).write_text(
        json.dumps(registry, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return {"kept": kept, "removed": removed}


def _judge(
    row: dict[str, Any], attr: Any, stage: str, name: str, file: Path, index: int, drop: Sequence[str],
    exact: set[bytes], answers: dict[bytes, bytes], near: _Near | None, held_exact: set[bytes], held_near: _Near | None,
) -> tuple[str, str] | None:  # fmt: skip
    """(reason, detail) when the row goes, None when it stays; remembers the row when it stays."""
    from tunelab.quality.detectors import conflict_key, empty_fields, identical_pairs
    from tunelab.quality.scan import RecordRef

    try:
        (record,) = to_records([row], attr, stage, name, file, indices=[index])
    except DataError as err:
        return ("malformed", err.message) if "malformed" in drop else None
    ref = RecordRef(name, file, index)
    if "empty" in drop and empty_fields([record], [ref], stage):
        return "empty", "empty prompt or response"
    if "chosen_eq_rejected" in drop and stage in ("rm", "dpo") and identical_pairs([record], [ref]):
        return "chosen_eq_rejected", "chosen and rejected are the same text"
    text = record_text(record, stage)
    full = _digest(text.full)
    if "contaminated" in drop and (
        full in held_exact or (held_near is not None and held_near.seen(text.full, add=False))
    ):
        return "contaminated", "an eval_dataset record, exactly or nearly"
    if "exact" in drop and full in exact:
        return "exact", "same text as an earlier record"
    if "conflicts" in drop and stage not in ("pt", "ppo"):
        key, answer = conflict_key(record, stage)
        asked, said = _digest("\x00".join(key)), _digest(answer)
        if answers.setdefault(asked, said) != said:
            return "conflicts", "same prompt as an earlier record, different answer"
    if near is not None and near.seen(text.full):
        return "near", "similar to an earlier record"
    exact.add(full)
    return None
