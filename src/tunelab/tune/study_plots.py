"""Optuna's study plots as PNG files, through its matplotlib backend (no plotly needed).

Each plot is drawn only when the study holds what it needs: a history needs one completed trial,
parallel coordinates and slices two, parameter importances three completed trials over at least
two parameters that varied (with fewer, the importance estimate is noise).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

__all__ = ["plot_study"]


def _figure(axes: Any) -> Any:
    """The figure of what an Optuna plot returns (one Axes, or an array of them)."""
    first = axes.flat[0] if hasattr(axes, "flat") else axes
    return first.figure


def plot_study(study: Any, plots_dir: Path, *, lang: str | None = None) -> list[Path]:
    """Write optimization_history, intermediate_values, parallel_coordinate, slice and
    param_importances PNGs into ``plots_dir`` as far as the study allows; return the files written.

    Optuna draws its titles and axes in English; with ``lang`` zh (default: the running command's
    language) they are replaced by their Chinese names (tunelab.runs.plot_texts.OPTUNA_TEXTS).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunelab.runs.fonts import use_cjk_fallback
    from tunelab.runs.plot_texts import OPTUNA_TEXTS, plot_lang, relabel_figure

    use_cjk_fallback()  # Chinese labels render instead of boxes
    zh = plot_lang(lang) == "zh"
    import optuna
    import optuna.visualization.matplotlib as ovm
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    varied = [
        name
        for name in {k for t in complete for k in t.params}
        if len({repr(t.params.get(name)) for t in complete}) > 1
    ]
    has_intermediate = any(t.intermediate_values for t in study.get_trials(deepcopy=False))
    wanted = [
        ("optimization_history.png", ovm.plot_optimization_history, len(complete) >= 1),
        ("intermediate_values.png", ovm.plot_intermediate_values, has_intermediate),
        ("parallel_coordinate.png", ovm.plot_parallel_coordinate, len(complete) >= 2 and varied),
        ("slice.png", ovm.plot_slice, len(complete) >= 2 and varied),
        ("param_importances.png", ovm.plot_param_importances, len(complete) >= 3 and len(varied) >= 2),
    ]
    plots_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, plot, possible in wanted:
        if not possible:
            continue
        path = plots_dir / name
        # Optuna switches the global matplotlib style to ggplot; keep that inside this block
        with matplotlib.rc_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # a parameter that took one value gives a flat axis: matplotlib widens it and warns
            warnings.filterwarnings("ignore", message="Attempting to set identical", category=UserWarning)
            fig = _figure(plot(study))
            if zh:
                relabel_figure(fig, OPTUNA_TEXTS)
            # Optuna places colour bars itself: tight_layout would move panels under them
            fig.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(fig)
        written.append(path)
    return written
