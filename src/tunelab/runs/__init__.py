"""Run directories: write and read logs, events, metrics, plots and model cards (no torch import)."""

from __future__ import annotations

from tunelab.runs.model_card import write_model_card
from tunelab.runs.plots import plot_run, smooth
from tunelab.runs.rundir import RunDir, atomic_write_text

__all__ = ["RunDir", "atomic_write_text", "plot_run", "smooth", "write_model_card"]
