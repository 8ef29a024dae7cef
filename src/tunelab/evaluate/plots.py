"""Figures of eval results: benchmark accuracy per subject, and before-vs-after bars of two models."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.evaluate.report import compare_metrics, higher_is_better
from tunelab.runs.plot_texts import plot_text

if TYPE_CHECKING:
    from tunelab.evaluate.run import EvalResult

__all__ = ["plot_benchmark", "plot_comparison"]

_CJK_FONTS = [
    "Noto Sans CJK SC",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "DejaVu Sans",
]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.runs.fonts import use_cjk_fallback

    use_cjk_fallback()  # Chinese labels render instead of boxes

    return plt


def _save(fig: Any, path: Path) -> Path:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.tight_layout()
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def _grouped_bars(ax: Any, names: list[str], series: Mapping[str, list[float]]) -> None:
    width = 0.8 / max(len(series), 1)
    for k, (label, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(names))]
        bars = ax.bar(xs, values, width, label=label)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(
        range(len(names)),
        labels=names,
        rotation=30 if len(names) > 4 else 0,
        ha="right" if len(names) > 4 else "center",
    )
    ax.grid(axis="y", alpha=0.3)


def plot_benchmark(
    per_model: Mapping[str, Mapping[str, float]],
    path: Path,
    *,
    title: str | None = None,
    lang: str | None = None,
) -> Path:
    """Accuracy per subject (and overall) for one or more models, from their mc_* metrics (texts in ``lang``)."""
    plt = _pyplot()
    title = title or plot_text("benchmark", lang)
    first = next(iter(per_model.values()))
    subjects = [k.split("/", 1)[1] for k in first if k.startswith("mc_accuracy/")]
    names = [*subjects, plot_text("overall", lang)]
    series = {
        label: [m.get(f"mc_accuracy/{s}", 0.0) for s in subjects] + [m.get("mc_accuracy", 0.0)]
        for label, m in per_model.items()
    }
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names) * max(1, len(series)) ** 0.5), 4), dpi=100)
    _grouped_bars(ax, names, series)
    ax.set_ylim(0, 105)
    ax.set_ylabel(plot_text("accuracy_pct", lang))
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_comparison(
    reference: EvalResult, candidate: EvalResult, path: Path, *, lang: str | None = None
) -> Path | None:
    """Two panels: scores (higher is better, 0-100) and losses (lower is better), both models per metric."""
    plt = _pyplot()
    rows = [r for r in compare_metrics(reference.metrics, candidate.metrics) if r.delta is not None]
    scores = [r for r in rows if higher_is_better(r.key) is True]
    losses = [r for r in rows if higher_is_better(r.key) is False and "perplexity" not in r.key]
    panels = [(p, plot_text(t, lang)) for p, t in ((scores, "scores"), (losses, "losses")) if p]
    if not panels:
        return None
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(5 + 1.0 * sum(len(p) for p, _ in panels), 4),
        dpi=100,
        squeeze=False,
        gridspec_kw={"width_ratios": [max(len(p), 1) for p, _ in panels]},
    )
    for ax, (panel, title) in zip(axes[0], panels):
        names = [r.key.replace("mc_accuracy/", "mc/") for r in panel]
        series = {
            reference.label: [r.reference or 0.0 for r in panel],
            candidate.label: [r.candidate or 0.0 for r in panel],
        }
        _grouped_bars(ax, names, series)
        ax.set_title(title)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(plot_text("before_after", lang))
    return _save(fig, path)
