"""Read raw rows (plain dicts) from local data files: .json, .jsonl, .csv, .parquet, .txt, or a folder.

Reading is kept apart from format conversion so every error here can name the file and the
line (or list index) that is broken, before any column is interpreted.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from tunelab.errors import DataError

__all__ = ["SUPPORTED_SUFFIXES", "data_files", "read_row_files", "read_rows"]

SUPPORTED_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".txt")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """All rows of a data file, or of every data file in a folder (in name order)."""
    return [row for _, rows in read_row_files(path) for row in rows]


def read_row_files(path: Path) -> list[tuple[Path, list[dict[str, Any]]]]:
    """Rows per file, so callers can point errors at the right file of a folder."""
    return [(file, _read_file(file)) for file in data_files(path)]


def data_files(path: Path) -> list[Path]:
    """The data files behind ``path``: itself, or the supported files directly inside a folder."""
    path = Path(path)
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in SUPPORTED_SUFFIXES
        )
        if not files:
            raise DataError(
                f"folder {path} holds no data files",
                f"put {'/'.join(SUPPORTED_SUFFIXES)} files in it",
            )
        return files
    if not path.is_file():
        raise DataError(
            f"data file {path} does not exist", "check the path (relative paths start at dataset_dir)"
        )
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type '{path.suffix}'",
            f"convert it to one of {', '.join(SUPPORTED_SUFFIXES)}",
        )
    return [path]


def _read_file(path: Path) -> list[dict[str, Any]]:
    readers = {
        ".json": _read_json,
        ".jsonl": _read_jsonl,
        ".csv": _read_csv,
        ".parquet": _read_parquet,
        ".txt": _read_txt,
    }
    try:
        return readers[path.suffix.lower()](path)
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path} is not UTF-8 text ({err.reason} at byte {err.start})", "save it as UTF-8"
        ) from err


def _read_json(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # several objects one after another: JSON Lines under a .json name
            return _parse_json_lines(path, text)
        raise DataError(
            f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}",
            "fix the JSON syntax there",
        ) from err
    if not isinstance(data, list):
        raise DataError(
            f"{path} holds a JSON {type(data).__name__}, expected a list of records",
            "write the file as [{...}, {...}], or as JSON Lines (.jsonl), one object per line",
        )
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(
                f"{path} record {index} is a JSON {type(row).__name__}, expected an object",
                'every item of the list must be an object such as {"instruction": ..., "output": ...}',
            )
    return data


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return _parse_json_lines(path, path.read_text(encoding="utf-8-sig"))


def _parse_json_lines(path: Path, text: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"{path} line {number} is not valid JSON: {err.msg} (column {err.colno})",
                "each line of a JSON Lines file must be one complete JSON object",
            ) from err
        if not isinstance(row, dict):
            raise DataError(
                f"{path} line {number} is a JSON {type(row).__name__}, expected an object",
                "each line of a JSON Lines file must be one JSON object",
            )
        rows.append(row)
    return rows


def _read_csv(path: Path) -> list[dict[str, Any]]:
    # The csv module keeps every cell a string, so a text column is never turned into a number.
    rows = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            if None in row:
                raise DataError(
                    f"{path} line {reader.line_num} has more cells than the header "
                    f"({len(reader.fieldnames or [])} columns)",
                    "quote cells that contain commas or newlines",
                )
            rows.append(dict(row))
    return rows


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq  # imported here: only parquet users pay for it
    from pyarrow import ArrowException

    try:
        return pq.read_table(path).to_pylist()
    except ArrowException as err:
        raise DataError(
            f"{path} is not a readable parquet file: {err}", "re-write it with pandas or pyarrow"
        ) from err


def _read_txt(path: Path) -> list[dict[str, Any]]:
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return [{"text": line} for line in lines if line.strip()]
