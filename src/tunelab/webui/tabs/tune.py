"""The Tune tab: the hyperparameter tools on the current form — advise, estimate, find-batch, lr-find —
and sweep / Optuna studies with a live trial table, each result one click from the training form.

Every tool runs as its `tunelab` command (a job); results are read from the files the command wrote
(see tunelab.webui.tune_results), never scraped from the terminal.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError
from tunelab.webui import tune_results as results
from tunelab.webui.context import UIContext, error_html, message_html
from tunelab.webui.forms import UNSET_PLACEHOLDER, flat_to_form, optional_number, to_yaml
from tunelab.webui.i18n import choices, headers, tr
from tunelab.webui.jobview import job_status_html, poll_job, start_job_html

__all__ = ["TOOLS", "apply_flat", "build", "start_study", "start_tool", "tool_args"]

# tool -> the job kind and CLI command that runs it
TOOLS = ("advise", "estimate", "find-batch", "lr-find")
TASKS = ("auto", "instruction", "dialogue", "code", "classification", "preference")
STUDY_MODES = ("tune", "grid", "around", "random")


def _write_form_config(
    ctx: UIContext, kind: str, values: list[Any], **extra: Any
) -> tuple[dict[str, Any], Path]:
    """Validate the form and write it as the YAML the command reads."""
    flat = ctx.form_flat(values)
    flat.update({k: v for k, v in extra.items() if v is not None})
    ctx.guard.check_config(flat)
    from tunelab.config import config_from_dict

    config_from_dict(flat, source="web UI form")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = ctx.state_dir / "configs" / f"{kind}-{stamp}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(flat), encoding="utf-8")
    return flat, path


def tool_args(
    tool: str,
    config_path: Path,
    out_dir: Path,
    *,
    task: str = "auto",
    gpu_mem: float | str | None = None,
    max_mem: float | str | None = None,
    lr_steps: int | None = None,
    measure: bool = False,
    study_dir: str | None = None,
) -> list[str]:
    """The command line of a tool, writing its machine-readable result into ``out_dir``.

    advise also writes its learning-rate answer there (``--lr-dir``); with ``measure`` it runs the
    range test (``lr_steps`` steps) and combines it with the recipe; the study in ``study_dir``,
    when that folder holds one, overrides both."""
    args = [tool, str(config_path)]
    args += results.output_args(tool, out_dir)
    if tool == "advise" and task and task != "auto":
        args += ["--task", task]
    if tool == "advise":
        args += ["--lr-dir", str(out_dir)]
        if measure:
            args += ["--measure"] + (["--measure-steps", str(int(lr_steps))] if lr_steps else [])
        if study_dir and (Path(study_dir) / "summary.json").is_file():
            args += ["--study", str(study_dir)]
    gpu_gb = optional_number(gpu_mem, "memory budget (GB)")
    max_gb = optional_number(max_mem, "memory ceiling (GB)")
    if tool in ("advise", "estimate") and gpu_gb:
        args += ["--gpu-mem", f"{gpu_gb:g}"]
    if tool == "find-batch" and max_gb:
        args += ["--max-mem", f"{max_gb:g}"]
    if tool == "lr-find" and lr_steps:
        args += ["--steps", str(int(lr_steps))]
    return args


def start_tool(
    ctx: UIContext, lang: str, tool: str, values: list[Any], **options: Any
) -> tuple[str | None, str]:
    """Start one of the tools on the form's config; (job id or None, status html)."""
    try:
        _, path = _write_form_config(ctx, tool, values)
        if options.get("study_dir"):
            ctx.guard.check(options["study_dir"], "study dir")
    except TunelabError as exc:
        return None, error_html(exc, lang)
    out_dir = ctx.state_dir / "tools" / path.stem
    try:
        args = tool_args(tool, path, out_dir, **options)
    except TunelabError as exc:  # a memory box holding text
        return None, error_html(exc, lang)
    out_dir.mkdir(parents=True, exist_ok=True)
    stdout = results.stdout_file(tool, out_dir)
    job, status = start_job_html(ctx, tool, args, lang, run_dir=out_dir, stdout_path=stdout)
    return job.id, status


