"""Run the OpenAI-compatible API with uvicorn: `serve(engine)`, or `serve_api(...)` from a config or run.

The listening socket is bound before the model loads, so a busy port fails at once with a clear
error instead of after a minute of loading. The default address 127.0.0.1 keeps the server on this
machine; binding elsewhere without an API key prints a warning. With `infer_backend: vllm | sglang`
the config's model is served by that engine instead (infer/external.py). Each request leaves one
access-log line on stderr (logger `tunelab.api`).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.errors import ConfigError, ResourceError

if TYPE_CHECKING:
    from tunelab.config import RunConfig
    from tunelab.infer.api import ServeOptions
    from tunelab.infer.engine import ChatEngine

__all__ = ["bind_socket", "serve", "serve_api"]

_LOCAL = ("127.0.0.1", "localhost", "::1")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0 picks a free one); ResourceError when taken."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port", "use a number between 1 and 65535")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ResourceError(
            f"cannot listen on {host}:{port}: {err.strerror or err}",
            "another program uses this port: pick another with --port, or stop the other server",
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    engine: ChatEngine,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    model_id: str | None = None,
    sock: socket.socket | None = None,
    options: ServeOptions | None = None,
    console: Any = None,
) -> None:
    """Serve `engine` until interrupted (Ctrl-C)."""
    import uvicorn

    from tunelab.infer.api import create_app, default_model_id

    sock = sock or bind_socket(host, port)
    served = model_id or default_model_id(engine.name)
    app = create_app(engine, model_id=served, api_key=api_key, options=options)
    _log_to_stderr()
    bound_host, bound_port = sock.getsockname()[:2]
    if console is not None:
        console.print(
            f"serving model {served!r} at http://{bound_host}:{bound_port}/v1  "
            f"(API key {'required' if api_key else 'not required'}; Ctrl-C stops)",
            highlight=False,
        )
        if api_key is None and host not in _LOCAL:
            console.print(
                f"[yellow]warning[/]: listening on {host} without an API key; anyone who can reach this "
                "machine can use the model. Set TUNELAB_API_KEY to require one."
            )
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


def serve_api(
    config: str | Path | RunConfig | None = None,
    overrides: Sequence[str] = (),
    *,
    model: str | None = None,
    adapter: str | Sequence[str] | None = None,
    run: str | Path | None = None,
    template: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    model_id: str | None = None,
    options: ServeOptions | None = None,
    console: Any = None,
) -> None:
    """Load the model a config, run directory or `model=` [+ `adapter=`] names, and serve it."""
    from tunelab.infer.api import ServeOptions
    from tunelab.infer.engine import load_engine
    from tunelab.infer.source import resolve_config

    options = options or ServeOptions()
    options.check()
    resolved = resolve_config(config, overrides, model=model, adapter=adapter, run=run, template=template)
    if resolved.model.infer_backend != "huggingface":
        from tunelab.infer.external import run_backend

        run_backend(resolved, host=host, port=port, api_key=api_key, model_id=model_id)
        return
    sock = bind_socket(host, port)
    try:
        if console is not None:
            console.print("loading the model ...", highlight=False)
        engine = load_engine(resolved, name=str(run) if run is not None else None)
        serve(engine, host=host, port=port, api_key=api_key, model_id=model_id, sock=sock, options=options,
              console=console)  # fmt: skip
    finally:
        sock.close()


def _log_to_stderr() -> None:
    """Access-log lines ('<client> POST /v1/chat/completions 200 tokens_in=.. tokens_out=.. 0.153s')."""
    logger = logging.getLogger("tunelab.api")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
