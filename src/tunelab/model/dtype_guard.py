"""Keep model loading and model running apart within one process.

transformers' ``from_pretrained`` sets torch's *process-wide* default dtype to the requested dtype
while it builds the model (``torch.set_default_dtype``) and restores it afterwards. Any other thread
that runs a model meanwhile creates its float tensors in that dtype: in the web UI, a second chat
session that loads a bf16 engine while the first one generates makes the first fail with
"expected scalar type Float but found BFloat16". So loading takes this guard exclusively and running
a model takes it shared: sessions still generate concurrently with each other, and a load waits for
the running generations (and blocks new ones) only for the length of the load.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["loading", "running"]

_cond = threading.Condition()
_state = {"runners": 0, "loading": False, "waiting_loads": 0}


@contextmanager
def loading() -> Iterator[None]:
    """Exclusive: no model runs in this process while the block (a model load) does."""
    with _cond:
        _state["waiting_loads"] += 1
        while _state["loading"] or _state["runners"]:
            _cond.wait()
        _state["waiting_loads"] -= 1
        _state["loading"] = True
    try:
        yield
    finally:
        with _cond:
            _state["loading"] = False
            _cond.notify_all()


@contextmanager
def running() -> Iterator[None]:
    """Shared: any number of models run at once, but never while one loads (waiting loads go first)."""
    with _cond:
        while _state["loading"] or _state["waiting_loads"]:
            _cond.wait()
        _state["runners"] += 1
    try:
        yield
    finally:
        with _cond:
            _state["runners"] -= 1
            _cond.notify_all()
