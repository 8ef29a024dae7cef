"""``tokenized_path``: save the tokenized datasets on the first run and reuse them afterwards.

LLaMA-Factory's meaning: when the folder holds tokenized data it is loaded and the data keys
(dataset, template, cutoff_len ...) are not read again; otherwise the data are tokenized as usual
and saved there. The folder also keeps the statistics of that tokenization, so the reused run
reports the same data figures.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.errors import DataError

if TYPE_CHECKING:
    import datasets

    from tunelab.data.pipeline import DataStats

__all__ = ["has_tokenized_data", "load_tokenized", "save_tokenized"]

_STATS = "tunelab_data_stats.json"


def has_tokenized_data(path: str | Path) -> bool:
    """Whether ``path`` holds datasets written by :func:`save_tokenized`."""
    return (Path(path) / "train").is_dir() and (Path(path) / _STATS).is_file()


def save_tokenized(
    path: str | Path, train: datasets.Dataset, eval_set: datasets.Dataset | None, stats: DataStats
) -> None:
    """Write the tokenized splits and their statistics into ``path``."""
    folder = Path(path)
    train.save_to_disk(str(folder / "train"))
    if eval_set is not None:
        eval_set.save_to_disk(str(folder / "eval"))
    (folder / _STATS).write_text(json.dumps(asdict(stats), indent=2) + "\n", encoding="utf-8")


def load_tokenized(path: str | Path) -> tuple[datasets.Dataset, datasets.Dataset | None, DataStats]:
    """(train, eval or None, stats) as saved by :func:`save_tokenized`."""
    import datasets

    from tunelab.data.pipeline import DataStats

    folder = Path(path)
    try:
        stats: dict[str, Any] = json.loads((folder / _STATS).read_text(encoding="utf-8"))
        train = datasets.load_from_disk(str(folder / "train"))
        eval_set = datasets.load_from_disk(str(folder / "eval")) if (folder / "eval").is_dir() else None
    except (OSError, ValueError) as err:
        raise DataError(
            f"tokenized_path={path}: cannot read the saved datasets ({err})",
            "delete the folder to tokenize again, or point tokenized_path at a new folder",
        ) from None
    return train, eval_set, DataStats(**stats)
