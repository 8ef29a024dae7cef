"""The Runs tab: every run under the runs folder; compare several (curves overlaid, config differences);
resume an interrupted one; where to see one in TensorBoard."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError
from tunelab.webui.context import UIContext, error_html, message_html, table_cell
from tunelab.webui.i18n import headers, tr, tr_or
from tunelab.webui.resume import resumable, resume_run
from tunelab.webui.watch import curve_figure, curve_frame

__all__ = ["build", "compare", "run_details", "run_table", "wire_resume"]

_COLUMNS = ("run", "status", "stage", "method", "model", "steps", "train_loss", "eval_loss", "when")


def run_table(ctx: UIContext, lang: str = "en") -> tuple[Any, list[str]]:
    """(DataFrame of the runs, newest first, columns and statuses in ``lang``; their paths) via tunelab.runs.listing."""
    import pandas as pd

    from tunelab.runs.listing import list_runs

    try:
        runs = list_runs(ctx.runs_dir)
    except TunelabError:
        runs = []
    rows = [
        {
            "run": r.name,
            "status": tr_or(f"state.{r.status}", lang, r.status),
            "stage": r.stage or "",
            "method": r.method or "",
            "model": r.model or "",
            "steps": f"{r.steps}/{r.total_steps}" if r.total_steps else str(r.steps or ""),
            "train_loss": round(r.train_loss, 4) if r.train_loss is not None else None,
            "eval_loss": round(r.eval_loss, 4) if r.eval_loss is not None else None,
            "when": r.when,
        }
        for r in runs
    ]
    frame = pd.DataFrame(rows, columns=list(_COLUMNS))
    frame.columns = headers(_COLUMNS, lang)
    return frame, [str(r.path) for r in runs]


def compare(ctx: UIContext, lang: str, names: list[str] | None) -> tuple[Any, Any, Any, str]:
    """(overlaid loss curves, metrics table, config-difference table, status) for the chosen runs."""
    import pandas as pd

    from tunelab.runs.compare import compare_runs
    from tunelab.runs.rundir import RunDir

    empty = None
    paths = [ctx.runs_dir / n for n in names or []]
    if len(paths) < 2:
        return empty, pd.DataFrame(), pd.DataFrame(), tr("runs.pick_two", lang)
    try:
        for path in paths:
            ctx.guard.check(path, "run")
        result = compare_runs(paths, plot_path=ctx.state_dir / "compare_loss.png")
    except TunelabError as exc:
        return empty, pd.DataFrame(), pd.DataFrame(), error_html(exc, lang)
    frames = []
    for run in result.runs:
        rows = RunDir(run.path).read_log()
        frame = curve_frame(rows, {"loss": f"{run.name} train", "eval_loss": f"{run.name} eval"})
        frames.append(frame)
    curves = curve_figure(
        pd.concat(frames, ignore_index=True),
        title=tr("lbl.compare_curves", lang),
        ylabel=tr("plot.loss", lang),
        lang=lang,
    )
    labels = [r.name for r in result.runs]
    metrics = pd.DataFrame(
        [
            {tr("col.metric", lang): k, **{n: table_cell(v) for n, v in zip(labels, vals)}}
            for k, vals in result.metrics.items()
        ]
    )
    diffs = pd.DataFrame(
        [
            {tr("col.key", lang): k, **{n: table_cell(v) for n, v in zip(labels, vals)}}
            for k, vals in result.differences.items()
        ]
    )
    if diffs.empty:
        diffs = pd.DataFrame([{tr("col.key", lang): tr("runs.no_diff", lang)}])
    return curves, metrics, diffs, ""


def run_details(ctx: UIContext, lang: str, name: str | None) -> tuple[str, bool]:
    """(html about run ``name``: status, last checkpoint, where to see it in TensorBoard; whether it can resume)."""
    from tunelab.runs.rundir import RunDir
    from tunelab.runs.summary import summarize_run
    from tunelab.webui.tensorboard import find_tensorboard, logs_to_tensorboard, tensorboard_command

    if not name:
        return "", False
    try:
        path, why_not = resumable(ctx, name)
    except TunelabError as exc:
        return error_html(exc, lang), False
    summary = summarize_run(path, name=name)
    checkpoint = RunDir(path).latest_checkpoint()
    parts = [
        message_html(
            tr(
                "runs.details",
                lang,
                run=name,
                status=summary.status,
                checkpoint=checkpoint.name if checkpoint else "-",
            ),
            "info",
        )
    ]
    if logs_to_tensorboard(summary.config.get("report_to")):
        server = find_tensorboard(path)
        if server is not None:
            url = html.escape(server.url)
            parts.append(
                f"<div class='tl-msg tl-info' id='tl-runs-tensorboard'>{html.escape(tr('runs.tb_link', lang))} "
                f"<a href='{url}' target='_blank' rel='noopener'>{url}</a></div>"
            )
        else:
            parts.append(
                f"<div class='tl-msg tl-info' id='tl-runs-tensorboard'>{html.escape(tr('runs.tb_command', lang))}"
                f"<pre>{html.escape(tensorboard_command(path))}</pre></div>"
            )
    return "".join(parts), not why_not


def wire_resume(ctx: UIContext, runs_w: dict[str, Any], train_w: dict[str, Any], tab_set: Any) -> None:
    """Resume in the Runs tab starts the job and switches to the Train tab, which shows it."""
    import gradio as gr

    def on_resume(lang: str, name: str | None) -> list[Any]:
        job_id, status = resume_run(ctx, lang, name)
        if job_id is None:
            return [gr.update(), gr.update(), gr.update(), gr.update(), status]
        return [job_id, status, gr.Timer(active=True), gr.Tabs(selected="train"), status]

    runs_w["resume"].click(
        on_resume,
        [ctx.lang, runs_w["selected"]],
        [train_w["job_id"], train_w["status"], train_w["timer"], tab_set, runs_w["details"]],
    )


def build(ctx: UIContext) -> dict[str, Any]:
    """Build the Runs tab inside the current Blocks and wire its events."""
    import gradio as gr

    lang, t = ctx.default_lang, ctx.translator
    w: dict[str, Any] = {}
    with gr.Row():
        w["refresh"] = t.value(
            gr.Button(tr("btn.refresh", lang), scale=0, min_width=100, elem_id="tl-runs-refresh"),
            "btn.refresh",
        )
        w["pick"] = t.label(
            gr.Dropdown(
                multiselect=True,
                choices=[],
                label=tr("lbl.compare_runs", lang),
                elem_id="tl-runs-pick",
                scale=4,
            ),
            "lbl.compare_runs",
        )
        w["compare"] = t.value(
            gr.Button(
                tr("btn.compare", lang), variant="primary", scale=0, min_width=100, elem_id="tl-runs-compare"
            ),
            "btn.compare",
        )
    w["table"] = t.label(
        gr.Dataframe(
            headers=headers(_COLUMNS, lang),
            label=tr("lbl.runs", lang),
            interactive=False,
            elem_id="tl-runs-table",
        ),
        "lbl.runs",
    )
    with gr.Row():
        w["selected"] = t.label(
            gr.Dropdown(choices=[], label=tr("lbl.run_selected", lang), elem_id="tl-runs-selected", scale=4),
            "lbl.run_selected",
        )
        w["resume"] = t.value(
            gr.Button(
                tr("btn.resume_run", lang),
                scale=0,
                min_width=140,
                interactive=False,
                elem_id="tl-runs-resume",
            ),
            "btn.resume_run",
        )
    w["details"] = gr.HTML("", elem_id="tl-runs-details")
    w["status"] = gr.HTML("")
    w["curves"] = t.label(
        gr.Plot(label=tr("lbl.compare_curves", lang), elem_id="tl-runs-curves", format="png"),
        "lbl.compare_curves",
    )
    with gr.Row():
        metrics = gr.Dataframe(
            headers=headers(["metric"], lang), label=tr("lbl.metrics", lang), interactive=False
        )
        w["metrics"] = t.headers(t.label(metrics, "lbl.metrics"), ["metric"])
        diffs = gr.Dataframe(
            headers=headers(["key"], lang), label=tr("lbl.config_diff", lang), interactive=False
        )
        w["diffs"] = t.headers(t.label(diffs, "lbl.config_diff"), ["key"])

    def refresh(lang: str, current: list[str] | None, selected: str | None = None) -> list[Any]:
        table, paths = run_table(ctx, lang)
        names = [
            str(Path(p).relative_to(ctx.runs_dir)) if Path(p).is_relative_to(ctx.runs_dir) else p
            for p in paths
        ]
        return [
            table,
            gr.update(choices=names, value=[c for c in current or [] if c in names]),
            gr.update(choices=names, value=selected if selected in names else None),
        ]

    def show(lang: str, name: str | None) -> list[Any]:
        details, resumable = run_details(ctx, lang, name)
        return [details, gr.update(interactive=resumable)]

    listing = ([ctx.lang, w["pick"], w["selected"]], [w["table"], w["pick"], w["selected"]])
    w["refresh"].click(refresh, *listing)
    ctx.lang.change(refresh, *listing)  # headers and statuses
    w["selected"].change(show, [ctx.lang, w["selected"]], [w["details"], w["resume"]])
    w["compare"].click(
        lambda lang, names: compare(ctx, lang, names),
        [ctx.lang, w["pick"]],
        [w["curves"], w["metrics"], w["diffs"], w["status"]],
    )
    w["on_load"] = [(refresh, *listing)]
    return w