def start_study(
    ctx: UIContext,
    lang: str,
    mode: str,
    spec: str,
    n_trials: int | None,
    workers: int | None,
    study_dir: str,
    values: list[Any],
) -> tuple[str | None, str, str]:
    """Start `tunelab sweep` (grid / around / random) or `tunelab tune`; (job id, study dir, status)."""
    try:
        _, path = _write_form_config(ctx, "study", values)
        out = study_dir.strip() or str(
            ctx.runs_dir / f"{'tune' if mode == 'tune' else 'sweep'}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        ctx.guard.check(out, "study dir")
        if mode == "tune":
            args = ["tune", str(path), "--study-dir", out]
            if n_trials:
                args += ["--n-trials", str(int(n_trials))]
        else:
            args = ["sweep", str(path), "--study-dir", out]
            items = [line.strip() for line in (spec or "").replace(";", "\n").splitlines() if line.strip()]
            if mode == "grid":
                for item in items:
                    args += ["--grid", item]
            elif mode == "around":
                for item in items:
                    args += ["--around", item]
            else:
                args += ["--random", str(int(n_trials or 4))]
                for item in items:
                    args += ["--grid", item]
        if workers and int(workers) > 1:
            args += ["--workers", str(int(workers))]
    except TunelabError as exc:
        return None, study_dir, error_html(exc, lang)
    job, status = start_job_html(ctx, "study", args, lang, run_dir=out)
    return job.id, out, status


def apply_flat(ctx: UIContext, flat: dict[str, Any]) -> list[Any]:
    """Form updates that set the keys of ``flat`` (other fields keep their values)."""
    import gradio as gr

    keys = [k for k in ctx.form_keys if k in flat or (k.partition(".")[0] in flat and "." in k)]
    shown = dict(zip(keys, flat_to_form(keys, flat)))
    return [gr.update(value=shown[k]) if k in shown else gr.update() for k in ctx.form_keys]


def build(ctx: UIContext) -> dict[str, Any]:
    """Build the Tune tab inside the current Blocks and wire its events."""
    import gradio as gr

    lang, t = ctx.default_lang, ctx.translator
    w: dict[str, Any] = {"on_load": []}
    form_inputs = [ctx.lang, *ctx.form_inputs]
    form_outputs = list(ctx.fields.values())

    # ---- advise / estimate --------------------------------------------------------------------
    with gr.Row():
        w["task"] = t.label(
            gr.Dropdown(
                choices=choices("task", TASKS, lang),
                value="auto",
                label=tr("lbl.task", lang),
                elem_id="tl-tune-task",
            ),
            "lbl.task",
        )
        t.choices(w["task"], "task", TASKS)
        w["gpu_mem"] = t.label(
            gr.Textbox(  # not gr.Number, which shows an unset value as 0
                value="",
                placeholder=UNSET_PLACEHOLDER,
                label=tr("lbl.gpu_mem", lang),
                info=tr("info.gpu_mem", lang),
                elem_id="tl-tune-gpu-mem",
            ),
            "lbl.gpu_mem",
            "info.gpu_mem",
        )
        w["max_mem"] = t.label(
            gr.Textbox(  # not gr.Number, which shows an unset value as 0
                value="",
                placeholder=UNSET_PLACEHOLDER,
                label=tr("lbl.max_mem", lang),
                info=tr("info.max_mem", lang),
                elem_id="tl-tune-max-mem",
            ),
            "lbl.max_mem",
            "info.max_mem",
        )
        w["lr_steps"] = t.label(
            gr.Number(
                value=100, precision=0, minimum=10, label=tr("lbl.lr_steps", lang), elem_id="tl-tune-lr-steps"
            ),
            "lbl.lr_steps",
        )
        w["measure"] = t.label(
            gr.Checkbox(
                value=False,
                label=tr("lbl.measure", lang),
                info=tr("info.measure", lang),
                elem_id="tl-tune-measure",
            ),
            "lbl.measure",
            "info.measure",
        )
    with gr.Row():
        for tool in TOOLS:
            w[f"btn_{tool}"] = t.value(
                gr.Button(tr(f"btn.{tool}", lang), elem_id=f"tl-tune-{tool}"), f"btn.{tool}"
            )
        w["abort_tool"] = t.value(
            gr.Button(tr("btn.abort", lang), variant="stop", elem_id="tl-tune-abort-tool"), "btn.abort"
        )
    w["tool_status"] = gr.HTML("", elem_id="tl-tune-tool-status")
    with gr.Row():
        with gr.Column(scale=3):
            w["tool_table"] = t.headers(
                t.label(
                    gr.Dataframe(
                        headers=headers(results.TOOL_COLUMNS, lang),
                        label=tr("lbl.tool_result", lang),
                        interactive=False,
                        wrap=True,
                        # long reasons wrap inside the column instead of pushing it off-screen
                        column_widths=["24%", "14%", "62%"],
                        elem_id="tl-tune-table",
                    ),
                    "lbl.tool_result",
                ),
                results.TOOL_COLUMNS,
            )
            w["tool_summary"] = gr.HTML("", elem_id="tl-tune-summary")
        with gr.Column(scale=2):
            w["tool_plot"] = t.label(
                gr.Image(
                    label=tr("lbl.tool_plot", lang),
                    type="filepath",
                    interactive=False,
                    elem_id="tl-tune-plot",
                ),
                "lbl.tool_plot",
            )
    w["apply_tool"] = t.value(
        gr.Button(tr("btn.apply", lang), variant="primary", interactive=False, elem_id="tl-tune-apply"),
        "btn.apply",
    )
    w["tool_log"] = t.label(
        gr.Textbox(label=tr("lbl.log", lang), lines=5, max_lines=10, autoscroll=True), "lbl.log"
    )
    w["tool_job"] = gr.State(None)
    w["tool_values"] = gr.State({})
    w["tool_timer"] = gr.Timer(1.5, active=False)

    # ---- sweep / tune -------------------------------------------------------------------------
    with gr.Accordion(tr("acc.study", lang), open=True) as acc:
        t.label(acc, "acc.study")
        with gr.Row():
            w["mode"] = t.label(
                gr.Radio(
                    choices=choices("mode", STUDY_MODES, lang),
                    value="tune",
                    label=tr("lbl.study_mode", lang),
                    info=tr("info.study_mode", lang),
                    elem_id="tl-study-mode",
                ),
                "lbl.study_mode",
                "info.study_mode",
            )
            t.choices(w["mode"], "mode", STUDY_MODES)
            w["spec"] = t.label(
                gr.Textbox(
                    lines=2,
                    label=tr("lbl.study_spec", lang),
                    info=tr("info.study_spec", lang),
                    placeholder="learning_rate=1e-4,3e-4,1e-3",
                    elem_id="tl-study-spec",
                ),
                "lbl.study_spec",
                "info.study_spec",
            )
        with gr.Row():
            w["n_trials"] = t.label(
                gr.Number(
                    value=8, precision=0, minimum=1, label=tr("lbl.n_trials", lang), elem_id="tl-study-trials"
                ),
                "lbl.n_trials",
            )
            w["workers"] = t.label(
                gr.Number(value=1, precision=0, minimum=1, label=tr("lbl.workers", lang)), "lbl.workers"
            )
            w["study_dir"] = t.label(
                gr.Textbox(label=tr("lbl.study_dir", lang), elem_id="tl-study-dir", scale=2), "lbl.study_dir"
            )
        with gr.Row():
            w["start_study"] = t.value(
                gr.Button(tr("btn.start_study", lang), variant="primary", elem_id="tl-study-start"),
                "btn.start_study",
            )
            w["abort_study"] = t.value(gr.Button(tr("btn.abort", lang), variant="stop"), "btn.abort")
            w["apply_best"] = t.value(
                gr.Button(tr("btn.apply_best", lang), interactive=False, elem_id="tl-study-apply-best"),
                "btn.apply_best",
            )
        w["study_status"] = gr.HTML("", elem_id="tl-study-status")
        w["trials"] = t.headers(
            t.label(
                gr.Dataframe(
                    headers=headers(results.TRIAL_COLUMNS, lang),
                    label=tr("lbl.trials", lang),
                    interactive=False,
                    elem_id="tl-study-trials-table",
                ),
                "lbl.trials",
            ),
            results.TRIAL_COLUMNS,
        )
        w["study_plots"] = t.label(
            gr.Gallery(
                label=tr("lbl.study_plots", lang),
                columns=3,
                # Gradio's fixed-height grid of square cells showed half of each plot; app.CSS lets
                # the grid grow and shapes the cells like the plots
                object_fit="contain",
                elem_id="tl-study-plots",
            ),
            "lbl.study_plots",
        )
        w["study_log"] = t.label(
            gr.Textbox(label=tr("lbl.log", lang), lines=5, max_lines=10, autoscroll=True), "lbl.log"
        )
    w["study_job"] = gr.State(None)
    w["study_timer"] = gr.Timer(2.0, active=False)

    # ---- wiring -------------------------------------------------------------------------------
    def starter(tool: str):
        def start(
            lang: str,
            task: str,
            gpu_mem: str | None,
            max_mem: str | None,
            lr_steps: float | None,
            measure: bool,
            study_dir: str | None,
            *values: Any,
        ) -> list[Any]:
            job_id, status = start_tool(
                ctx, lang, tool, list(values), task=task, gpu_mem=gpu_mem, max_mem=max_mem, lr_steps=lr_steps,
                measure=measure, study_dir=study_dir,
            )  # fmt: skip
            return [
                job_id,
                status,
                None,
                "",
                None,
                gr.update(interactive=False),
                gr.Timer(active=job_id is not None),
            ]

        return start

    tool_outputs = [
        w["tool_job"],
        w["tool_status"],
        w["tool_table"],
        w["tool_summary"],
        w["tool_plot"],
        w["apply_tool"],
        w["tool_timer"],
    ]
    for tool in TOOLS:
        w[f"btn_{tool}"].click(
            starter(tool),
            [
                ctx.lang,
                w["task"],
                w["gpu_mem"],
                w["max_mem"],
                w["lr_steps"],
                w["measure"],
                w["study_dir"],
                *ctx.form_inputs,
            ],  # fmt: skip
            tool_outputs,
        )
    w["abort_tool"].click(lambda job_id: ctx.jobs.abort(job_id) and None, w["tool_job"], None)

    def tool_tick(lang: str, job_id: str | None) -> list[Any]:
        def finished(job: Any) -> list[Any]:
            view = results.read_tool_result(job.kind, Path(job.run_dir or ""), lang)
            apply = gr.update(interactive=bool(view.apply))
            return [view.table, view.summary_html, view.plot, view.apply, apply]

        return poll_job(ctx, lang, job_id, 5, finished)

    w["tool_timer"].tick(
        tool_tick,
        [ctx.lang, w["tool_job"]],
        [
            w["tool_status"],
            w["tool_log"],
            w["tool_table"],
            w["tool_summary"],
            w["tool_plot"],
            w["tool_values"],
            w["apply_tool"],
            w["tool_timer"],
        ],
        show_progress="hidden",
    )

    def apply_tool(lang: str, flat: dict[str, Any]) -> list[Any]:
        keys = ", ".join(f"{k}={v}" for k, v in (flat or {}).items())
        return [*apply_flat(ctx, flat or {}), message_html(tr("msg.applied", lang, keys=keys), "ok")]

    w["apply_tool"].click(apply_tool, [ctx.lang, w["tool_values"]], [*form_outputs, w["tool_status"]])

    def on_study(
        lang: str,
        mode: str,
        spec: str,
        n_trials: float | None,
        workers: float | None,
        study_dir: str,
        *values: Any,
    ) -> list[Any]:
        job_id, out, status = start_study(ctx, lang, mode, spec, n_trials, workers, study_dir, list(values))
        return [job_id, out, status, gr.update(interactive=False), gr.Timer(active=job_id is not None)]

    w["start_study"].click(
        on_study,
        [ctx.lang, w["mode"], w["spec"], w["n_trials"], w["workers"], w["study_dir"], *ctx.form_inputs],
        [w["study_job"], w["study_dir"], w["study_status"], w["apply_best"], w["study_timer"]],
    )
    w["abort_study"].click(lambda job_id: ctx.jobs.abort(job_id) and None, w["study_job"], None)

    def study_tick(lang: str, job_id: str | None) -> list[Any]:
        job = ctx.jobs.get(job_id)
        study = Path(job.run_dir) if job and job.run_dir else None
        table = results.trial_table(study, lang) if study else None
        plots = results.study_plots(study) if study else []
        done = job is not None and not job.running
        best = bool(study and done and results.best_config(study) is not None)
        lr_line = results.study_lr_html(study, lang) if best and study else ""  # source: study
        return [
            job_status_html(job, lang) + lr_line,
            ctx.jobs.log_tail(job),
            table,
            plots,
            gr.update(interactive=best),
            gr.Timer(active=not done and job is not None),
        ]

    w["study_timer"].tick(
        study_tick,
        [ctx.lang, w["study_job"]],
        [w["study_status"], w["study_log"], w["trials"], w["study_plots"], w["apply_best"], w["study_timer"]],
        show_progress="hidden",
    )

    def apply_best(lang: str, study_dir: str) -> list[Any]:
        flat = results.best_config(Path(study_dir)) if study_dir else None
        if flat is None:
            return [*(gr.update() for _ in form_outputs), message_html(tr("msg.no_best", lang), "warn")]
        flat.pop("output_dir", None)
        return [*apply_flat(ctx, flat), message_html(tr("msg.applied_best", lang, path=study_dir), "ok")]

    w["apply_best"].click(apply_best, [ctx.lang, w["study_dir"]], [*form_outputs, w["study_status"]])

    def reattach(lang: str) -> list[Any]:
        tool = next((j for kind in TOOLS if (j := ctx.jobs.latest(kind, running=True))), None)
        study = ctx.jobs.latest("study", running=True)
        return [
            tool.id if tool else None,
            gr.Timer(active=tool is not None),
            study.id if study else None,
            study.run_dir if study else gr.update(),
            gr.Timer(active=study is not None),
        ]

    w["on_load"].append(
        (
            reattach,
            [ctx.lang],
            [w["tool_job"], w["tool_timer"], w["study_job"], w["study_dir"], w["study_timer"]],
        )
    )
    del form_inputs
    return w
