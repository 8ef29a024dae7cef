"""Results of the hyperparameter tools and studies, read from the files their commands write.

advise and find-batch write the config they recommend (``-o``), each changed key with a
``# reason`` comment; estimate prints JSON (``--json``); lr-find writes lr_find.json and lr_find.png
(``--output-dir``). A study folder holds trial-*/trial.json, summary.json, best.yaml and plots/.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.webui.context import message_html, table_cell
from tunelab.webui.i18n import headers, tr, tr_or

__all__ = [
    "TOOL_COLUMNS",
    "TRIAL_COLUMNS",
    "ToolView",
    "best_config",
    "lr_answer_html",
    "output_args",
    "read_answer_config",
    "read_tool_result",
    "stdout_file",
    "study_lr_html",
    "study_plots",
    "trial_table",
]

# what each command writes into the folder the UI gives it (estimate: its --json standard output)
RESULT_FILE = {
    "advise": "advice.yaml",
    "estimate": "estimate.json",
    "find-batch": "find_batch.yaml",
    "lr-find": "lr_find.json",
}
TOOL_COLUMNS = ("key", "value", "reason")
TRIAL_COLUMNS = ("trial", "status", "value", "params", "steps", "reason")
_COMMENTED = re.compile(r"^([A-Za-z_][\w.]*):.*?\s#\s(.+)$")


def output_args(tool: str, out_dir: Path) -> list[str]:
    """CLI options that make ``tool`` write its machine-readable result into ``out_dir``."""
    if tool in ("advise", "find-batch"):
        return ["-o", str(out_dir / RESULT_FILE[tool])]
    if tool == "estimate":
        return ["--json"]
    return ["--output-dir", str(out_dir)]


def stdout_file(tool: str, out_dir: Path) -> Path | None:
    """Where a tool's standard output goes (estimate prints its JSON answer there)."""
    return out_dir / RESULT_FILE[tool] if tool == "estimate" else None


def read_answer_config(path: Path) -> list[tuple[str, Any, str]]:
    """(key, value, reason) of every key a command changed in the config it wrote (the keys with a
    ``# reason`` comment); nested groups come as their whole mapping."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    values = yaml.safe_load(text) or {}
    rows = []
    for line in text.splitlines():
        match = _COMMENTED.match(line)
        if match and match.group(1) in values:
            rows.append((match.group(1), values[match.group(1)], match.group(2).strip()))
    return rows


@dataclass
class ToolView:
    """What the Tune tab shows for a finished tool: a table, a verdict, a plot, values to apply."""

    table: Any = None
    summary_html: str = ""
    plot: str | None = None
    apply: dict[str, Any] = field(default_factory=dict)


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def read_tool_result(tool: str, out_dir: Path, lang: str) -> ToolView:
    """The ToolView of a finished tool job whose files are in ``out_dir``."""
    import pandas as pd

    missing = ToolView(summary_html=message_html(tr("tool.no_result", lang), "warn"))
    if tool in ("advise", "find-batch"):
        rows = read_answer_config(out_dir / RESULT_FILE[tool])
        if not rows:
            return missing
        table = pd.DataFrame([{"key": k, "value": _cell(v), "reason": why} for k, v, why in rows])
        table.columns = headers(TOOL_COLUMNS, lang)
        values = {k: v for k, v, _ in rows}
        if tool == "advise":
            summary = message_html(tr("tool.advise_done", lang, n=len(rows)), "ok") + lr_answer_html(
                out_dir, lang
            )
            plot = out_dir / "lr_find.png"  # advise --measure ran the range test
            return ToolView(table, summary, str(plot) if plot.is_file() else None, values)
        micro, accum = (
            values.get("per_device_train_batch_size", "-"),
            values.get("gradient_accumulation_steps", "-"),
        )
        return ToolView(
            table, message_html(tr("tool.batch_found", lang, micro=micro, accum=accum), "ok"), apply=values
        )
    data = _load(out_dir / RESULT_FILE.get(tool, ""))
    if data is None:
        return missing
    if tool == "estimate":
        return _estimate_view(data, lang)
    suggestion = data.get("suggestion")
    rows = [
        {"key": tr_or(f"part.{k}", lang, k), "value": _fact(v, lang)}
        for k, v in data.items()
        if not isinstance(v, list)
    ]
    plot = out_dir / "lr_find.png"
    values = {"learning_rate": float(suggestion)} if suggestion else {}
    text = tr("tool.lr_found", lang, lr=_cell(suggestion)) if suggestion else tr("tool.no_result", lang)
    return ToolView(
        pd.DataFrame(rows).rename(columns=dict(zip(TOOL_COLUMNS, headers(TOOL_COLUMNS, lang)))),
        message_html(text, "ok" if suggestion else "warn") + lr_answer_html(out_dir, lang),
        str(plot) if plot.is_file() else None,
        values,
    )


def lr_answer_html(out_dir: Path, lang: str) -> str:
    """The learning-rate answer advise wrote (lr_answer.json): value, source, every source beside it."""
    from tunelab.tune.lr_answer import LrAnswer, LrEstimate, describe_answer

    data = _load(out_dir / "lr_answer.json")
    if data is None:
        return ""
    parts = {k: LrEstimate(**data[k]) if data.get(k) else None for k in ("recipe", "lr_find", "study")}
    answer = LrAnswer(**{**data, **parts})
    return message_html(tr("tool.lr_answer", lang, text=describe_answer(answer, lang)), "info")


def study_lr_html(study_dir: Path, lang: str) -> str:
    """The study's best learning rate (source: study) with the recipe's for its config beside it."""
    from tunelab.config import load_config
    from tunelab.errors import TunelabError
    from tunelab.tune.advise_lr import study_answer
    from tunelab.tune.lr_answer import describe_answer

    best_yaml = study_dir / "best.yaml"
    summary = _load(study_dir / "summary.json") or {}
    run_dir = (summary.get("best") or {}).get("run_dir")
    source = best_yaml if best_yaml.is_file() else Path(run_dir or "") / "config.yaml"
    if not source.is_file():
        return ""
    try:
        answer = study_answer(load_config(source), study_dir)
    except TunelabError as exc:  # the study's model is gone: the recipe prior cannot be sized
        return message_html(f"{exc.message}", "warn")
    if answer is None:
        return ""
    return message_html(tr("study.lr_answer", lang, text=describe_answer(answer, lang)), "info")


def _estimate_view(data: dict[str, Any], lang: str) -> ToolView:
    import pandas as pd

    parts = [
        {"part": tr_or(f"part.{k.removesuffix('_bytes')}", lang, k.removesuffix("_bytes")), "GB": _gb(v)}
        for k, v in data.items()
        if k.endswith("_bytes") and k != "budget_bytes"
    ]
    parts += [
        {"part": tr_or(f"part.{k}", lang, k), "GB": _cell(v)}
        for k, v in data.items()
        if k in ("seconds_per_epoch", "tokens_per_second")
    ]
    fits = bool(data.get("fits"))
    verdict = tr(
        "tool.fits" if fits else "tool.does_not_fit",
        lang,
        total=_gb(data.get("peak_bytes")),
        budget=_gb(data.get("budget_bytes")),
    )
    table = pd.DataFrame(parts, columns=["part", "GB"])
    table.columns = headers(["part", "GB"], lang)
    return ToolView(table, message_html(verdict, "ok" if fits else "error"))


def _cell(value: Any) -> str:
    """table_cell, with a dict of trial parameters written as k=v pairs."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    return table_cell(value)


