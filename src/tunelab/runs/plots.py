"""Plots of a run's curves, drawn from trainer_log.jsonl alone (so any reader can redraw them)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunelab.runs.plot_texts import plot_lang, plot_text, series_label
from tunelab.runs.rundir import RunDir

__all__ = ["metric_series", "plot_run", "save_figure", "smooth"]


def smooth(values: Sequence[float], weight: float | None = None) -> list[float]:
    """Exponential moving average with bias correction; the weight grows with the series length.

    Short runs get light smoothing (none below 6 points) so the curve does not lag the data; long
    noisy runs get heavier smoothing (the same idea as TensorBoard's slider, chosen automatically).
    """
    if not values:
        return []
    if weight is None:
        weight = min(0.9, max(0.0, 1.0 - 5.0 / len(values)))
    out, avg = [], 0.0
    for i, value in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * value
        out.append(avg / (1 - weight**i))
    return out


def metric_series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of ``key`` in trainer_log rows; rows without a finite value are skipped."""
    steps, values = [], []
    for row in rows:
        value = row.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            steps.append(int(row.get("current_steps", len(steps))))
            values.append(float(value))
    return steps, values


def _figure(title: str, ylabel: str, lang: str):  # -> tuple[Figure, Axes]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.runs.fonts import use_cjk_fallback

    use_cjk_fallback()
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.set_title(title)
    ax.set_xlabel(plot_text("step", lang))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def save_figure(fig: Any, path: Path) -> None:
    """Write ``fig`` to ``path`` through a temporary file, so a reader never sees half a PNG."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)


def plot_run(run_dir: str | Path, *, lang: str | None = None) -> list[Path]:
    """Draw loss.png (train raw + smoothed, eval), lr.png and grad_norm.png; return the files written.

    Titles, axes and legends are in ``lang`` (default: the running command's language, see plot_texts).
    """
    lang = plot_lang(lang)
    run = RunDir(run_dir)
    rows = run.read_log()
    written: list[Path] = []
    steps, loss = metric_series(rows, "loss")
    eval_steps, eval_loss = metric_series(rows, "eval_loss")
    if loss or eval_loss:
        fig, ax = _figure(plot_text("training_loss", lang), plot_text("loss", lang), lang)
        if loss:
            ax.plot(steps, loss, color="tab:blue", alpha=0.3, label=series_label("train", lang))
            ax.plot(steps, smooth(loss), color="tab:blue", label=series_label("train (smoothed)", lang))
        if eval_loss:
            ax.plot(eval_steps, eval_loss, "o-", color="tab:orange", label=series_label("eval", lang))
        ax.legend()
        save_figure(fig, run.plots_dir / "loss.png")
        written.append(run.plots_dir / "loss.png")
    for key, name, title in (
        ("learning_rate", "lr.png", plot_text("learning_rate", lang)),
        ("grad_norm", "grad_norm.png", plot_text("gradient_norm", lang)),
    ):
        xs, ys = metric_series(rows, key)
        if not ys:
            continue
        fig, ax = _figure(title, key, lang)
        ax.plot(xs, ys, color="tab:green")
        if key == "learning_rate":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
        save_figure(fig, run.plots_dir / name)
        written.append(run.plots_dir / name)
    written += _plot_stage_metrics(rows, run.plots_dir, lang)
    return written


# Preference stages: (file, title key in plot_texts, metric keys); train as lines, eval_<key> as markers, if logged.
_STAGE_PLOTS = (
    (
        "rewards.png",
        "rewards",
        ("rewards/chosen", "rewards/rejected", "rewards/margins"),
    ),
    (
        "accuracy.png",
        "pref_accuracy",
        ("rewards/accuracies", "accuracy"),
    ),
    ("ppo.png", "ppo", ("reward", "kl")),
)


def _plot_stage_metrics(rows: list[dict[str, Any]], plots_dir: Path, lang: str) -> list[Path]:
    written = []
    for name, title, keys in _STAGE_PLOTS:
        curves = [
            (f"C{i}", prefix + key, *metric_series(rows, prefix + key))
            for prefix in ("", "eval_")
            for i, key in enumerate(keys)
        ]
        curves = [curve for curve in curves if curve[3]]
        if not curves:
            continue
        fig, ax = _figure(plot_text(title, lang), plot_text("value", lang), lang)
        for color, label, xs, ys in curves:
            ax.plot(xs, ys, "o--" if label.startswith("eval_") else "-", color=color, label=label)
        ax.legend()
        save_figure(fig, plots_dir / name)
        written.append(plots_dir / name)
    return written
