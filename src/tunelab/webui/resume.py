"""Resume and overwrite as the web UI offers them: the Start decision, the Resume control's choices,
and resuming a run from the Runs tab.

Every decision is the trainer's own (tunelab.runs.resume), taken before a job is launched, so the UI
refuses at once what `tunelab train` would refuse 20 seconds later, naming the controls that fix it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunelab.config import dump_config
from tunelab.errors import TunelabError
from tunelab.runs.resume import ExistingRunError, resume_point
from tunelab.runs.rundir import RunDir
from tunelab.webui.context import UIContext, error_html, message_html
from tunelab.webui.forms import NONE_CHOICE
from tunelab.webui.i18n import field_label, tr
from tunelab.webui.jobs import Job

__all__ = ["check_output_dir", "resumable", "resume_choices", "resume_run", "resume_update", "start_job"]


def start_job(ctx: UIContext, lang: str, config: Any, run_dir: Path, launch: list[str]) -> Job:
    """Write ``config`` among the UI's generated configs and run `tunelab train` on it; the Job."""
    config_path = ctx.state_dir / "configs" / f"{run_dir.name}.yaml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(dump_config(config), encoding="utf-8")
    return ctx.jobs.start("train", ["train", str(config_path), *launch], run_dir=run_dir, lang=lang)


def check_output_dir(ctx: UIContext, lang: str, config: Any, run_dir: Path) -> str:
    """Why `tunelab train` would refuse ``run_dir`` (as status html), or "" when it can start.

    The same decision the trainer takes when it starts (tunelab.runs.resume), taken here before a
    job is launched: an output dir holding a run, with neither resume nor overwrite chosen, is
    refused at once with the two controls named, instead of by the job 20 seconds later.
    """
    resume, overwrite = field_label("resume_from_checkpoint", lang), field_label("overwrite_output_dir", lang)
    wanted, clear = config.training.resume_from_checkpoint, config.output.overwrite_output_dir
    if wanted and clear:
        return message_html(tr("msg.resume_and_overwrite", lang, resume=resume, overwrite=overwrite), "error")
    try:
        if wanted and wanted != "auto":
            wanted = str(ctx.guard.check(ctx.jobs.cwd / wanted, "resume_from_checkpoint"))  # the job's folder
        resume_point(RunDir(run_dir), wanted, overwrite=clear)
    except ExistingRunError as exc:
        what = (
            tr("run.finished_what", lang)
            if exc.checkpoint is None
            else tr("run.checkpoints_what", lang, name=exc.checkpoint.name)
        )
        text = tr("msg.run_exists", lang, dir=str(exc.run_dir), what=what, resume=resume,
                  auto=tr("resume.auto", lang), overwrite=overwrite)  # fmt: skip
        return message_html(text, "error")
    except TunelabError as exc:
        return error_html(exc, lang)
    return ""


def resume_choices(ctx: UIContext, lang: str, output_dir: str | None) -> list[tuple[str, str]]:
    """The Resume dropdown's (label, value) entries: none, auto, and each checkpoint of ``output_dir``.

    A checkpoint's value is the path as the user wrote the output dir (the job runs in the same folder).
    """
    checkpoints = RunDir(ctx.jobs.cwd / output_dir).checkpoints() if output_dir else []
    auto = tr("resume.auto_at", lang, name=checkpoints[-1].name) if checkpoints else tr("resume.auto", lang)
    return [
        (tr("resume.none", lang), NONE_CHOICE),
        (auto, "auto"),
        *((p.name, str(Path(str(output_dir)) / p.name)) for p in reversed(checkpoints)),
    ]


def resume_update(ctx: UIContext, lang: str, output_dir: str | None, current: str | None) -> Any:
    """The Resume dropdown's update for ``output_dir``: its choices, and the value if it is still one."""
    import gradio as gr

    choices = resume_choices(ctx, lang, output_dir)
    # a checkpoint of another output dir is no choice any more: back to "none"
    return gr.update(choices=choices, value=current if current in {v for _, v in choices} else NONE_CHOICE)


def resumable(ctx: UIContext, name: str) -> tuple[Path, str]:
    """(run directory, "") when run ``name`` can be resumed, else (its directory, the text key saying why not)."""
    path = ctx.guard.check(ctx.runs_dir / name, "run")
    run = RunDir(path)
    if run.is_finished():
        return path, "runs.finished"
    if run.latest_checkpoint() is None:
        return path, "runs.no_checkpoint"
    return path, ""


def resume_run(ctx: UIContext, lang: str, name: str | None) -> tuple[str | None, str]:
    """Start `tunelab train` on run ``name``'s own config with resume_from_checkpoint=auto; (job id or None, status)."""
    from tunelab.config import config_from_dict, load_config

    if not name:
        return None, message_html(tr("runs.pick_one", lang), "warn")
    if ctx.jobs.latest("train", running=True) is not None:
        return None, message_html(tr("msg.already_running", lang), "warn")
    try:
        path, why_not = resumable(ctx, name)
        if why_not:
            return None, message_html(tr(why_not, lang, run=name), "warn")
        run = RunDir(path)
        flat = load_config(run.config_path).to_flat()
        flat.update(resume_from_checkpoint="auto", overwrite_output_dir=False, output_dir=str(path))
        config = config_from_dict(flat, source=str(run.config_path))
        checkpoint = resume_point(run, "auto", overwrite=False)  # the trainer's own checks, before launching
    except TunelabError as exc:
        return None, error_html(exc, lang)
    job = start_job(ctx, lang, config, path.resolve(), [])
    text = tr(
        "runs.resuming",
        lang,
        run=name,
        checkpoint=checkpoint.name if checkpoint else "-",
        cmd=job.command_line,
    )
    return job.id, message_html(text, "info")
