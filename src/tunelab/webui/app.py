"""`tunelab webui`: the Gradio app that fronts every tunelab command, in English and Chinese.

    app = create_app(runs_dir="runs")       # gr.Blocks, not started
    launch(host="127.0.0.1", port=7860)     # create + serve

Training, tuning, find-batch, lr-find, evaluation and export run as `tunelab` CLI subprocesses (see
jobs.py) and the UI reads their run directories; only chat loads a model into the UI process.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunelab.errors import ConfigError
from tunelab.webui.context import UIContext
from tunelab.webui.i18n import tr
from tunelab.webui.jobs import JobManager
from tunelab.webui.paths import PathGuard, default_roots

__all__ = ["CSS", "check_exposure", "create_app", "is_loopback", "launch", "parse_auth", "serve"]

CSS = """
#tl-topbar { align-items: end; }
.tl-msg { padding: 8px 12px; border-radius: 6px; margin: 4px 0; }
.tl-info { background: #eef4ff; color: #1d3b6f; }
.tl-ok { background: #e8f7ec; color: #1d5c2e; }
.tl-warn { background: #fff6e0; color: #6b4a00; }
.tl-error { background: #fdecec; color: #8a1c1c; font-weight: 600; }
.tl-progress .tl-bar { height: 14px; background: #e5e7eb; border-radius: 7px; overflow: hidden; }
.tl-progress .tl-bar > div { height: 100%; background: #f97316; transition: width .5s; }
.tl-progress-text { margin-top: 4px; }
.tl-events { border: 2px solid #f59e0b; border-radius: 8px; padding: 6px 10px; }
.tl-events.tl-empty { border-color: #d1d5db; color: #6b7280; }
.tl-events-title { font-weight: 700; margin-bottom: 4px; }
.tl-event { padding: 4px 8px; margin: 3px 0; border-radius: 5px; }
.tl-event.tl-stop { background: #fdecec; color: #8a1c1c; }
.tl-event.tl-act { background: #fff1e6; color: #7a3500; }
.tl-event.tl-warn { background: #fff9db; color: #6b5400; }
.tl-event.tl-info { background: #f3f4f6; }
mark.tl-learned { background: #d9f99d; }
.tl-sample pre { white-space: pre-wrap; }
/* study plots: cells shaped like the plots (Gradio's are square) so each shows whole, no inner scroll */
#tl-study-plots .thumbnail-item { aspect-ratio: 4 / 3; }
#tl-study-plots .grid-wrap { height: auto !important; max-height: none !important; }
"""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    """'user:pass' -> (user, pass); ConfigError for anything else."""
    if auth is None:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise ConfigError("--auth must be user:password", "e.g. --auth admin:a-long-password")
    return user, password


def check_exposure(host: str, auth: str | None) -> tuple[str, str] | None:
    """The parsed credentials; ConfigError when a non-loopback host has none (anyone could train, read files)."""
    credentials = parse_auth(auth)
    if not is_loopback(host) and credentials is None:
        raise ConfigError(
            f"--host {host} makes the web UI reachable from other machines, and it can train and read files",
            "add --auth user:password, or keep the default --host 127.0.0.1",
        )
    return credentials


def create_app(
    *,
    runs_dir: str | Path = "runs",
    state_dir: str | Path | None = None,
    allowed: Sequence[str | Path] = (),
    lang: str = "en",
) -> Any:
    """Build the web UI (a gr.Blocks) for the runs under ``runs_dir``; it is not started.

    ``state_dir`` holds job records, their logs and generated configs (default
    ~/.cache/tunelab/webui); ``allowed`` adds folders that path fields may point into.
    """
    import gradio as gr

    from tunelab.model.tiny import default_cache_root
    from tunelab.webui.tabs import chat, evaluate, export, runs, train, tune
    from tunelab.webui.topbar import booster_updates, build_topbar

    runs_path = Path(runs_dir)
    state = Path(state_dir) if state_dir else default_cache_root() / "webui"
    ctx = UIContext(
        runs_dir=runs_path,
        state_dir=state,
        jobs=JobManager(state),
        guard=PathGuard(default_roots(runs_path, [state, *allowed])),
        default_lang=lang,
    )
    with gr.Blocks(title="tunelab") as app:
        ctx.extras = gr.State({})
        title = gr.Markdown(f"## tunelab · {tr('app.subtitle', lang)}", elem_id="tl-title")
        build_topbar(ctx)
        tabs: dict[str, Any] = {}
        with gr.Tabs() as tab_set:
            for name, module in (
                ("train", train),
                ("tune", tune),
                ("evaluate", evaluate),
                ("chat", chat),
                ("export", export),
                ("runs", runs),
            ):
                with gr.Tab(tr(f"tab.{name}", lang), id=name, elem_id=f"tl-tab-{name}") as tab:
                    ctx.translator.label(tab, f"tab.{name}")
                    tabs[name] = module.build(ctx)
        runs.wire_resume(ctx, tabs["runs"], tabs["train"], tab_set)  # Resume there shows the job in Train
        boosters = ctx.extra_inputs

        def relabel(new_lang: str) -> list[Any]:
            return [
                gr.update(value=f"## tunelab · {tr('app.subtitle', new_lang)}"),
                *ctx.translator.updates(new_lang),
                *booster_updates(new_lang),
            ]

        ctx.lang.change(relabel, ctx.lang, [title, *ctx.translator.components, *boosters])
        app.load(booster_updates, ctx.lang, boosters)
        for widgets in tabs.values():
            for fn, inputs, outputs in widgets.get("on_load", []):
                app.load(fn, inputs, outputs)
    app.tunelab_context = ctx  # for tests and for launch()
    return app


def serve(
    app: Any, *, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None, block: bool = True
) -> Any:
    """Serve an app from :func:`create_app`; a host other than loopback requires ``auth``."""
    credentials = check_exposure(host, auth)
    ctx: UIContext = app.tunelab_context
    app.queue(default_concurrency_limit=4)
    app.launch(
        server_name=host,
        server_port=port,
        auth=credentials,
        prevent_thread_lock=not block,
        css=CSS,
        allowed_paths=[str(r) for r in ctx.guard.roots],
        show_error=True,
        quiet=not block,
        footer_links=["api"],
    )
    return app


def launch(
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: str | None = None,
    runs_dir: str | Path = "runs",
    allowed: Sequence[str | Path] = (),
    lang: str = "en",
    block: bool = True,
) -> Any:
    """Create the app and serve it (see :func:`serve`); blocks until the server stops unless ``block=False``."""
    check_exposure(host, auth)  # before the app is built
    app = create_app(runs_dir=runs_dir, allowed=allowed, lang=lang)
    return serve(app, host=host, port=port, auth=auth, block=block)
