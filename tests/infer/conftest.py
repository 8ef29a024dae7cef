"""Helpers for the inference tests: a real uvicorn server on a free loopback port."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import uvicorn

from tunelab.infer.server import bind_socket


@pytest.fixture(scope="session")
def serve_app() -> Callable[[object], contextlib.AbstractContextManager[str]]:
    """`with serve_app(app) as base_url:` a real uvicorn server, stopped at the end of the block."""
    return _serving


@contextlib.contextmanager
def _serving(app: object) -> Iterator[str]:
    server, thread, url = _start(app)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _start(app: object) -> tuple[uvicorn.Server, threading.Thread, str]:
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    host, port = sock.getsockname()[:2]
    return server, thread, f"http://{host}:{port}"
