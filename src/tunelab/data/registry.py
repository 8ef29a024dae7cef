"""The dataset registry: LLaMA-Factory's ``dataset_info.json``, read unchanged.

An entry names a local file (``file_name``, relative to the registry's folder), its format
(``formatting``: alpaca | sharegpt, ``ranking`` for pairwise data), which raw column holds what
(``columns``) and, for sharegpt, how roles are spelled (``tags``). Entries that only point at a hub
(``hf_hub_url`` / ``ms_hub_url`` / ``om_hub_url`` / ``script_url`` / ``cloud_file_name``) are kept so
the registry loads as is, but selecting one is an error: tunelab never downloads data.

A dataset name that is not in the registry but is the path of an existing data file is accepted
directly; its format is guessed from its columns (see :func:`detect_attr`).

Example::

    attr = get_dataset_attr("alpaca_en_demo", "data")
    attr.path        # Path("data/alpaca_en_demo.json")
    attr.column("response")  # "output"
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tunelab.errors import DataError

__all__ = [
    "DATA_SUFFIXES",
    "HUB_KEYS",
    "REGISTRY_FILE",
    "DatasetAttr",
    "detect_attr",
    "get_dataset_attr",
    "load_registry",
    "resolve_dataset_dir",
]

REGISTRY_FILE = "dataset_info.json"
DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet", ".txt")
HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url", "cloud_file_name")
FORMATTINGS = ("alpaca", "sharegpt", "openai")

# LLaMA-Factory's defaults: a column or tag not named in the entry falls back to these.
_COLUMN_DEFAULTS = {
    "alpaca": {"prompt": "instruction", "query": "input", "response": "output"},
    "sharegpt": {"messages": "conversations"},
    "openai": {"messages": "messages"},
}
_SHAREGPT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}
_OPENAI_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "tool",
    "function_tag": "function_call",
    "system_tag": "system",
}


@dataclass
class DatasetAttr:
    """One registry entry: where the data is and how its raw columns map onto records."""

    name: str
    dataset_dir: Path
    file_name: str | None = None
    formatting: str = "alpaca"
    ranking: bool = False
    subset: str | None = None
    split: str = "train"
    folder: str | None = None
    num_samples: int | None = None
    columns: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    hub: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> Path | None:
        """The local file or folder, or None for a hub-only entry."""
        if self.file_name is None:
            return None
        path = Path(self.file_name).expanduser()
        return path if path.is_absolute() else self.dataset_dir / path

    @property
    def is_local(self) -> bool:
        """True when the entry names a file tunelab can read (it may still be missing on disk)."""
        return self.file_name is not None

    def column(self, key: str) -> str | None:
        """Raw column name for ``key`` (prompt, response, messages, chosen, ...), or None if unset."""
        if key in self.columns:
            return self.columns[key]
        return _COLUMN_DEFAULTS.get(self.formatting, {}).get(key)

    def has_column(self, key: str) -> bool:
        """True when the entry itself names a raw column for ``key`` (not just a default)."""
        return key in self.columns

    def tag(self, key: str) -> str:
        """Role spelling for a sharegpt ``key`` (role_tag, user_tag, ...), with LLaMA-Factory's defaults."""
        defaults = _OPENAI_TAGS if self.formatting == "openai" else _SHAREGPT_TAGS
        return self.tags.get(key, defaults[key])


def resolve_dataset_dir(dataset_dir: str | Path) -> Path:
    """Folder holding ``dataset_info.json``; ``builtin`` is tunelab's bundled data folder."""
    if str(dataset_dir) == "builtin":
        return Path(str(resources.files("tunelab").joinpath("resources", "data")))
    return Path(dataset_dir).expanduser()


