"""`tunelab runs list`: every run under a folder (and the trials inside study folders), newest first."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tunelab.errors import ConfigError
from tunelab.runs.summary import RunSummary, is_run_dir, summarize_run

__all__ = ["find_runs", "list_runs", "render_run_list"]


def find_runs(root: str | Path, *, depth: int = 2) -> list[Path]:
    """Run directories under ``root`` up to ``depth`` levels down (runs/<study>/trial-000 is level 2).

    A run directory's own subfolders (checkpoints, plots) are not searched.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder", "pass the folder that holds your runs, e.g. runs/")
    if is_run_dir(root):
        return [root]
    found: list[Path] = []
    level = [root]
    for _ in range(depth):
        nxt: list[Path] = []
        for folder in level:
            for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                (found if is_run_dir(child) else nxt).append(child)
        level = nxt
    return found


def list_runs(root: str | Path = "runs") -> list[RunSummary]:
    """Summaries of the runs under ``root``, most recently written first; named relative to ``root``."""
    root = Path(root)
    runs = [summarize_run(p, name=str(p.relative_to(root)) if p != root else p.name) for p in find_runs(root)]
    return sorted(runs, key=lambda r: r.when, reverse=True)


_TRIAL_LABEL = re.compile(r"(trial-\d+)-[^/]+$")

_STATUS_STYLE = {
    "finished": "green",
    "early_stopped": "green",
    "stopped": "red",
    "failed": "red",
    "pruned": "yellow",
    "interrupted": "yellow",
}


def render_run_list(runs: list[RunSummary], console: Any) -> None:
    """A rich table: run, status, stage/method, model, steps, last train loss, final eval loss, when."""
    from rich import box
    from rich.table import Table

    rows = []
    for run in runs:
        steps = f"{run.steps}/{run.total_steps}" if run.total_steps else str(run.steps or "-")
        rows.append(
            [
                _short_name(run.name),
                run.status,
                f"{run.stage or '-'} {run.method or ''}".strip(),
                _short_model(run.model),
                steps,
                f"{run.train_loss:.4f}" if run.train_loss is not None else "-",
                f"{run.eval_loss:.4f}" if run.eval_loss is not None else "-",
                run.when[5:],  # MM-DD HH:MM
            ]
        )
    headers = ["run", "status", "stage", "model", "steps", "loss", "eval loss", "when"]
    # a column with one value for every run (same model, same stage) goes into the title instead
    same = [i for i in (2, 3) if len(rows) > 1 and len({row[i] for row in rows}) == 1]
    title = " · ".join([f"{len(runs)} runs", *[rows[0][i] for i in same]])
    widths = [max([len(h)] + [len(row[i]) for row in rows]) + 3 for i, h in enumerate(headers)]
    if 3 not in same and sum(w for i, w in enumerate(widths) if i not in same) > console.width:
        same.append(3)  # too narrow for every column: the model is the one to give up
        title += " (widen the terminal to see the model column)"
    table = Table(title=title, box=box.SIMPLE_HEAD, caption="loss: last training loss; eval loss: final")
    for i, header in enumerate(headers):
        if i in same:
            continue
        if header in ("run", "model"):  # may wrap (run) or be cut (model) on a narrow terminal
            if header == "run":
                table.add_column(header, overflow="fold")
            else:
                table.add_column(header, overflow="ellipsis", no_wrap=True, max_width=20)
        else:
            widest = max([len(header)] + [len(row[i]) for row in rows])
            justify = "right" if header in ("steps", "loss", "eval loss") else "left"
            table.add_column(header, justify=justify, no_wrap=True, min_width=widest)  # type: ignore[arg-type]
    for row in rows:
        style = _STATUS_STYLE.get(row[1], "")
        row[1] = f"[{style}]{row[1]}[/]" if style else row[1]
        table.add_row(*[cell for i, cell in enumerate(row) if i not in same])
    console.print(table)


def _short_name(name: str) -> str:
    """study/trial-007 for study/trial-007-lr0.0003-r16: the settings are in trials.csv, and
    `runs compare` accepts the short form."""
    return _TRIAL_LABEL.sub(r"\1", name)


def _short_model(model: str | None) -> str:
    if not model:
        return "-"
    return model if len(model) <= 20 else "…" + model[-19:]
