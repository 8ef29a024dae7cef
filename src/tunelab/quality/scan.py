"""Read every record of a config's datasets, keeping the malformed ones as findings instead of stopping.

Training refuses a malformed record at once (see :mod:`tunelab.data.formats`); a data check wants the
whole list, so each row is converted on its own and a failure becomes a finding that names the
file and the record index (counted from 0, as in the record's ``source``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.data.files import read_row_files
from tunelab.data.formats import to_records
from tunelab.data.registry import DatasetAttr, get_dataset_attr
from tunelab.errors import DataError

__all__ = ["Finding", "RecordRef", "ScannedDataset", "scan_dataset"]


@dataclass(frozen=True)
class RecordRef:
    """Where one record lives: dataset name, file and 0-based index in that file."""

    dataset: str
    file: Path
    index: int

    def describe(self) -> str:
        """``name (file.json) #3``: how reports point at a record."""
        return f"{self.dataset} ({self.file.name}) #{self.index}"

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "file": str(self.file), "index": self.index}


@dataclass
class Finding:
    """One problem with one record; ``other`` is the record it clashes with (duplicate, leak)."""

    kind: str
    ref: RecordRef
    detail: str = ""
    other: RecordRef | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, **self.ref.as_dict(), "detail": self.detail}
        if self.other is not None:
            out["other"] = self.other.as_dict()
        return out


@dataclass
class ScannedDataset:
    """The readable records of one dataset, their places, and the rows that could not be read."""

    name: str
    attr: DatasetAttr
    role: str  # "train" (config.dataset) or "eval" (config.eval_dataset)
    files: list[Path] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    refs: list[RecordRef] = field(default_factory=list)
    n_rows: int = 0
    malformed: list[Finding] = field(default_factory=list)


def scan_dataset(name: str, *, dataset_dir: str, stage: str, role: str = "train") -> ScannedDataset:
    """Every row of dataset ``name`` converted for ``stage``; rows that fail become ``malformed`` findings.

    Unlike training this reads the whole files: ``max_samples`` and a registry entry's
    ``num_samples`` select records at load time, while a check and a clean look at what is on disk.
    """
    attr = get_dataset_attr(name, dataset_dir)
    assert attr.path is not None  # get_dataset_attr refuses hub-only entries
    scanned = ScannedDataset(name=name, attr=attr, role=role)
    for file, rows in read_row_files(attr.path):
        scanned.files.append(file)
        scanned.n_rows += len(rows)
        tag = name if attr.path.is_file() else f"{name}/{file.name}"
        for index, row in enumerate(rows):
            ref = RecordRef(name, file, index)
            try:
                (record,) = to_records([row], attr, stage, tag, file, indices=[index])
            except DataError as err:
                scanned.malformed.append(Finding("malformed", ref, err.message))
                continue
            scanned.records.append(record)
            scanned.refs.append(ref)
    if scanned.malformed and not scanned.records:
        # Not one readable record: the dataset does not fit the stage (or the format), which is one
        # problem with one fix, not n_rows separate findings.
        first = scanned.malformed[0]
        raise DataError(
            f"dataset '{name}': none of its {scanned.n_rows} records can be read for stage {stage}; "
            f"the first: {first.detail}",
            "check the dataset's format and columns in dataset_info.json, or the stage",
        )
    return scanned
