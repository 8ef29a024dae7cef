"""The Train tab: the whole training config as a form, then start / watch / abort a `tunelab train` job.

The form is generated from the schema (see forms.py). Start writes the form as a YAML config and runs
``python -m tunelab train that.yaml``; a timer then reads the run directory (progress, loss and LR
curves, health-monitor events) until the job ends. Abort sends SIGINT: the run saves a checkpoint.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError
from tunelab.runs.rundir import RunDir
from tunelab.webui.context import UIContext, error_html, message_html
from tunelab.webui.devices import Devices, build_devices_group
from tunelab.webui.forms import NONE_CHOICE, flat_to_form, minimal_flat, to_cli_line, to_yaml
from tunelab.webui.i18n import field_label, tr, tr_or
from tunelab.webui.jobview import started_html
from tunelab.webui.resume import check_output_dir, resume_choices, resume_update, start_job
from tunelab.webui.watch import curve_figure, curve_frame, events_html, read_progress

__all__ = [
    "BASIC_KEYS",
    "build",
    "EXTRA_KEYS",
    "FREEZE_KEYS",
    "HEALTH_KEYS",
    "LORA_KEYS",
    "PREFERENCE_KEYS",
    "abort_training",
    "build_train_tab",
    "dataset_choices",
    "load_form_config",
    "poll_training",
    "preview_command",
    "preview_dataset",
    "resume_choices",
    "save_form_config",
    "start_job",
    "start_training",
]

BASIC_KEYS = (
    ("stage", "dataset_dir", "dataset"),
    ("learning_rate", "num_train_epochs", "max_grad_norm", "max_samples", "compute_type"),
    (
        "cutoff_len",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "val_size",
        "lr_scheduler_type",
    ),
)
EXTRA_KEYS = (
    ("logging_steps", "save_steps", "warmup_steps", "warmup_ratio", "neftune_noise_alpha"),
    ("optim", "max_steps", "eval_strategy", "eval_steps", "weight_decay"),
    ("packing", "train_on_prompt", "gradient_checkpointing", "report_to", "seed"),
)
FREEZE_KEYS = ("freeze_trainable_layers", "freeze_trainable_modules", "freeze_extra_modules")
LORA_KEYS = (
    ("lora_rank", "lora_alpha", "lora_dropout", "loraplus_lr_ratio"),
    ("use_rslora", "use_dora", "pissa_init"),
    ("lora_target", "additional_target"),
)
# keys of the preference stages (rm/dpo/kto/ppo); those the schema does not define are left out
PREFERENCE_KEYS = ("pref_beta", "pref_ftx", "pref_loss", "reward_model")
# keys of stage kd (knowledge distillation; the teacher, kd_loss, kd_temperature, kd_alpha also for cls)
KD_KEYS = (
    ("teacher_model_name_or_path", "teacher_adapter_name_or_path", "teacher_compute_type"),
    ("kd_loss", "kd_temperature", "kd_alpha", "kd_jsd_beta"),
    ("kd_topk", "kd_chunk_tokens", "kd_teacher_cache"),
    ("kd_on_policy_ratio", "kd_max_new_tokens"),
)
HEALTH_KEYS = (
    ("health.enabled", "health.grad_norm_alarm", "health.grad_norm_action", "health.max_interventions"),
    ("health.nonfinite_action", "health.update_ratio_action", "health.spike_action", "health.overfit_action"),
    (
        "early_stopping.enabled",
        "early_stopping.metric",
        "early_stopping.patience",
        "early_stopping.on_plateau",
    ),
)
_RUNNING_JOB_KINDS = ("train",)


def dataset_choices(dataset_dir: str | None) -> list[str]:
    """Dataset names registered in ``dataset_dir``/dataset_info.json (empty when there is none)."""
    from tunelab.data.registry import load_registry
    from tunelab.errors import DataError

    try:
        return list(load_registry(dataset_dir or "builtin"))
    except DataError:
        return []


def _default_dataset_dir() -> str:
    return "data" if Path("data/dataset_info.json").is_file() else "builtin"


# ---- handlers (plain functions: the tests call them directly) ------------------------------------


def preview_command(
    ctx: UIContext, lang: str, values: list[Any], devices: Devices | None = None
) -> tuple[str, str, str]:
    """(YAML, CLI line, status) for the form: what `tunelab train` would run (with the devices group's flags)."""
    devices = devices or Devices()
    try:
        flat = ctx.form_flat(values)
        devices.apply(flat)
        ctx.guard.check_config(flat)
        from tunelab.config import config_from_dict

        config = config_from_dict(flat, source="web UI form")
        launch = devices.launch_args()
    except TunelabError as exc:
        return "", "", error_html(exc, lang)
    short = minimal_flat(config, keep=("model_name_or_path", "stage", "finetuning_type", "dataset"))
    line = " ".join([to_cli_line("train", short), *launch])
    return to_yaml(short), line, message_html(tr("msg.valid", lang), "ok")


def save_form_config(ctx: UIContext, lang: str, path: str, values: list[Any]) -> str:
    """Write the form as YAML to ``path`` (inside the allowed folders)."""
    try:
        target = ctx.guard.check(path or "", "config path")
        _, config = ctx.form_config(values)
    except TunelabError as exc:
        return error_html(exc, lang)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(to_yaml(minimal_flat(config, keep=("model_name_or_path",))), encoding="utf-8")
    return message_html(tr("msg.saved", lang, path=str(target)), "ok")


def load_form_config(ctx: UIContext, lang: str, path: str) -> tuple[list[Any], dict[str, Any], str]:
    """(widget values for every form key, config keys the form lacks, status) from a YAML file."""
    from tunelab.config import load_config

    try:
        source = ctx.guard.check(path or "", "config path")
        config = load_config(source)
    except TunelabError as exc:
        return [], {}, error_html(exc, lang)
    flat = config.to_flat()
    shown = flat_to_form(ctx.form_keys, flat)
    form = set(ctx.form_keys)
    extras = {}
    for key, value in minimal_flat(config).items():
        if isinstance(value, dict):
            rest = {k: v for k, v in value.items() if f"{key}.{k}" not in form}
            if rest:
                extras[key] = rest
        elif key not in form:
            extras[key] = value
    return shown, extras, message_html(tr("msg.loaded", lang, path=str(source)), "ok")


def _resolve_output_dir(ctx: UIContext, flat: dict[str, Any]) -> str:
    if flat.get("output_dir"):
        return str(flat["output_dir"])
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return str(ctx.runs_dir / f"{flat.get('stage', 'sft')}-{flat.get('finetuning_type', 'lora')}-{stamp}")


def start_training(
    ctx: UIContext, lang: str, values: list[Any], devices: Devices | None = None
) -> tuple[str | None, str, str]:
    """Start `tunelab train` on the form; (job id or None, output dir, status html).

    ``devices`` (the devices group) adds the launch flags and the DeepSpeed preset, as on the command line."""
    devices = devices or Devices()
    running = ctx.jobs.latest("train", running=True)
    if running is not None:
        return running.id, running.run_dir or "", message_html(tr("msg.already_running", lang), "warn")
    try:
        flat = ctx.form_flat(values)
        flat["output_dir"] = _resolve_output_dir(ctx, flat)
        devices.apply(flat)
        ctx.guard.check_config(flat)
        from tunelab.config import config_from_dict
        from tunelab.config.validate import require_for

        config = config_from_dict(flat, source="web UI form")
        require_for(config, "train", source="web UI form")  # before a job starts or a directory appears
        launch = devices.launch_args()
    except TunelabError as exc:
        return None, str(flat.get("output_dir", "")) if "flat" in locals() else "", error_html(exc, lang)
    run_dir = (ctx.jobs.cwd / flat["output_dir"]).resolve()
    refusal = check_output_dir(ctx, lang, config, run_dir)
    if refusal:
        return None, flat["output_dir"], refusal
    job = start_job(ctx, lang, config, run_dir, launch)
    return job.id, flat["output_dir"], started_html(job, lang)


def abort_training(ctx: UIContext, lang: str, job_id: str | None) -> str:
    """Ask the running job to stop with a checkpoint."""
    job = ctx.jobs.get(job_id) or ctx.jobs.latest("train", running=True)
    if job is None or not ctx.jobs.abort(job.id):
        return message_html(tr("msg.nothing_running", lang), "warn")
    return message_html(tr("msg.aborting", lang), "warn")


def _progress_html(ctx: UIContext, job: Any, lang: str) -> str:
    progress = read_progress(job.run_dir if job else None)
    if job is None:
        return ""
    status = tr(f"status.{job.status}", lang)
    pct = max(0.0, min(100.0, progress.percentage))
    return (
        f"<div class='tl-progress' data-status='{job.status}' data-step='{progress.step}' "
        f"data-total='{progress.total}'><div class='tl-bar'><div style='width:{pct:.1f}%'></div></div>"
        f"<div class='tl-progress-text'><b>{html.escape(status)}</b> · {html.escape(progress.text(lang))}</div></div>"
    )


def _ending_html(job: Any, lang: str) -> str:
    """What happened at the end of a job, with the checkpoint or the final metrics."""
    if job is None or job.running:
        return ""
    run = RunDir(job.run_dir) if job.run_dir else None
    if job.status == "aborted":
        checkpoint = run.latest_checkpoint() if run else None
        text = tr("msg.aborted_resume", lang, checkpoint=str(checkpoint or "-"),
                  resume=field_label("resume_from_checkpoint", lang), auto=tr("resume.auto", lang))  # fmt: skip
        return message_html(text, "warn")
    if job.status == "finished":
        metrics = run.read_metrics() if run else {}
        shown = ", ".join(
            f"{k}={metrics[k]:.4g}"
            for k in ("train_loss", "eval_loss")
            if isinstance(metrics.get(k), (int, float))
        )
        return message_html(tr("msg.finished", lang, run=job.run_dir, metrics=shown), "ok")
    if job.status == "stopped":
        return message_html(tr("msg.stopped", lang, run=job.run_dir), "error")
    if job.status == "lost":  # an earlier UI's job whose run directory does not say how it ended
        return message_html(tr("status.lost", lang), "warn")
    return message_html(tr("msg.failed", lang, code=job.returncode), "error")


def poll_training(ctx: UIContext, lang: str, job_id: str | None) -> dict[str, Any]:
    """Everything the Train tab shows about job ``job_id`` now (progress, curves, events, log, status)."""
    job = ctx.jobs.get(job_id)
    rows = RunDir(job.run_dir).read_log() if job and job.run_dir else []
    return {
        "job": job,
        "progress": _progress_html(ctx, job, lang),
        "loss": curve_figure(
            curve_frame(rows, {"loss": "train", "eval_loss": "eval"}, smoothed="train (smoothed)"),
            title=tr("lbl.loss_plot", lang),
            ylabel=tr("plot.loss", lang),
            lang=lang,
        ),
        "lr": curve_figure(
            curve_frame(rows, {"learning_rate": "learning rate"}),
            title=tr("lbl.lr_plot", lang),
            ylabel=tr("plot.learning_rate", lang),
            lang=lang,
        ),
        "events": events_html(job.run_dir if job else None, lang),
        "log": ctx.jobs.log_tail(job),
        "status": _ending_html(job, lang),
        "running": bool(job and job.running),
    }


def preview_dataset(ctx: UIContext, lang: str, values: list[Any]) -> str:
    """Formatted, tokenized samples (learned part highlighted) and token-length statistics, as HTML."""
    try:
        _, config = ctx.form_config(values)
        from tunelab.data.preview import preview_data
        from tunelab.model import load_tokenizer

        report = preview_data(config, load_tokenizer(config.model), n=3)
        from tunelab.quality import check_data
        from tunelab.webui.data_check import check_html

        check = check_html(check_data(config, tokens=False), lang)
    except TunelabError as exc:
        return error_html(exc, lang)
    stats = report.stats
    facts = {k: v for k, v in vars(stats).items() if isinstance(v, (int, float, str)) and k != "cutoff_len"}
    head = " · ".join(
        f"{tr_or(f'stat.{k}', lang, k)}: " + (f"{v:.4g}" if isinstance(v, float) else str(v))
        for k, v in facts.items()
    )
    samples = []
    for sample in report.samples:
        parts = "".join(
            f"<mark class='tl-learned'>{html.escape(text)}</mark>"
            if learned
            else f"<span>{html.escape(text)}</span>"
            for text, learned in sample.segments
        )
        note = tr("preview.sample", lang, n=sample.n_tokens, learned=sample.n_learned)
        note = f"{tr_or(f'role.{sample.role}', lang, sample.role)} · {note}" if sample.role else note
        samples.append(
            f"<div class='tl-sample'><div class='tl-sample-head'>{html.escape(note)}</div><pre>{parts}</pre></div>"
        )
    legend = html.escape(tr("preview.legend", lang))
    return (
        f"<div class='tl-preview'><div><b>{html.escape(report.template)}</b> · {tr('preview.cutoff', lang, n=report.cutoff_len)} · "
        f"{html.escape(head)}</div><div class='tl-legend'>{legend}</div>{''.join(samples)}{check}</div>"
    )


# ---- layout and wiring ---------------------------------------------------------------------------


def build_train_tab(ctx: UIContext) -> dict[str, Any]:
    """Build the Train tab inside the current Blocks and wire its events."""
    import gradio as gr

    from tunelab.webui.forms import config_keys

    lang, t = ctx.default_lang, ctx.translator
    known = set(config_keys())
    w: dict[str, Any] = {}
    data_dir = _default_dataset_dir()
    with gr.Row():
        ctx.field("stage")
        ctx.field("dataset_dir", value=data_dir)
        ctx.field("dataset", multiselect=True, choices=dataset_choices(data_dir), scale=2)
        w["preview_data"] = t.value(
            gr.Button(tr("btn.preview_data", lang), scale=0, min_width=120), "btn.preview_data"
        )
    for row in BASIC_KEYS[1:]:
        with gr.Row():
            for key in row:
                ctx.field(key)
    w["data_preview"] = gr.HTML("", elem_id="tl-data-preview")
    from tunelab.webui.dataset_view import build_dataset_view

    w["dataset_view"] = build_dataset_view(ctx)  # upload a data file, page through raw records
    sections = (
        ("acc.extra", EXTRA_KEYS),
        ("acc.freeze", (FREEZE_KEYS,)),
        ("acc.lora", LORA_KEYS),
        ("acc.preference", (tuple(k for k in PREFERENCE_KEYS if k in known),)),
        ("acc.kd", KD_KEYS),
        ("acc.health", HEALTH_KEYS),
    )
    for title, rows in sections:
        if not any(rows):
            continue
        with gr.Accordion(tr(title, lang), open=False) as acc:
            t.label(acc, title)
            for row in rows:
                with gr.Row():
                    for key in row:
                        ctx.field(key)
    w["devices"] = build_devices_group(ctx)
    with gr.Row():
        t.placeholder(
            ctx.field("output_dir", scale=2, placeholder=tr("ph.output_dir", lang, runs=ctx.runs_dir)),
            "ph.output_dir",
            runs=ctx.runs_dir,
        )
        ctx.field(
            "resume_from_checkpoint",
            choices=resume_choices(ctx, lang, None),
            value=NONE_CHOICE,
            allow_custom_value=True,
        )
        ctx.field("overwrite_output_dir")
        w["config_path"] = t.label(
            gr.Textbox(
                value="configs/webui.yaml",
                label=tr("lbl.config_path", lang),
                scale=2,
                elem_id="tl-config-path",
            ),
            "lbl.config_path",
        )
    with gr.Row():
        for name, variant in (
            ("preview_cmd", "secondary"),
            ("save", "secondary"),
            ("load", "secondary"),
            ("start", "primary"),
            ("abort", "stop"),
        ):
            w[name] = t.value(
                gr.Button(tr(f"btn.{name}", lang), variant=variant, elem_id=f"tl-train-{name}"), f"btn.{name}"
            )
    w["status"] = gr.HTML("", elem_id="tl-train-status")
    w["progress"] = gr.HTML("", elem_id="tl-train-progress")
    w["events"] = gr.HTML("", elem_id="tl-train-events")
    with gr.Row():
        w["loss_plot"] = t.label(
            gr.Plot(label=tr("lbl.loss_plot", lang), elem_id="tl-loss-plot", format="png"),
            "lbl.loss_plot",
        )
        w["lr_plot"] = t.label(
            gr.Plot(label=tr("lbl.lr_plot", lang), elem_id="tl-lr-plot", format="png"),
            "lbl.lr_plot",
        )
    w["log"] = t.label(
        gr.Textbox(label=tr("lbl.log", lang), lines=8, max_lines=16, autoscroll=True, elem_id="tl-train-log"),
        "lbl.log",
    )
    with gr.Row():
        w["yaml"] = t.label(
            gr.Code(language="yaml", label=tr("lbl.yaml", lang), interactive=False), "lbl.yaml"
        )
        w["cli"] = t.label(
            gr.Textbox(label=tr("lbl.cli", lang), lines=4, buttons=["copy"], elem_id="tl-cli-line"), "lbl.cli"
        )
    w["job_id"] = gr.State(None)
    w["timer"] = gr.Timer(1.5, active=False)
    _wire(ctx, w)
    return w


def _wire(ctx: UIContext, w: dict[str, Any]) -> None:
    import gradio as gr

    inputs = [ctx.lang, *ctx.form_inputs]
    watch_outputs = [w["progress"], w["loss_plot"], w["lr_plot"], w["events"], w["log"], w["timer"]]

    def on_dataset_dir(dataset_dir: str, current: list[str] | None) -> Any:
        choices = dataset_choices(dataset_dir)
        return gr.update(choices=choices, value=[c for c in (current or []) if c in choices])

    ctx.fields["dataset_dir"].change(
        on_dataset_dir, [ctx.fields["dataset_dir"], ctx.fields["dataset"]], ctx.fields["dataset"]
    )
    w["preview_cmd"].click(
        lambda lang, *v: preview_command(ctx, lang, *_split_devices(v)),
        [*inputs, *w["devices"]],
        [w["yaml"], w["cli"], w["status"]],
    )
    w["preview_data"].click(lambda lang, *v: preview_dataset(ctx, lang, list(v)), inputs, w["data_preview"])
    w["save"].click(
        lambda lang, path, *v: save_form_config(ctx, lang, path, list(v)),
        [ctx.lang, w["config_path"], *ctx.form_inputs],
        w["status"],
    )

    def on_load(lang: str, path: str) -> list[Any]:
        shown, extras, status = load_form_config(ctx, lang, path)
        if not shown:
            return [gr.update() for _ in ctx.fields] + [gr.update(), status]
        return [*shown, extras, status]

    w["load"].click(on_load, [ctx.lang, w["config_path"]], [*ctx.fields.values(), ctx.extras, w["status"]])

    def on_start(lang: str, *values: Any) -> list[Any]:
        job_id, output_dir, status = start_training(ctx, lang, *_split_devices(values))
        return [job_id, output_dir, status, gr.Timer(active=job_id is not None)]

    w["start"].click(
        on_start, [*inputs, *w["devices"]], [w["job_id"], ctx.fields["output_dir"], w["status"], w["timer"]]
    )

    resume = ctx.translator.own_choices(ctx.fields["resume_from_checkpoint"])  # relabelled just below

    def refresh_resume(lang: str, output_dir: str | None, current: str | None) -> Any:
        return resume_update(ctx, lang, output_dir, current)

    resume_inputs = [ctx.lang, ctx.fields["output_dir"], resume]
    ctx.fields["output_dir"].change(refresh_resume, resume_inputs, resume, show_progress="hidden")
    ctx.lang.change(refresh_resume, resume_inputs, resume, show_progress="hidden")
    w["abort"].click(
        lambda lang, job_id: abort_training(ctx, lang, job_id), [ctx.lang, w["job_id"]], w["status"]
    )

    def on_tick(lang: str, job_id: str | None, output_dir: str | None, current: str | None) -> list[Any]:
        running = ctx.jobs.latest("train", running=True)
        view = poll_training(ctx, lang, running.id if running else job_id)
        # a tick (or page load) that raced with Start can carry the previous job's id, or end after
        # Start while it drew the plots: keep watching the job that runs now, never show the old
        # job's ending over it, and never stop the timer the new job needs
        watched = view["job"].id if view["job"] else job_id
        now = ctx.jobs.latest("train", running=True)
        stale = now is not None and now.id != watched
        outputs = [
            view["progress"],
            view["loss"],
            view["lr"],
            view["events"],
            view["log"],
            gr.Timer(active=view["running"] or stale),
        ]
        watching = now.id if stale and now else watched
        if view["running"] or stale:
            return [*outputs, gr.update(), gr.update(), watching]
        # the job has ended: its checkpoints become choices of the Resume control
        return [*outputs, view["status"], refresh_resume(lang, output_dir, current), watching]

    w["timer"].tick(
        on_tick,
        [ctx.lang, w["job_id"], ctx.fields["output_dir"], resume],
        [*watch_outputs, w["status"], resume, w["job_id"]],
        show_progress="hidden",
    )

    def reattach(lang: str) -> list[Any]:
        """A (re)loaded page picks up the running train job, or shows the last one."""
        job = ctx.jobs.latest("train", running=True) or ctx.jobs.latest("train")
        if job is None:
            return [None, gr.update(), gr.Timer(active=False)]
        return [job.id, gr.update(), gr.Timer(active=True)]

    w["on_load"] = [
        (reattach, [ctx.lang], [w["job_id"], w["status"], w["timer"]]),
        (refresh_resume, resume_inputs, resume),
    ]


def _split_devices(values: tuple[Any, ...]) -> tuple[list[Any], Devices]:
    """(form values, devices group) of a handler given the form inputs followed by the devices widgets."""
    return list(values[:-4]), Devices.from_widgets(list(values[-4:]))


build = build_train_tab
