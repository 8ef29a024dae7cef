"""What the UI shows about a run while it trains, read from its run directory through tunelab.runs.

Everything here is derived from trainer_log.jsonl, events.jsonl and metrics.json, the same files
`tunelab runs` and the plots read, so the browser shows exactly what the run recorded.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.runs.plots import smooth
from tunelab.runs.rundir import RunDir
from tunelab.webui.i18n import TEXTS, tr, tr_or

__all__ = ["Progress", "curve_figure", "curve_frame", "events_html", "read_progress"]

_SEVERITY = {"stop": "stop", "rollback": "act", "halve_lr": "act", "warn": "warn"}


@dataclass
class Progress:
    """Where a run stands: steps, share done, elapsed time and ETA, latest loss."""

    step: int = 0
    total: int = 0
    percentage: float = 0.0
    elapsed: str = ""
    remaining: str = ""
    loss: float | None = None
    eval_loss: float | None = None
    epoch: float | None = None

    def text(self, lang: str) -> str:
        if not self.total:
            return tr("progress.waiting", lang)
        parts = [tr("progress.step", lang, step=self.step, total=self.total, pct=f"{self.percentage:.0f}")]
        if self.elapsed:
            parts.append(tr("progress.elapsed", lang, t=self.elapsed))
        if self.remaining:
            parts.append(tr("progress.eta", lang, t=self.remaining))
        if self.loss is not None:
            parts.append(tr("progress.loss", lang, v=f"{self.loss:.4f}"))
        if self.eval_loss is not None:
            parts.append(tr("progress.eval_loss", lang, v=f"{self.eval_loss:.4f}"))
        return " · ".join(parts)


def read_progress(run_dir: str | Path | None) -> Progress:
    """Progress of the run in ``run_dir`` from its last log rows (empty before the first row)."""
    if not run_dir:
        return Progress()
    rows = RunDir(run_dir).read_log()
    if not rows:
        return Progress()
    last = rows[-1]
    losses = [r["loss"] for r in rows if _finite(r.get("loss"))]
    evals = [r["eval_loss"] for r in rows if _finite(r.get("eval_loss"))]
    total = int(last.get("total_steps") or 0)
    step = int(last.get("current_steps") or 0)
    return Progress(
        step=step,
        total=total,
        percentage=float(last.get("percentage") or (100.0 * step / total if total else 0.0)),
        elapsed=str(last.get("elapsed_time") or ""),
        remaining=str(last.get("remaining_time") or ""),
        loss=losses[-1] if losses else None,
        eval_loss=evals[-1] if evals else None,
        epoch=last.get("epoch"),
    )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def curve_frame(rows: list[dict[str, Any]], keys: dict[str, str], *, smoothed: str | None = None) -> Any:
    """A long-format DataFrame (step, value, series) of log ``keys`` (log key -> series name).

    ``smoothed`` names an extra series: the first key's values smoothed as in plots/loss.png.
    """
    import pandas as pd

    records = []
    for key, series in keys.items():
        points = [
            (int(r.get("current_steps", i)), float(r[key])) for i, r in enumerate(rows) if _finite(r.get(key))
        ]
        records.extend({"step": s, "value": v, "series": series} for s, v in points)
        if smoothed and key == next(iter(keys)) and len(points) > 1:
            records.extend(
                {"step": s, "value": v, "series": smoothed}
                for (s, _), v in zip(points, smooth([v for _, v in points]))
            )
    frame = pd.DataFrame(records, columns=["step", "value", "series"])
    # typed even when empty: the plot decides once whether an axis is numeric
    return frame.astype({"step": "int64", "value": "float64", "series": "str"})


_COLORS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
)


def curve_figure(frame: Any, *, title: str, ylabel: str, log_y: bool = False, lang: str = "en") -> Any:
    """A matplotlib Figure of a long-format frame (step, value, series): one line per series.

    Series named "... (smoothed)" are drawn solid over their faint raw series; "eval" series get
    markers, since evaluations are sparse. Legend entries and the step axis are in ``lang``.
    Returns None when there is nothing to draw yet.
    """
    if frame is None or len(frame) == 0:
        return None
    from matplotlib.figure import Figure

    from tunelab.runs.fonts import use_cjk_fallback
    from tunelab.runs.plot_texts import plot_text, series_label

    use_cjk_fallback()  # Chinese labels render instead of boxes
    fig = Figure(figsize=(7, 3.6), dpi=100)
    ax = fig.add_subplot()
    names = list(dict.fromkeys(frame["series"]))
    bases = [n for n in names if not n.endswith("(smoothed)")]
    for name in names:
        part = frame[frame["series"] == name]
        base = name.removesuffix(" (smoothed)")
        color = _COLORS[bases.index(base) % len(_COLORS)] if base in bases else _COLORS[0]
        smoothed_exists = f"{name} (smoothed)" in names
        style: dict[str, Any] = {"color": color, "label": series_label(name, lang)}
        if "eval" in name:
            style.update(marker="o", markersize=4)
        elif smoothed_exists:
            style.update(alpha=0.3)
        ax.plot(part["step"], part["value"], **style)
    ax.set_title(title)
    ax.set_xlabel(plot_text("step", lang))
    ax.set_ylabel(ylabel)
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def events_html(run_dir: str | Path | None, lang: str, *, limit: int = 12) -> str:
    """The run's events (health monitor, early stopping, resume, interruption), newest first, as HTML.

    Monitor actions are coloured by severity so that a stopped or rescued run is seen at once.
    """
    if not run_dir:
        return ""
    events = RunDir(run_dir).read_events()
    if not events:
        return f"<div class='tl-events tl-empty'>{html.escape(tr('events.none', lang))}</div>"
    items = []
    for event in reversed(events[-limit:]):
        action = str(event.get("action") or "")
        severity = _SEVERITY.get(action, "info")
        step = event.get("step")
        kind = str(event.get("kind", ""))
        head = (
            tr_or(f"event.{kind}", lang, kind)
            + (f" · {tr_or(f'action.{action}', lang, action)}" if action else "")
            + (f" · {tr('event.step', lang, step=step)}" if step is not None else "")
        )
        items.append(
            f"<div class='tl-event tl-{severity}'><b>{html.escape(head)}</b> "
            f"<span>{html.escape(_event_message(event, lang))}</span></div>"
        )
    title = html.escape(tr("events.title", lang, n=len(events)))
    return f"<div class='tl-events'><div class='tl-events-title'>{title}</div>{''.join(items)}</div>"


def _event_message(event: dict[str, Any], lang: str) -> str:
    """An event's message: events.jsonl keeps English, and health and early-stopping events their
    Chinese text too (message_zh); the kinds with their facts recorded are rendered again in ``lang``
    (others show as the run wrote them)."""
    kind, message = str(event.get("kind", "")), str(event.get("message", ""))
    if lang != "en" and event.get(f"message_{lang}"):
        return str(event[f"message_{lang}"])
    if lang == "en" or f"eventmsg.{kind}" not in TEXTS:
        return message
    checkpoint = Path(str(event.get("checkpoint") or "-")).name
    return tr(f"eventmsg.{kind}", lang, step=event.get("step", "-"), checkpoint=checkpoint)
