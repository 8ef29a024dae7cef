"""Show eval results: a metrics table for one model, or two side by side with deltas (before vs after).

Whether a delta is good depends on the metric: losses and perplexity should fall, scores should rise;
counts (samples, tokens) and runtimes have no better direction and get no colour.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MetricRow",
    "ProgressLine",
    "compare_metrics",
    "higher_is_better",
    "render_comparison",
    "render_metrics",
]

_NEUTRAL = ("_tokens", "_samples", "_runtime", "mc_n")


def higher_is_better(key: str) -> bool | None:
    """True for scores, False for losses/perplexity, None for counts and times (no better direction)."""
    if key.endswith(_NEUTRAL) or key in _NEUTRAL:
        return None
    return not ("loss" in key or "perplexity" in key)


@dataclass(frozen=True)
class MetricRow:
    """One metric of a comparison: the reference's value, the candidate's, and candidate - reference."""

    key: str
    reference: float | None
    candidate: float | None

    @property
    def delta(self) -> float | None:
        if self.reference is None or self.candidate is None:
            return None
        return self.candidate - self.reference

    @property
    def improved(self) -> bool | None:
        """Whether the candidate is better (None: no direction, no change, or a value is missing)."""
        better = higher_is_better(self.key)
        if better is None or self.delta is None or self.delta == 0:
            return None
        return (self.delta > 0) == better


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    }


def compare_metrics(reference: Mapping[str, Any], candidate: Mapping[str, Any]) -> list[MetricRow]:
    """Rows for every numeric metric of either side, in the candidate's order then the reference's."""
    ref, cand = _numbers(reference), _numbers(candidate)
    keys = list(cand) + [k for k in ref if k not in cand]
    return [MetricRow(k, ref.get(k), cand.get(k)) for k in keys]


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == int(value) and abs(value) < 1e9:
        return f"{int(value)}"
    return f"{value:.4f}" if abs(value) < 100 else f"{value:.2f}"


def render_metrics(metrics: Mapping[str, Any], console: Any, *, title: str = "evaluation") -> None:
    """Print one model's numeric metrics as a two-column table."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric", no_wrap=True)
    table.add_column("value", justify="right")
    for key, value in _numbers(metrics).items():
        table.add_row(key, _fmt(value))
    console.print(table)


def render_comparison(
    reference: Mapping[str, Any],
    candidate: Mapping[str, Any],
    console: Any,
    *,
    reference_label: str = "reference",
    candidate_label: str = "candidate",
) -> None:
    """Print both models' metrics side by side with the delta, green where the candidate is better."""
    from rich.table import Table

    table = Table(title="before vs after (delta = after - before)")
    table.add_column("metric", no_wrap=True)
    table.add_column(reference_label, justify="right", overflow="fold")
    table.add_column(candidate_label, justify="right", overflow="fold")
    table.add_column("delta", justify="right")
    for row in compare_metrics(reference, candidate):
        neutral_and_equal = higher_is_better(row.key) is None and row.delta == 0
        delta = "" if row.delta is None or neutral_and_equal else f"{row.delta:+.4f}"
        if row.improved is True:
            delta = f"[green]{delta}[/]"
        elif row.improved is False:
            delta = f"[red]{delta}[/]"
        table.add_row(row.key, _fmt(row.reference), _fmt(row.candidate), delta)
    console.print(table)


class ProgressLine:
    """A progress bar on `console` advanced by calls `progress(n_done)`; it closes itself at `total`."""

    def __init__(self, console: Any, total: int, description: str = "generating") -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.total = total
        self.done = 0
        self._bar = Progress(
            TextColumn(description),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task = self._bar.add_task(description, total=total)
        self._bar.start()

    def __call__(self, n: int) -> None:
        self.done += n
        self._bar.update(self._task, advance=n)
        if self.done >= self.total:
            self._bar.stop()
