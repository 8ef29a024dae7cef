"""Write raw rows back in the format they were read from (.json, .jsonl, .csv, .parquet, .txt).

A cleaned, selected or augmented dataset is a copy of the user's own file with some rows left out
(or added), so it loads with the same dataset_info.json entry and diffs cleanly against the input.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunelab.data.files import SUPPORTED_SUFFIXES
from tunelab.data.registry import DatasetAttr

__all__ = ["registry_entry", "registry_name", "train_hint", "write_rows"]


def write_rows(rows: Sequence[dict[str, Any]], path: Path, *, like: Path) -> Path:
    """Write ``rows`` to ``path`` in the format of ``like`` (its suffix); return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = like.suffix.lower()
    tmp = path.with_name(f".{path.name}.tmp")
    if suffix == ".json":
        tmp.write_text(json.dumps(list(rows), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    elif suffix == ".jsonl":
        with tmp.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif suffix == ".csv":
        fields = list(dict.fromkeys(k for row in rows for k in row))
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
    elif suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(list(rows)), tmp)
    elif suffix == ".txt":
        tmp.write_text("".join(f"{row['text']}\n" for row in rows), encoding="utf-8")
    else:  # read_row_files only yields the suffixes above
        raise ValueError(f"cannot write {suffix} files")
    tmp.replace(path)
    return path


def registry_entry(attr: DatasetAttr, file_name: str, **extra: Any) -> dict[str, Any]:
    """A dataset_info.json entry for a copy of ``attr``'s data at ``file_name`` (same columns and tags)."""
    entry: dict[str, Any] = {"file_name": file_name}
    if attr.formatting != "alpaca":
        entry["formatting"] = attr.formatting
    if attr.ranking:
        entry["ranking"] = True
    if attr.columns:
        entry["columns"] = dict(attr.columns)
    if attr.tags:
        entry["tags"] = dict(attr.tags)
    entry.update(extra)
    return entry


def registry_name(name: str) -> str:
    """The name a written copy is registered under: the dataset's own name, or a data file path's stem."""
    path = Path(name)
    return path.stem if len(path.parts) > 1 or path.suffix.lower() in SUPPORTED_SUFFIXES else name


def train_hint(names: Sequence[str], out: Path) -> str:
    """The overrides that train on the written copies: ``dataset=... dataset_dir=OUT``."""
    return f"dataset={','.join(registry_name(n) for n in names)} dataset_dir={out}"
