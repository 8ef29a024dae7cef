"""`tunelab runs compare`: final metrics side by side, the config keys that differ, and the loss
curves of all runs overlaid in one plot. Reads run directories only (no torch import)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.errors import ConfigError
from tunelab.runs.plots import metric_series, save_figure, smooth
from tunelab.runs.rundir import RunDir
from tunelab.runs.summary import RunSummary, is_run_dir, summarize_run

__all__ = [
    "METRIC_KEYS",
    "Comparison",
    "compare_runs",
    "config_differences",
    "plot_loss_overlay",
    "resolve_run_dir",
]

# Final metrics shown side by side, in this order, when at least one run has them.
METRIC_KEYS = (
    "status",
    "global_step",
    "train_loss",
    "eval_loss",
    "eval_perplexity",
    "eval_accuracy",
    "train_runtime",
    "tokens_per_second",
    "trainable_params",
    "compute_type",
)

# Keys that differ between any two runs by construction, so listing them says nothing.
_ALWAYS_DIFFERENT = {"output_dir", "resume_from_checkpoint", "overwrite_output_dir"}


@dataclass
class Comparison:
    """Runs, their final metrics (key -> one value per run), differing config keys, the plot."""

    runs: list[RunSummary]
    metrics: dict[str, list[Any]]
    differences: dict[str, list[Any]]
    plot: Path | None


def config_differences(runs: Sequence[RunSummary]) -> dict[str, list[Any]]:
    """Config key -> each run's value, for the keys whose values are not all equal."""
    keys: list[str] = []
    for run in runs:
        keys.extend(k for k in run.config if k not in keys)
    missing = object()
    diff: dict[str, list[Any]] = {}
    for key in keys:
        if key in _ALWAYS_DIFFERENT:
            continue
        values = [run.config.get(key, missing) for run in runs]
        if any(v != values[0] for v in values[1:]):
            diff[key] = [None if v is missing else v for v in values]
    return diff


def plot_loss_overlay(
    runs: Sequence[tuple[str, Path]], path: Path, *, title: str = "loss curves"
) -> Path | None:
    """Training loss (smoothed) and eval loss of every (label, run directory), overlaid; None if no data."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.runs.fonts import use_cjk_fallback

    use_cjk_fallback()  # Chinese labels render instead of boxes

    curves = []
    for label, run_dir in runs:
        rows = RunDir(run_dir).read_log()
        curves.append((label, metric_series(rows, "loss"), metric_series(rows, "eval_loss")))
    has_eval = any(ev[1] for _, _, ev in curves)
    if not any(tr[1] for _, tr, _ in curves) and not has_eval:
        return None
    fig, axes = plt.subplots(
        1, 2 if has_eval else 1, figsize=(12 if has_eval else 7, 4.5), dpi=100, squeeze=False
    )
    colors = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20")
    for i, (label, (steps, loss), (eval_steps, eval_loss)) in enumerate(curves):
        color = colors(i % colors.N)
        if loss:
            axes[0][0].plot(steps, smooth(loss), color=color, label=label)
        if has_eval and eval_loss:
            axes[0][1].plot(eval_steps, eval_loss, "o-", color=color, markersize=3, label=label)
    axes[0][0].set_title(f"{title}: train (smoothed)")
    if has_eval:
        axes[0][1].set_title(f"{title}: eval")
    for ax in axes[0]:
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if not handles:
        handles, labels = axes[0][-1].get_legend_handles_labels()
    if len(handles) <= 12:  # beyond that a legend hides the curves
        axes[0][-1].legend(handles, labels, fontsize=7)
    save_figure(fig, path)
    return path


def resolve_run_dir(path: str | Path) -> Path:
    """``path``, or the one folder beside it whose name extends it (study/trial-007 ->
    study/trial-007-lr0.0003-r16), as `runs list` shows trials."""
    path = Path(path)
    if path.exists() or not path.parent.is_dir():
        return path
    matches = [p for p in path.parent.glob(f"{path.name}-*") if p.is_dir()]
    return matches[0] if len(matches) == 1 else path


def _labels(paths: Sequence[Path]) -> list[str]:
    """Run names, with the parent folder added where two runs share a name (trial-000 of two studies)."""
    names = [p.name for p in paths]
    return [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]


def compare_runs(paths: Sequence[str | Path], *, plot_path: str | Path | None = None) -> Comparison:
    """Compare two or more run directories; the overlay plot goes to ``plot_path``
    (default: compare_loss.png in the runs' common parent folder)."""
    dirs = [resolve_run_dir(p) for p in paths]
    missing = [str(p) for p in dirs if not is_run_dir(p)]
    if missing:
        raise ConfigError(
            f"not a run directory (no config.yaml): {', '.join(missing)}",
            "pass folders written by `tunelab train`; `tunelab runs list DIR` shows them",
        )
    if len(dirs) < 2:
        raise ConfigError("runs compare needs at least two runs", "e.g. tunelab runs compare runs/a runs/b")
    runs = [summarize_run(p, name=label) for p, label in zip(dirs, _labels(dirs))]
    metrics = {
        key: [run.metrics.get(key) for run in runs]
        for key in METRIC_KEYS
        if any(key in run.metrics for run in runs)
    }
    if plot_path is None:
        common = Path(*_common_parts([p.resolve() for p in dirs]))
        plot_path = common / "compare_loss.png"
    plot = plot_loss_overlay([(r.name, r.path) for r in runs], Path(plot_path), title="compare")
    return Comparison(runs, metrics, config_differences(runs), plot)


def _common_parts(paths: Sequence[Path]) -> tuple[str, ...]:
    parts = [p.parent.parts for p in paths]
    common: list[str] = []
    for items in zip(*parts):
        if any(i != items[0] for i in items):
            break
        common.append(items[0])
    return tuple(common) or (".",)


def render_comparison(comparison: Comparison, console: Any) -> None:
    """Two rich tables (final metrics; config differences) and the plot's path."""
    from rich.table import Table

    names = [r.name for r in comparison.runs]
    metrics = Table(title="final metrics")
    metrics.add_column("metric")
    for name in names:
        metrics.add_column(name, justify="right", overflow="fold")
    for key, values in comparison.metrics.items():
        metrics.add_row(key, *[_cell(v) for v in values])
    console.print(metrics)
    if comparison.differences:
        diff = Table(title=f"config differences ({len(comparison.differences)} keys)")
        diff.add_column("key")
        for name in names:
            diff.add_column(name, justify="right", overflow="fold")
        for key, values in comparison.differences.items():
            diff.add_row(key, *[_cell(v) for v in values])
        console.print(diff)
    else:
        console.print("configs are identical (apart from output_dir)")
    if comparison.plot is not None:
        console.print(f"loss curves: {comparison.plot}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return str(value)[:40]
    return str(value)
