"""Loading a model (which flips torch's process-wide default dtype) never overlaps running one."""

from __future__ import annotations

import threading
import time

import torch

from tunelab.model import dtype_guard


def test_a_model_run_waits_for_a_load_and_sees_the_default_dtype_restored() -> None:
    seen: list[torch.dtype] = []
    loading = threading.Event()

    def load() -> None:
        with dtype_guard.loading():
            # what transformers' from_pretrained does while it builds a bf16 model
            torch.set_default_dtype(torch.bfloat16)
            loading.set()
            time.sleep(0.3)
            torch.set_default_dtype(torch.float32)

    def run() -> None:
        loading.wait()
        with dtype_guard.running():
            seen.append(torch.ones(1).dtype)  # a tensor made with the default dtype, as in generate()

    threads = [threading.Thread(target=load), threading.Thread(target=run)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == [torch.float32]


def test_runs_share_the_guard_and_a_load_waits_for_them() -> None:
    events: list[str] = []
    both_running = threading.Barrier(2, timeout=5)

    def run(name: str) -> None:
        with dtype_guard.running():
            both_running.wait()  # two runs hold the guard at once: no deadlock
            time.sleep(0.2)
            events.append(f"{name} done")

    runners = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in runners:
        t.start()
    time.sleep(0.05)
    with dtype_guard.loading():
        events.append("loaded")
    for t in runners:
        t.join(5)
    assert events[-1] == "loaded" and sorted(events[:2]) == ["a done", "b done"]
