"""Plots speak the UI's language: titles, axes and legends of run plots and Optuna's plots in Chinese."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tunelab.runs import plots
from tunelab.runs.plot_texts import OPTUNA_TEXTS, plot_text, relabel_figure, series_label
from tunelab.runs.rundir import RunDir
from tunelab.webui.i18n_scan import untranslated


def _texts(fig: Any) -> list[str]:
    """Every non-empty text object of a figure except tick labels (numbers)."""
    ticks = {id(t) for ax in fig.axes for t in ax.get_xticklabels() + ax.get_yticklabels()}
    found = fig.findobj(lambda a: hasattr(a, "get_text") and id(a) not in ticks)
    return [t.get_text() for t in found if t.get_text().strip()]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = RunDir(tmp_path / "run")
    for step in range(1, 9):
        row = {"current_steps": step, "total_steps": 8, "loss": 3 - 0.1 * step, "learning_rate": 1e-3}
        run.write_log_row({**row, "grad_norm": 1.0, **({"eval_loss": 2.9} if step % 4 == 0 else {})})
    return run.path


def test_run_plots_are_drawn_in_chinese(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[list[str]] = []
    save = plots.save_figure

    def keep(fig: Any, path: Path) -> None:
        drawn.append(_texts(fig))
        save(fig, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    written = plots.plot_run(run_dir, lang="zh")
    assert {p.name for p in written} == {"loss.png", "lr.png", "grad_norm.png"}
    loss = drawn[0]
    assert "训练损失" in loss and "训练" in loss and "训练（平滑）" in loss and "评估" in loss
    assert all(not untranslated(text) for figure in drawn for text in figure), drawn
    drawn.clear()
    plots.plot_run(run_dir, lang="en")
    assert "training loss" in drawn[0] and "train (smoothed)" in drawn[0]


def test_plots_follow_the_commands_language_when_none_is_given(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNELAB_LANG", "zh")  # what the web UI sets for the jobs it starts
    assert plot_text("step") == "步数"
    monkeypatch.setenv("TUNELAB_LANG", "en")
    assert plot_text("step") == "step"


def test_series_labels_of_the_ui_curves() -> None:
    assert series_label("train (smoothed)", "zh") == "训练（平滑）"
    assert series_label("run-a eval", "zh") == "run-a 评估"
    assert series_label("learning rate", "zh") == "学习率"
    assert series_label("run-a eval", "en") == "run-a eval"


def test_the_ui_curve_figure_has_a_chinese_legend() -> None:
    from tunelab.webui.watch import curve_figure, curve_frame

    rows = [{"current_steps": s, "loss": 1.0 / s, "eval_loss": 1.2 / s} for s in range(1, 8)]
    frame = curve_frame(rows, {"loss": "train", "eval_loss": "eval"}, smoothed="train (smoothed)")
    texts = _texts(curve_figure(frame, title="损失", ylabel="损失", lang="zh"))
    assert {"训练", "评估", "训练（平滑）", "步数"} <= set(texts)
    assert all(not untranslated(t) for t in texts), texts


def test_optuna_plots_are_relabelled() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    ax.plot([0, 1], [1, 0], label="Objective Value")
    ax.set_title("Optimization History Plot")
    ax.set_xlabel("Trial")
    ax.legend()
    relabel_figure(fig, OPTUNA_TEXTS)
    assert {"优化历史", "试验", "目标值"} <= set(_texts(fig))