def _fact(value: Any, lang: str) -> str:
    """A cell of a tool's facts: yes/no for a flag (in ``lang``), else as :func:`_cell` shows it."""
    if isinstance(value, bool):
        return tr("bool.true" if value else "bool.false", lang)
    return _cell(value)


def _gb(value: Any) -> str:
    return f"{value / 1e9:.3f}" if isinstance(value, (int, float)) else "-"


# ---- studies ------------------------------------------------------------------------------------


def trial_table(study_dir: Path, lang: str = "en") -> Any:
    """One row per trial: finished ones from trial.json, running ones from their training log
    (columns and statuses in ``lang``)."""
    import pandas as pd

    from tunelab.runs.rundir import RunDir
    from tunelab.tune.trials import read_trials

    done = {Path(o.run_dir).name: o for o in read_trials(study_dir)} if study_dir.is_dir() else {}
    rows = []
    for folder in sorted(study_dir.glob("trial-*")) if study_dir.is_dir() else []:
        outcome = done.get(folder.name)
        if outcome is not None:
            rows.append(
                {
                    "trial": outcome.number,
                    "status": tr_or(f"state.{outcome.status}", lang, outcome.status),
                    "value": _cell(outcome.value),
                    "params": ", ".join(f"{k}={_cell(v)}" for k, v in outcome.params.items()),
                    "steps": f"{outcome.steps or 0}/{outcome.total_steps or '?'}",
                    "reason": outcome.reason or "",
                }
            )
            continue
        log = RunDir(folder).read_log()
        last = log[-1] if log else {}
        rows.append(
            {
                "trial": int(folder.name.split("-")[1])
                if folder.name.split("-")[1].isdigit()
                else folder.name,
                "status": tr_or("state.running", lang, "running"),
                "value": _cell(last.get("eval_loss", last.get("loss"))),
                "params": folder.name.partition("-")[2].partition("-")[2],
                "steps": f"{last.get('current_steps', 0)}/{last.get('total_steps', '?')}",
                "reason": "",
            }
        )
    frame = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
    frame.columns = headers(TRIAL_COLUMNS, lang)
    return frame


def study_plots(study_dir: Path) -> list[str]:
    """The study's PNG plots (history, importances, parallel coordinates, ...)."""
    plots = study_dir / "plots"
    return [str(p) for p in sorted(plots.glob("*.png"))] if plots.is_dir() else []


def best_config(study_dir: Path) -> dict[str, Any] | None:
    """Flat config of the study's best trial: best.yaml (tune), or the best trial's own config.yaml."""
    import yaml

    from tunelab.config import load_config

    best_yaml = study_dir / "best.yaml"
    if best_yaml.is_file():
        return load_config(best_yaml).to_flat()
    summary = _load(study_dir / "summary.json")
    best = (summary or {}).get("best") or {}
    run_dir = best.get("run_dir")
    if run_dir and (Path(run_dir) / "config.yaml").is_file():
        loaded = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8"))
        return loaded if isinstance(loaded, dict) else None
    return None