def load_registry(dataset_dir: str | Path) -> dict[str, DatasetAttr]:
    """Every entry of ``<dataset_dir>/dataset_info.json`` as a :class:`DatasetAttr`, by name."""
    folder = resolve_dataset_dir(dataset_dir)
    path = folder / REGISTRY_FILE
    if not path.is_file():
        raise DataError(
            f"no {REGISTRY_FILE} in dataset_dir {folder}",
            f"set dataset_dir to the folder holding {REGISTRY_FILE} (or 'builtin'), "
            "or give the dataset as a data file path",
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(
            f"{path} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}",
            "fix the JSON syntax there (a missing comma or a trailing comma is the usual cause)",
        ) from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text: {err}", "save the file as UTF-8") from err
    if not isinstance(info, dict):
        raise DataError(
            f"{path} holds a JSON {type(info).__name__}, expected an object of dataset entries",
            'write it as {"name": {"file_name": "..."}, ...}',
        )
    return {name: _parse_entry(name, entry, folder, path) for name, entry in info.items()}


def _parse_entry(name: str, entry: Any, folder: Path, registry: Path) -> DatasetAttr:
    """Build one DatasetAttr, checking only the shape; unknown keys are ignored as LLaMA-Factory does."""
    if not isinstance(entry, dict):
        raise DataError(
            f"{registry}: entry '{name}' is a {type(entry).__name__}, expected an object",
            'write it as {"file_name": "my_data.json", ...}',
        )
    for key in ("columns", "tags"):
        value = entry.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise DataError(
                f"{registry}: entry '{name}': '{key}' must map names to strings, got {value!r}",
                f'write it as "{key}": {{"prompt": "instruction"}}-style pairs',
            )
    file_name = entry.get("file_name")
    if file_name is not None and not isinstance(file_name, str):
        raise DataError(f"{registry}: entry '{name}': file_name must be a string, got {file_name!r}")
    num_samples = entry.get("num_samples")
    if num_samples is not None and (not isinstance(num_samples, int) or num_samples <= 0):
        raise DataError(f"{registry}: entry '{name}': num_samples must be a positive integer")
    return DatasetAttr(
        name=name,
        dataset_dir=folder,
        file_name=file_name,
        formatting=entry.get("formatting", "alpaca"),
        ranking=bool(entry.get("ranking", False)),
        subset=entry.get("subset"),
        split=entry.get("split", "train"),
        folder=entry.get("folder"),
        num_samples=num_samples,
        columns=dict(entry.get("columns", {})),
        tags=dict(entry.get("tags", {})),
        hub={key: str(entry[key]) for key in HUB_KEYS if key in entry},
    )


def get_dataset_attr(name: str, dataset_dir: str | Path) -> DatasetAttr:
    """The readable dataset ``name``: a registry entry, or a data file path given directly."""
    folder = resolve_dataset_dir(dataset_dir)
    registry_path = folder / REGISTRY_FILE
    registry = load_registry(folder) if registry_path.is_file() else None
    if registry is not None and name in registry:
        return _check_local(registry[name], registry_path)
    direct = _as_data_file(name, folder)
    if direct is not None:
        return detect_attr(direct, name=name)
    if registry is None:
        raise DataError(
            f"dataset '{name}' is neither a data file nor registered: there is no {registry_path}",
            f"set dataset_dir to the folder holding {REGISTRY_FILE} (or 'builtin'), "
            f"or give a path to a {'/'.join(DATA_SUFFIXES)} file",
            code="dataset_no_registry",
            params={"name": name, "registry": str(registry_path), "suffixes": "/".join(DATA_SUFFIXES)},
        )
    loadable = sorted(n for n, a in registry.items() if a.path is not None and a.path.exists())
    close = difflib.get_close_matches(name, list(registry), n=3, cutoff=0.6)
    guess = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise DataError(
        f"unknown dataset '{name}' in {registry_path}{guess}",
        f"datasets loadable from there: {', '.join(loadable) or '(none)'}; "
        "or give a data file path, or add an entry for it",
        code="unknown_dataset",
        params={"name": name, "registry": str(registry_path), "close": close, "loadable": loadable},
    )


def _check_local(attr: DatasetAttr, registry_path: Path) -> DatasetAttr:
    """Refuse hub-only entries and entries whose file is missing, saying how to fix each."""
    if attr.path is None:
        where = ", ".join(f"{k}: {v}" for k, v in attr.hub.items()) or "no file_name"
        how = (
            f" (e.g. `huggingface-cli download --repo-type dataset {attr.hub['hf_hub_url']} "
            f"--local-dir {attr.dataset_dir / attr.name}`)"
            if "hf_hub_url" in attr.hub
            else ""
        )
        raise DataError(
            f"dataset '{attr.name}' in {registry_path} lives on a hub ({where}); "
            "tunelab never downloads data",
            f"download the data yourself{how} and point the entry at it with "
            f'"file_name": "<file or folder, relative to {attr.dataset_dir}>"',
        )
    if not attr.path.exists():
        raise DataError(
            f"dataset '{attr.name}' in {registry_path}: file {attr.path} does not exist",
            "put the file there, or fix file_name in the entry (it is relative to dataset_dir)",
        )
    if attr.formatting not in FORMATTINGS:
        raise DataError(
            f"dataset '{attr.name}' in {registry_path}: unknown formatting '{attr.formatting}'",
            f"use one of {', '.join(FORMATTINGS)}",
        )
    media = sorted(k for k in ("images", "videos", "audios") if k in attr.columns)
    if media:
        raise DataError(
            f"dataset '{attr.name}' in {registry_path} has {'/'.join(media)} columns; "
            "tunelab trains on text only",
            "pick a text dataset, or remove the media columns from the entry to train on its text",
        )
    return attr


def _as_data_file(name: str, folder: Path) -> Path | None:
    """``name`` as an existing data file, tried as given and then relative to the dataset folder."""
    for candidate in (Path(name).expanduser(), folder / name):
        if candidate.is_file() and candidate.suffix.lower() in DATA_SUFFIXES:
            return candidate
    return None


def detect_attr(path: Path, *, name: str | None = None) -> DatasetAttr:
    """A DatasetAttr for an unregistered file, with its format guessed from the first record's keys.

    alpaca when it has instruction/output, sharegpt when conversations/messages (role/content
    keys mean OpenAI-style tags), pre-training text when ``text`` (or a .txt file); a ``label``
    next to ``text`` makes it classification data, and chosen/rejected make it pairwise.
    """
    from tunelab.data.files import read_rows

    rows = read_rows(path)
    keys = set(rows[0]) if rows else {"text"}
    attr = DatasetAttr(name=name or str(path), dataset_dir=path.parent, file_name=str(path.resolve()))
    pairwise = {"chosen", "rejected"} <= keys
    for message_key in ("conversations", "messages"):
        if message_key in keys:
            first = rows[0][message_key]
            openai_style = bool(first) and isinstance(first[0], dict) and "role" in first[0]
            attr.formatting = "openai" if openai_style else "sharegpt"
            attr.columns = {"messages": message_key}
            attr.ranking = pairwise
            attr.columns.update({k: k for k in ("system", "tools", "chosen", "rejected") if k in keys})
            if "label" in keys and isinstance(rows[0]["label"], bool):
                attr.columns["kto_tag"] = "label"
            elif "kto_tag" in keys:
                attr.columns["kto_tag"] = "kto_tag"
            return attr
    if "instruction" in keys and ({"output"} & keys or pairwise):
        attr.ranking = pairwise
        attr.columns = {k: k for k in ("system", "history", "tools", "chosen", "rejected") if k in keys}
        if "kto_tag" in keys:
            attr.columns["kto_tag"] = "kto_tag"
        return attr
    if "text" in keys:
        attr.columns = {"prompt": "text"}
        if "label" in keys:
            attr.columns["label"] = "label"
        return attr
    raise DataError(
        f"cannot tell the format of {path}: its records have keys {', '.join(sorted(keys))}",
        "use instruction/input/output (alpaca), conversations or messages (sharegpt), or text; "
        "or register the file in dataset_info.json with its columns",
    )
