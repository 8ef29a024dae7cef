"""Find the study of a config and read its best learning rate, for the one learning-rate answer.

A study (`tunelab sweep` or `tunelab tune`) leaves summary.json in its folder, with ``base_config``:
the fingerprint of the config its trials started from (`sweep.config_fingerprint`: everything but the
output and tune settings). A study belongs to a config when that fingerprint is the config's own.
It is looked for where the commands put studies: runs/sweep-<config stem> and runs/tune-<config
stem> (the CLI's defaults), and every folder of the runs directory (where the web UI puts them) —
the runs directory being the parent of the config's output_dir, or ./runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig
from tunelab.errors import ConfigError
from tunelab.tune.lr_answer import LrEstimate

__all__ = ["find_study", "read_summary", "study_estimate"]

SUMMARY = "summary.json"


def read_summary(study_dir: str | Path) -> dict[str, Any] | None:
    """The study's summary.json, or None when there is none (or it is being written)."""
    try:
        data = json.loads((Path(study_dir) / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _candidates(config: RunConfig, config_path: str | Path | None) -> list[Path]:
    from tunelab.tune.trials import default_study_dir

    roots = [Path("runs")]
    if config.output.output_dir:
        roots.insert(0, Path(config.output.output_dir).parent)
    found = [default_study_dir(kind, config_path) for kind in ("sweep", "tune")]
    for root in roots:
        if root.is_dir():
            found += [p.parent for p in root.glob(f"*/{SUMMARY}")]
    return list(dict.fromkeys(p.resolve() for p in found if (p / SUMMARY).is_file()))


def find_study(
    config: RunConfig, *, config_path: str | Path | None = None, study: str | Path | None = None
) -> Path | None:
    """The newest study of ``config`` (see the module docstring), or ``study`` when one is named.

    A named ``study`` must be a study folder; it is used even if it ran another config (the user
    chose it), so its trials' learning rate answers for this one.
    """
    if study:
        if read_summary(study) is None:
            raise ConfigError(
                f"--study {study}: no {SUMMARY} there, so it is not a finished sweep or tune study",
                "run `tunelab sweep` / `tunelab tune` with --study-dir there first, or leave --study out",
            )
        return Path(study)
    from tunelab.tune.sweep import config_fingerprint

    fingerprint = config_fingerprint(config)
    mine = [
        p
        for p in _candidates(config, config_path)
        if (read_summary(p) or {}).get("base_config") == fingerprint
    ]
    return max(mine, key=lambda p: (p / SUMMARY).stat().st_mtime, default=None)


def study_estimate(study_dir: str | Path) -> LrEstimate | None:
    """The study's best learning rate, banded by the nearest learning rates tried below and above it
    among its completed trials (the optimum lies between them); None when the study did not search
    learning_rate or no trial completed."""
    summary = read_summary(study_dir) or {}
    best = summary.get("best") or {}
    value = (best.get("params") or {}).get("learning_rate")
    if not isinstance(value, (int, float)) or value <= 0:
        return None
    tried = sorted(
        {
            float(t["params"]["learning_rate"])
            for t in summary.get("trials", [])
            if t.get("status") == "complete"
            and isinstance(t.get("value"), (int, float))
            and math.isfinite(t["value"])
            and isinstance((t.get("params") or {}).get("learning_rate"), (int, float))
        }
    )
    low = max((lr for lr in tried if lr < value), default=value)
    high = min((lr for lr in tried if lr > value), default=value)
    metric, score = summary.get("metric", "metric"), best.get("value")
    shown = f"{score:.4g}" if isinstance(score, (int, float)) else "?"
    where = Path(study_dir).name
    return LrEstimate(
        "study",
        float(value),
        low,
        high,
        f"best of {len(tried)} completed trials in {where} (trial {best.get('number')}, {metric} {shown})",
        f"{where} 中 {len(tried)} 个完成试验的最佳（试验 {best.get('number')}，{metric} {shown}）",
    )
