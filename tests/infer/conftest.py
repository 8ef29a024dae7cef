"""Helpers for the inference tests: a real uvicorn server on a free loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import uvicorn

from tunelab.infer.server import bind_socket


@pytest.fixture(scope="session")
def start_server() -> Callable[[object], tuple[uvicorn.Server, threading.Thread, str]]:
    """start_server(app) -> (server, thread, base url); stop with server.should_exit = True."""
    return _start


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
