"""What a study leaves behind for people: a ranked table, summary.json, trials.csv and plots
(objective against each parameter, every trial's loss curves overlaid). Shared by sweep and tune."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunelab.runs.compare import plot_loss_overlay
from tunelab.runs.plots import save_figure
from tunelab.runs.rundir import atomic_write_text
from tunelab.tune.space import short_name
from tunelab.tune.trials import TrialOutcome

__all__ = ["pruning_savings", "rank_trials", "render_study", "render_trials", "write_study_files"]

_STATUS_ORDER = {"complete": 0, "pruned": 1, "failed": 2, "interrupted": 3}


def rank_trials(trials: Sequence[TrialOutcome], lower_is_better: bool) -> list[TrialOutcome]:
    """Completed trials best first, then pruned, failed and interrupted ones by number."""
    sign = 1.0 if lower_is_better else -1.0
    return sorted(
        trials,
        key=lambda t: (
            _STATUS_ORDER.get(t.status, 9),
            sign * t.value if t.status == "complete" and t.value is not None else 0.0,
            t.number,
        ),
    )


def pruning_savings(trials: Sequence[TrialOutcome]) -> dict[str, Any]:
    """Optimizer steps the trials ran vs. were scheduled to run: the compute pruning saved."""
    known = [t for t in trials if t.steps is not None and t.total_steps]
    ran = sum(int(t.steps or 0) for t in known)
    scheduled = sum(int(t.total_steps or 0) for t in known)
    return {
        "n_pruned": sum(t.status == "pruned" for t in trials),
        "steps_run": ran,
        "steps_scheduled": scheduled,
        "share_saved": round(1 - ran / scheduled, 4) if scheduled else 0.0,
    }


def _param_keys(trials: Sequence[TrialOutcome]) -> list[str]:
    keys: list[str] = []
    for trial in trials:
        keys.extend(k for k in trial.params if k not in keys)
    return keys


def _trials_csv(ranked: Sequence[TrialOutcome], metric: str) -> str:
    keys = _param_keys(ranked)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["rank", "number", "status", metric, *keys, "steps", "total_steps", "seconds", "run_dir", "reason"]
    )
    for rank, t in enumerate(ranked, start=1):
        writer.writerow(
            [
                rank if t.status == "complete" else "",
                t.number,
                t.status,
                "" if t.value is None else t.value,
                *[t.params.get(k, "") for k in keys],
                "" if t.steps is None else t.steps,
                "" if t.total_steps is None else t.total_steps,
                t.seconds,
                str(t.run_dir),
                t.reason or "",
            ]
        )
    return out.getvalue()


def write_study_files(
    study_dir: Path,
    trials: Sequence[TrialOutcome],
    *,
    metric: str,
    lower_is_better: bool,
    log_params: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write summary.json, trials.csv, plots/objective_vs_params.png and plots/loss_curves.png.

    Returns the summary (also what summary.json holds).
    """
    ranked = rank_trials(trials, lower_is_better)
    best = next((t for t in ranked if t.status == "complete"), None)
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    summary: dict[str, Any] = {
        "metric": metric,
        "direction": "minimize" if lower_is_better else "maximize",
        "n_trials": len(trials),
        "counts": counts,
        "best": best.to_json() if best else None,
        "pruning": pruning_savings(trials),
        "total_seconds": round(sum(t.seconds for t in trials), 1),
        **(extra or {}),
        "trials": [t.to_json() for t in ranked],
    }
    study_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(study_dir / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(study_dir / "trials.csv", _trials_csv(ranked, metric))
    plots = study_dir / "plots"
    written = []
    if (
        path := plot_objective_vs_params(trials, metric, plots / "objective_vs_params.png", log_params)
    ) is not None:
        written.append(str(path))
    runs = [(f"#{t.number}", t.run_dir) for t in sorted(trials, key=lambda t: t.number) if t.run_dir.is_dir()]
    if runs and (path := plot_loss_overlay(runs, plots / "loss_curves.png", title="trials")) is not None:
        written.append(str(path))
    summary["plots"] = written
    return summary


def plot_objective_vs_params(
    trials: Sequence[TrialOutcome], metric: str, path: Path, log_params: Sequence[str] = ()
) -> Path | None:
    """One panel per parameter: each completed trial's metric against that parameter's value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.runs.fonts import use_cjk_fallback

    use_cjk_fallback()  # Chinese labels render instead of boxes

    done = [t for t in trials if t.status == "complete" and t.value is not None and math.isfinite(t.value)]
    keys = [k for k in _param_keys(done) if len({repr(t.params.get(k)) for t in done}) > 1]
    if not done or not keys:
        return None
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), dpi=100, squeeze=False)
    for ax, key in zip([a for row in axes for a in row], keys):
        points = [(t.params[key], t.value) for t in done if key in t.params]
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x, _ in points)
        if numeric:
            ax.scatter([x for x, _ in points], [y for _, y in points], color="tab:blue")
            if key in log_params:
                ax.set_xscale("log")
        else:  # categorical: one column per value, in first-seen order
            labels = list(dict.fromkeys(str(x) for x, _ in points))
            ax.scatter([labels.index(str(x)) for x, _ in points], [y for _, y in points], color="tab:blue")
            ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
        ax.set_xlabel(key)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    for ax in [a for row in axes for a in row][len(keys) :]:
        ax.set_visible(False)
    fig.suptitle(f"{metric} of each completed trial")
    save_figure(fig, path)
    return path


def render_trials(
    trials: Sequence[TrialOutcome], metric: str, lower_is_better: bool, console: Any, *, limit: int = 20
) -> None:
    """Rich table of the trials ranked by the metric, with their settings; below it, why each
    trial that did not complete ended (long reasons would squeeze the table's columns)."""
    from rich.table import Table

    ranked = rank_trials(trials, lower_is_better)
    keys = _param_keys(ranked)
    arrow = "↓" if lower_is_better else "↑"
    style = {"complete": "green", "pruned": "yellow", "failed": "red", "interrupted": "yellow"}
    shown = ranked[:limit]
    params = [[_cell(t.params.get(k)) for k in keys] for t in shown]
    headers = [short_name(k) for k in keys]  # short headers (lr, r, wu, ...) keep more on one screen
    # one column per parameter when they fit beside the fixed columns (~45 characters), else one
    # wrapped "settings" column, so a narrow terminal never cuts the table off
    widths = [max([len(h)] + [len(row[i]) for row in params]) + 3 for i, h in enumerate(headers)]
    one_column = 45 + sum(widths) > console.width
    table = Table(title=f"{len(trials)} trials ranked by {metric} ({arrow} better)")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("trial", justify="right", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column(metric, justify="right", no_wrap=True)
    if one_column:
        table.add_column("settings", overflow="fold")
    else:
        for header in headers:
            table.add_column(header, justify="right", no_wrap=True)
    table.add_column("steps", justify="right", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    for rank, (t, values) in enumerate(zip(shown, params), start=1):
        cells = [" ".join(f"{h}={v}" for h, v in zip(headers, values))] if one_column else values
        table.add_row(
            str(rank) if t.status == "complete" else "",
            str(t.number),
            f"[{style.get(t.status, '')}]{t.status}[/]",
            f"{t.value:.4f}" if t.value is not None else "-",
            *cells,
            f"{t.steps}/{t.total_steps}" if t.total_steps else "-",
            f"{t.seconds:.0f}s",
        )
    console.print(table)
    if len(ranked) > limit:
        console.print(f"… {len(ranked) - limit} more in trials.csv")
    if any(short_name(k) != k for k in keys):
        console.print("columns: " + ", ".join(f"{short_name(k)}={k}" for k in keys if short_name(k) != k))
    for t in sorted((t for t in ranked[:limit] if t.reason), key=lambda t: t.number):
        console.print(f"  trial {t.number} {t.status}: {t.reason}", highlight=False)


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def render_study(
    study_dir: Path, trials: Sequence[TrialOutcome], summary: dict[str, Any], console: Any
) -> None:
    """The ranked table, then the best trial, pruning savings and the files written."""
    metric = summary["metric"]
    render_trials(trials, metric, summary["direction"] == "minimize", console)
    best = summary.get("best")
    if best:
        params = ", ".join(f"{k}={_cell(v)}" for k, v in best["params"].items())
        console.print(
            f"[green]best[/]: trial {best['number']}  {metric}={best['value']:.4f}  ({params})\n"
            f"      run: {best['run_dir']}",
            highlight=False,
        )
    else:
        console.print("[red]no trial completed[/]: see the reasons above and in trials.csv")
    pruning = summary.get("pruning") or {}
    if pruning.get("n_pruned"):
        console.print(
            f"pruning stopped {pruning['n_pruned']} trial(s) early, saving {100 * pruning['share_saved']:.0f}% "
            f"of the scheduled steps ({pruning['steps_run']} of {pruning['steps_scheduled']} run)"
        )
    if summary.get("best_config"):
        console.print(f"best config: {summary['best_config']}  (tunelab train {summary['best_config']})")
    console.print(f"study: {study_dir}  (summary.json, trials.csv, plots/)")
