"""How a tab shows a CLI job it started: status line and output, refreshed by the tab's timer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tunelab.webui.context import UIContext, message_html
from tunelab.webui.i18n import tr
from tunelab.webui.jobs import Job

__all__ = ["job_status_html", "poll_job", "start_job_html", "started_html"]

_KIND = {
    "finished": "ok",
    "running": "info",
    "aborted": "warn",
    "stopped": "error",
    "failed": "error",
    "lost": "warn",
}


def job_status_html(job: Job | None, lang: str) -> str:
    """'running for 12 s: tunelab export ...' / 'finished in 40 s' as a coloured box."""
    if job is None:
        return ""
    seconds = int((job.ended or time.time()) - job.started)
    text = f"{tr(f'status.{job.status}', lang)} · {tr('job.seconds', lang, n=seconds)}"
    if job.returncode not in (None, 0):
        text += f" · {tr('job.exit', lang, code=job.returncode)}"
    return message_html(text + " ·", _KIND.get(job.status, "info"), code=job.command_line)


def start_job_html(ctx: UIContext, kind: str, args: list[str], lang: str, **kw: Any) -> tuple[Job, str]:
    """Start ``tunelab <args>`` as a job of ``kind``; (job, status html)."""
    job = ctx.jobs.start(kind, args, lang=lang, **kw)
    return job, started_html(job, lang)


def started_html(job: Job, lang: str) -> str:
    """'Started: <the command line>' as a status box (the command as <code>, not translated)."""
    return message_html(tr("msg.started", lang, cmd="").strip(), "info", code=job.command_line)


def poll_job(
    ctx: UIContext, lang: str, job_id: str | None, n_results: int, results: Callable[[Job], list[Any]]
) -> list[Any]:
    """One timer tick of a job panel: [status, log, *results, timer].

    While the job runs, the ``n_results`` result outputs stay as they are (``gr.update()``); once it has
    ended they are filled by ``results(job)`` and the timer stops.
    """
    import gradio as gr

    job = ctx.jobs.get(job_id)
    head = [job_status_html(job, lang), ctx.jobs.log_tail(job)]
    if job is None or job.running:
        return [*head, *(gr.update() for _ in range(n_results)), gr.Timer(active=job is not None)]
    return [*head, *results(job), gr.Timer(active=False)]
