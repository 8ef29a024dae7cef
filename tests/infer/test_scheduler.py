"""The batching scheduler: concurrent requests give their sequential replies, each with its own
settings; cancelled and timed-out requests free their row; a full queue refuses at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tunelab.infer.engine import ChatEngine, chat_engine
from tunelab.infer.request import RequestCancelled, RequestTimedOut
from tunelab.infer.scheduler import QueueFullError, Scheduler


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


# prompts of very different lengths, so rows are padded differently and join at different steps
QUESTIONS = [f"Question {i}: " + "tell me about low rank adapters " * (i % 5) for i in range(12)]
LENGTHS = [2 + (7 * i) % 19 for i in range(12)]


@pytest.fixture(scope="module")
def qwen2_engine(tiny_qwen2_dir: Path) -> ChatEngine:
    # greedy, like the shared tiny_engine: LLaMA-Factory's default (which tunelab follows) samples
    return chat_engine(
        model=str(tiny_qwen2_dir), template="chatml", overrides=["compute_type=fp32", "do_sample=false"]
    )


@pytest.mark.parametrize("which", ["llama", "qwen2"])
def test_concurrent_greedy_replies_equal_sequential(
    which: str, tiny_engine: ChatEngine, qwen2_engine: ChatEngine
) -> None:
    engine = tiny_engine if which == "llama" else qwen2_engine
    want = [engine.chat(ask(q), max_new_tokens=n) for q, n in zip(QUESTIONS, LENGTHS)]
    scheduler = Scheduler(engine, max_batch_size=5)  # fewer rows than requests: some join mid-batch
    try:
        requests = [scheduler.submit_chat(ask(q), max_new_tokens=n) for q, n in zip(QUESTIONS, LENGTHS)]
        got = [r.wait() for r in requests]
    finally:
        scheduler.close()
    assert got == want
    assert len({r.text for r in got}) > 1


def test_each_request_keeps_its_settings(tiny_engine: ChatEngine) -> None:
    words = tiny_engine.chat(ask(QUESTIONS[3]), max_new_tokens=20).text.split()
    stop = words[3]
    scheduler = Scheduler(tiny_engine, max_batch_size=8)
    try:
        sampled = [
            scheduler.submit_chat(
                ask(QUESTIONS[1]), max_new_tokens=12, do_sample=True, temperature=2.0, seed=7
            )
            for _ in range(3)
        ]
        other_seeds = [
            scheduler.submit_chat(
                ask(QUESTIONS[1]), max_new_tokens=12, do_sample=True, temperature=2.0, seed=s
            )
            for s in range(8, 14)
        ]
        stopped = scheduler.submit_chat(ask(QUESTIONS[3]), max_new_tokens=20, stop=[stop])
        short = scheduler.submit_chat(ask(QUESTIONS[3]), max_new_tokens=3)
        streamed = scheduler.submit_text("the learning rate", max_new_tokens=6)
        pieces = list(streamed.pieces())
        replies = [r.wait() for r in [*sampled, stopped, short]]
        others = {r.wait().text for r in other_seeds}
    finally:
        scheduler.close()
    assert replies[0] == replies[1] == replies[2]  # same seed, same reply, whatever else runs
    assert len(others | {replies[0].text}) > 1  # other seeds: other replies (it really samples)
    assert stop not in replies[3].text
    assert replies[3] == tiny_engine.chat(ask(QUESTIONS[3]), max_new_tokens=20, stop=[stop])
    assert replies[4].completion_tokens == 3 and replies[4].finish_reason == "length"
    assert (
        "".join(pieces)
        == streamed.reply.text
        == tiny_engine.complete("the learning rate", max_new_tokens=6).text
    )


def test_cancel_and_timeout_free_the_row(tiny_engine: ChatEngine) -> None:
    scheduler = Scheduler(tiny_engine, max_batch_size=2)
    try:
        hogs = [scheduler.submit_chat(ask("Hi"), max_new_tokens=2000) for _ in range(2)]
        time.sleep(0.3)
        for hog in hogs:
            hog.cancel()
        with pytest.raises(RequestCancelled):
            hogs[0].wait()
        assert len(hogs[0].ids) < 2000
        reply = scheduler.submit_chat(ask("Hi"), max_new_tokens=4).wait()
        assert reply.completion_tokens <= 4 and len(hogs[1].ids) < 2000
    finally:
        scheduler.close()
    timed = Scheduler(tiny_engine, request_timeout=0.3)
    try:
        with pytest.raises(RequestTimedOut, match="request timeout"):
            timed.submit_chat(ask("Hi"), max_new_tokens=5000).wait()
    finally:
        timed.close()


def test_full_queue_refuses_with_a_retry_time(tiny_engine: ChatEngine) -> None:
    scheduler = Scheduler(tiny_engine, max_batch_size=1, max_waiting=1)
    try:
        running = scheduler.submit_chat(ask("Hi"), max_new_tokens=2000)
        time.sleep(0.2)  # let it start, so the next one waits
        waiting = scheduler.submit_chat(ask("Hi"), max_new_tokens=2)
        with pytest.raises(QueueFullError) as info:
            scheduler.submit_chat(ask("Hi"), max_new_tokens=2)
        assert info.value.retry_after >= 1
        running.cancel()
        assert waiting.wait().completion_tokens <= 2
    finally:
        scheduler.close()
