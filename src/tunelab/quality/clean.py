"""``tunelab data clean``: cleaned copies of a config's datasets, in their own formats.

What a check found is removed, kind by kind, as the user chooses (``drop``). Of each duplicate
cluster the earliest record stays; of a leak, the training copy goes and the eval record stays;
of conflicting answers, the first answer stays. Every removed record is listed in removed.jsonl
with its reason and, where there is one, the record it duplicates or leaks into. The output
folder gets a dataset_info.json with the same dataset names, so ``dataset_dir=OUT`` trains on the
cleaned copies with the config unchanged. The result depends only on the data and the options.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.data.files import read_row_files
from tunelab.data.registry import REGISTRY_FILE, get_dataset_attr
from tunelab.errors import ConfigError
from tunelab.quality.check import KINDS, QualityReport, check_data
from tunelab.quality.scan import Finding, RecordRef
from tunelab.quality.writer import registry_entry, registry_name, write_rows

if TYPE_CHECKING:
    from tunelab.config import RunConfig

__all__ = ["DEFAULT_DROP", "CleanResult", "clean_data", "parse_drop"]

DEFAULT_DROP = ("malformed", "empty", "exact", "near", "chosen_eq_rejected", "contaminated")


@dataclass
class CleanResult:
    """Where the cleaned data went and what left it."""

    out_dir: Path
    removed: dict[str, int] = field(default_factory=dict)  # reason -> records removed
    kept: dict[str, int] = field(default_factory=dict)  # dataset -> records kept
    report: QualityReport | None = None


def parse_drop(text: str | Sequence[str]) -> tuple[str, ...]:
    """The kinds to drop from ``--drop exact,near,...`` ("all" = every kind), with errors naming the bad one."""
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    if items == ["all"]:
        return KINDS
    unknown = [s for s in items if s not in KINDS]
    if unknown:
        raise ConfigError(
            f"--drop {','.join(unknown)}: unknown kind", f"choose from {', '.join(KINDS)} (or all)"
        )
    return tuple(items)


def _to_remove(report: QualityReport, drop: Sequence[str]) -> dict[RecordRef, Finding]:
    """Record -> the finding that removes it (the first, in KINDS order)."""
    out: dict[RecordRef, Finding] = {}
    for kind in KINDS:
        if kind not in drop:
            continue
        for finding in report.by_kind(kind):
            # a leak removes the training copy (finding.other), never the eval record
            victim = finding.other if kind == "contaminated" else finding.ref
            if victim is not None and victim not in out:
                out[victim] = finding
    return out


def _removed_row(ref: RecordRef, finding: Finding) -> dict[str, Any]:
    row = {**ref.as_dict(), "reason": finding.kind, "detail": finding.detail}
    keeper = finding.ref if finding.kind == "contaminated" else finding.other
    if keeper is not None:
        row["kept" if finding.kind != "contaminated" else "eval_record"] = keeper.as_dict()
    return row


def clean_data(
    config: RunConfig,
    out_dir: str | Path,
    *,
    drop: Sequence[str] = DEFAULT_DROP,
    near_threshold: float = 0.8,
) -> CleanResult:
    """Check ``config``'s data, then write copies without the records of the ``drop`` kinds to ``out_dir``."""
    out = Path(out_dir)
    tokens = "too_long" in drop  # only then is the tokenizer needed
    report = check_data(config, near_threshold=near_threshold, tokens=tokens)
    remove = _to_remove(report, drop)
    result = CleanResult(out_dir=out, report=report)
    registry: dict[str, Any] = {}
    removed_rows: list[dict[str, Any]] = []
    data = config.data
    names = list(dict.fromkeys([*(data.dataset or []), *(data.eval_dataset or [])]))
    used_names: set[str] = set()
    for name in names:
        attr = get_dataset_attr(name, data.dataset_dir)
        assert attr.path is not None
        files = read_row_files(attr.path)
        folder = attr.path.is_dir()
        target = out / _safe(name) if folder else out
        kept_n = 0
        for file, rows in files:
            keep = []
            for index, row in enumerate(rows):
                ref = RecordRef(name, file, index)
                if ref in remove:
                    removed_rows.append(_removed_row(ref, remove[ref]))
                else:
                    keep.append(row)
            file_name = file.name if folder or file.name not in used_names else f"{_safe(name)}-{file.name}"
            used_names.add(file_name)
            write_rows(keep, target / file_name, like=file)
            kept_n += len(keep)
            if not folder:
                registry[registry_name(name)] = registry_entry(attr, file_name)
        if folder:
            registry[registry_name(name)] = registry_entry(attr, _safe(name))
        result.kept[name] = kept_n
    out.mkdir(parents=True, exist_ok=True)
    (out / REGISTRY_FILE).write_text(
        json.dumps(registry, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    with (out / "removed.jsonl").open("w", encoding="utf-8") as handle:
        for row in removed_rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts: dict[str, int] = defaultdict(int)
    for row in removed_rows:
        counts[row["reason"]] += 1
    result.removed = dict(counts)
    return result


def _safe(name: str) -> str:
    """A dataset name (which may be a path) as a file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).name) or "data"
