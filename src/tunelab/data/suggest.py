"""Which registered datasets suit a stage: the names a "wrong kind of data" error may suggest.

A hint must name only data the user has: entries of their dataset_dir, or the bundled ones
(dataset_dir=builtin), whose file is on disk; never a dataset of another project that nothing here ships.
"""

from __future__ import annotations

from pathlib import Path

from tunelab.data.registry import DatasetAttr, load_registry, resolve_dataset_dir
from tunelab.errors import DataError

__all__ = ["datasets_for_stage", "suggest_datasets"]

_KIND = {"rm": "preference", "dpo": "preference", "kto": "kto"}


def _fits(attr: DatasetAttr, stage: str) -> bool:
    if stage in ("rm", "dpo"):
        return attr.ranking
    if stage == "kto":
        return attr.has_column("kto_tag")
    return not attr.ranking and not attr.has_column("kto_tag")


def datasets_for_stage(stage: str, dataset_dir: str | Path) -> list[str]:
    """Names in ``dataset_dir``'s dataset_info.json whose entry suits ``stage`` and whose file exists."""
    try:
        registry = load_registry(dataset_dir)
    except DataError:
        return []
    return [
        name
        for name, attr in registry.items()
        if _fits(attr, stage) and attr.path is not None and attr.path.exists()
    ]


def suggest_datasets(stage: str, dataset_dir: str | Path) -> str:
    """A hint naming datasets for ``stage`` that exist here: in ``dataset_dir``, else bundled, else none.

    >>> suggest_datasets("dpo", "builtin")
    'pick a preference dataset: pref_polite_en, pref_polite_sharegpt'
    """
    kind = _KIND.get(stage, stage)
    own = datasets_for_stage(stage, dataset_dir)
    if own:
        return f"pick a {kind} dataset: {', '.join(own)}"
    builtin = resolve_dataset_dir("builtin")
    folder = resolve_dataset_dir(dataset_dir)
    bundled = [] if folder.resolve() == builtin.resolve() else datasets_for_stage(stage, "builtin")
    if bundled:
        return f"{folder} has no {kind} dataset; bundled ones (dataset_dir=builtin): {', '.join(bundled)}"
    return (
        f"no {kind} dataset is registered in {folder}, and none is bundled: add one to its dataset_info.json"
    )
