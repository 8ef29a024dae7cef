"""Shared by the tune benchmarks (estimate_accuracy.py, lr_find_quality.py): machine facts and docs sections."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"


def markdown_table(columns: Sequence[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "| --- " + "| ---: " * (len(columns) - 1) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def print_table(title: str, columns: Sequence[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))


def machine_lines(libs: Sequence[str] = ("torch", "transformers", "peft"), *, date: bool = True) -> list[str]:
    """Date, CPU, cores, load and library versions: what a reader needs to compare figures."""
    from importlib.metadata import version

    import torch

    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown CPU"
    )
    versions = ", ".join(f"{name} {version(name)}" for name in libs)
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return [f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"] * date + [
        f"- machine: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
        f"load average (1/5/15 min) at the end {load}",
        f"- software: Python {platform.python_version()}, {versions}",
    ]


def update_docs(key: str, section: str, path: Path = DOCS) -> None:
    """Replace the generated section ``key`` of docs/benchmarks.md (or append it); keep everything else."""
    begin, end = f"<!-- {key}: generated -->", f"<!-- /{key} -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = f"{head}{begin}\n{section}{end}{rest.split(end, 1)[1]}"
    else:
        text = f"{text.rstrip()}\n\n{begin}\n{section}{end}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
