"""The Evaluate tab's benchmark field: which multiple-choice benchmarks a task_dir offers, and what one holds.

The choices are the names registered in ``<task_dir>/benchmark_info.json`` (``builtin``: tunelab's
bundled ``tunelab_mc``) followed by LLaMA-Factory's benchmark names (``mmlu_test``, ``cmmlu_test``,
``ceval_validation``), which read ``<task_dir>/<benchmark>/``. Those are offered even when their data
is absent, so that choosing one says which files are missing and where they go (nothing downloads).
"""

from __future__ import annotations

import json
from pathlib import Path

from tunelab.errors import TunelabError
from tunelab.webui.context import message_html
from tunelab.webui.i18n import tr

__all__ = ["LF_TASKS", "benchmark_choices", "check_benchmark", "describe_benchmark"]

# the task names of LLaMA-Factory's example eval configs (examples/train_lora/*_eval.yaml)
LF_TASKS = ("mmlu_test", "cmmlu_test", "ceval_validation")


def _registered(task_dir: str) -> list[str]:
    """Names in ``<task_dir>/benchmark_info.json`` (none when it is missing or unreadable)."""
    from tunelab.evaluate.benchmark import REGISTRY_FILE, benchmark_dir

    try:
        entries = json.loads((benchmark_dir(task_dir) / REGISTRY_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return []  # an unreadable registry is reported when a benchmark is chosen or run
    return list(entries) if isinstance(entries, dict) else []


def benchmark_choices(task_dir: str | None) -> list[str]:
    """Benchmark names to offer for ``task_dir``: its registered ones, then LLaMA-Factory's."""
    names = _registered(task_dir or "builtin")
    return [*names, *(t for t in LF_TASKS if t not in names)]


def _missing_lf_data(task: str, task_dir: str) -> tuple[str, Path] | None:
    """(benchmark, folder it must be in) when ``task`` is an LLaMA-Factory name whose folder is absent."""
    from tunelab.evaluate.benchmark import LF_BENCHMARKS, benchmark_dir

    bench, _, split = task.rpartition("_")
    folder = benchmark_dir(task_dir)
    if bench not in LF_BENCHMARKS or split not in ("test", "validation") or (folder / bench).is_dir():
        return None
    if task in _registered(task_dir) or Path(task).expanduser().exists():
        return None
    return bench, folder.resolve()


def check_benchmark(task: str | None, task_dir: str | None, lang: str) -> str | None:
    """Error html when ``task`` cannot be read offline (naming the files and where), else None.

    Cheap (no model, no torch): the Evaluate tab runs it before starting a job.
    """
    if not task:
        return None
    task_dir = task_dir or "builtin"
    missing = _missing_lf_data(task, task_dir)
    if missing is not None:
        bench, folder = missing
        return message_html(tr("bench.needs_data", lang, task=task, bench=bench, folder=str(folder)), "error")
    from tunelab.evaluate.benchmark import resolve_task

    try:
        resolve_task(task, task_dir)
    except TunelabError as exc:
        return _error(task, exc, lang)
    return None


def describe_benchmark(task: str | None, task_dir: str | None, lang: str) -> str:
    """What the chosen benchmark holds (questions, subjects, few-shot examples), or why it cannot run."""
    problem = check_benchmark(task, task_dir, lang)
    if not task or problem is not None:
        return problem or ""
    from tunelab.evaluate.benchmark import load_benchmark, split_benchmark

    try:
        scored, dev = split_benchmark(load_benchmark(task, task_dir or "builtin"))
    except TunelabError as exc:
        return _error(task, exc, lang)
    subjects = sorted({q.subject for q in scored})
    names = ", ".join(subjects[:6]) + (", …" if len(subjects) > 6 else "")
    text = tr(
        "bench.summary",
        lang,
        task=task,
        n=len(scored),
        subjects=len(subjects),
        names=names,
        dev=sum(len(v) for v in dev.values()),
    )
    return message_html(text, "ok")


def _error(task: str, exc: TunelabError, lang: str) -> str:
    detail = exc.message + (f"\n{tr('hint', lang)}: {exc.hint}" if exc.hint else "")
    return message_html(f"{tr('bench.invalid', lang, task=task)}\n{detail}", "error")
