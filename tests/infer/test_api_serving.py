"""The API server under load and misuse, through a real uvicorn server and the official `openai`
client: abandoned requests cost nothing, limits answer with OpenAI's statuses, logs and stats."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from tunelab.infer.api import ServeOptions, create_app
from tunelab.infer.engine import ChatEngine

KEY = "serving-key-456"
MODEL = "tiny"


@pytest.fixture(scope="module")
def url(tiny_engine: ChatEngine, serve_app: Callable) -> Iterator[str]:
    options = ServeOptions(max_batch_size=4, max_body_bytes=64 * 1024, max_input_tokens=200)
    with serve_app(create_app(tiny_engine, model_id=MODEL, api_key=KEY, options=options)) as base:
        yield base


@pytest.fixture(scope="module")
def short_url(tiny_engine: ChatEngine, serve_app: Callable) -> Iterator[str]:
    """The tiny model with a 64-token context, so that a large max_tokens is lowered quickly."""
    short = ChatEngine(
        tiny_engine.model, tiny_engine.tokenizer, tiny_engine.template, max_context=64, name="tiny"
    )
    with serve_app(create_app(short, model_id=MODEL, api_key=KEY)) as base:
        yield base


@pytest.fixture(scope="module")
def strict_url(tiny_engine: ChatEngine, serve_app: Callable) -> Iterator[str]:
    """One row, one waiting place, a 1 s timeout; any model name; open docs; prompts logged."""
    options = ServeOptions(
        max_batch_size=1,
        max_waiting=1,
        request_timeout=1.0,
        accept_any_model=True,
        public_docs=True,
        log_prompts=True,
    )
    with serve_app(create_app(tiny_engine, model_id=MODEL, api_key=KEY, options=options)) as base:
        yield base


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def client(base: str, **kwargs: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0, **{"timeout": 60, **kwargs})  # type: ignore[arg-type]


def stats(base: str) -> dict:
    return httpx.get(f"{base}/v1/stats", headers={"Authorization": f"Bearer {KEY}"}).json()


def wait_idle(base: str, seconds: float = 10) -> dict:
    deadline = time.monotonic() + seconds
    while (now := stats(base))["running"] or now["queue_waiting"]:
        assert time.monotonic() < deadline, f"requests still running: {now}"
        time.sleep(0.05)
    return now


def test_abandoned_requests_stop_generating(url: str) -> None:
    api = client(url)
    alone_start = time.monotonic()
    api.chat.completions.create(model=MODEL, messages=ask("Hi"), max_tokens=4)  # type: ignore[arg-type]
    alone = time.monotonic() - alone_start
    before = stats(url)["tokens_generated"]
    for _ in range(8):  # each would generate 2000 tokens if nobody stopped it
        stream = api.chat.completions.create(model=MODEL, messages=ask("Hi"), max_tokens=2000, stream=True)  # type: ignore[arg-type]
        next(iter(stream))
        stream.close()
    wait_idle(url)
    assert stats(url)["tokens_generated"] - before < 8 * 2000 / 10  # stopped long before max_tokens
    before = stats(url)["tokens_generated"]
    with pytest.raises(openai.APITimeoutError):  # a non-streaming client that gives up after 0.5 s
        client(url, timeout=0.5).chat.completions.create(model=MODEL, messages=ask("Hi"), max_tokens=2000)  # type: ignore[arg-type]
    wait_idle(url)
    assert stats(url)["tokens_generated"] - before < 2000 / 2
    start = time.monotonic()
    reply = api.chat.completions.create(model=MODEL, messages=ask("Hi"), max_tokens=4)  # type: ignore[arg-type]
    after = time.monotonic() - start
    assert reply.usage is not None and reply.usage.completion_tokens <= 4
    assert after < 5 * alone + 1.0, (after, alone)  # stated factor: same as alone, with slack for CPU load


def test_openai_error_semantics(url: str, tiny_engine: ChatEngine) -> None:
    api = client(url)
    with pytest.raises(openai.NotFoundError) as missing:
        api.chat.completions.create(model="gpt-4o", messages=ask("Hi"))  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as long:
        api.chat.completions.create(model=MODEL, messages=ask("learning rate " * 300))  # type: ignore[arg-type]
    assert long.value.code == "context_length_exceeded" and "200" in long.value.message  # --max-input-tokens
    response = httpx.post(f"{url}/v1/chat/completions", json={"model": MODEL, "messages": ask("Hi")})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    bad_json = httpx.post(
        f"{url}/v1/chat/completions",
        content=b'{"model": "tiny",\n "messages": [}',
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert bad_json.status_code == 400 and "line 2, column" in bad_json.json()["error"]["message"]
    huge = b'{"model": "tiny", "messages": [{"role": "user", "content": "' + b"a" * 5_000_000 + b'"}]}'
    start = time.monotonic()
    too_big = httpx.post(
        f"{url}/v1/chat/completions", content=huge, headers={"Authorization": f"Bearer {KEY}"}
    )
    assert too_big.status_code == 413 and "--max-body-bytes" in too_big.json()["error"]["message"]
    assert time.monotonic() - start < 10  # refused before it was parsed or tokenized


def test_seed_clamp_and_completion_leading_space(url: str, short_url: str, tiny_engine: ChatEngine) -> None:
    api = client(url)
    sampled = [
        api.chat.completions.create(model=MODEL, messages=ask("Hi"), max_tokens=10, temperature=1.8, seed=s)  # type: ignore[arg-type]
        for s in (3, 3, 4, 5, 6)
    ]
    texts = [s.choices[0].message.content for s in sampled]
    assert texts[0] == texts[1] and len(set(texts)) > 1
    clamped = httpx.post(
        f"{short_url}/v1/chat/completions",
        timeout=60,
        json={"model": MODEL, "messages": ask("Hi"), "max_tokens": 10**6},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert clamped.status_code == 200 and "was lowered" in clamped.headers["x-tunelab-notice"]
    assert "was lowered" in clamped.json()["warnings"][0]
    prompt = "The capital of France is"  # the tiny model continues it with " the ..."
    plain = api.completions.create(model=MODEL, prompt=prompt, max_tokens=6).choices[0].text
    streamed = "".join(
        c.choices[0].text
        for c in api.completions.create(model=MODEL, prompt=prompt, max_tokens=6, stream=True)
    )
    assert plain == streamed == tiny_engine.complete(prompt, max_new_tokens=6).text and plain.startswith(" ")


def test_docs_behind_the_key_and_spec_matches(url: str, strict_url: str) -> None:
    assert httpx.get(f"{url}/openapi.json").status_code == 401 and httpx.get(f"{url}/docs").status_code == 401
    assert httpx.get(f"{strict_url}/docs").status_code == 200  # --public-docs
    spec = httpx.get(f"{url}/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).json()
    chat = spec["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert "422" not in chat and {"400", "401", "404", "413", "429", "504"} <= set(chat)
    schemas = spec["components"]["schemas"]
    assert schemas["ChatRequest"]["properties"]["messages"]["minItems"] == 1
    assert schemas["ChatRequest"]["properties"]["model"]["minLength"] == 1


def test_queue_limit_timeout_any_model_and_logs(strict_url: str, caplog: pytest.LogCaptureFixture) -> None:
    api = client(strict_url)
    caplog.set_level(logging.INFO, logger="tunelab.api")
    hog = api.chat.completions.create(
        model="anything", messages=ask("secret question"), max_tokens=5000, stream=True
    )  # type: ignore[arg-type]
    next(iter(hog))
    # a second request fills the single waiting place

    second = threading.Thread(
        target=lambda: httpx.post(f"{strict_url}/v1/completions", json={"model": "x", "prompt": "Hi", "max_tokens": 2},
                                  headers={"Authorization": f"Bearer {KEY}"}, timeout=30),
    )  # fmt: skip
    second.start()
    deadline = time.monotonic() + 5
    while stats(strict_url)["queue_waiting"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(openai.RateLimitError) as full:
        api.completions.create(model="other-name", prompt="Hi", max_tokens=2)
    assert int(full.value.response.headers["retry-after"]) >= 1
    with pytest.raises(openai.APIError, match="request timeout"):  # the hog runs into --request-timeout 1
        list(hog)
    second.join()
    # the only row is busy with another long stream, so this request waits past its own 1 s timeout
    # whatever the machine's speed (a lone request could finish its clamped max_tokens within 1 s)
    blocker = api.chat.completions.create(
        model="anything", messages=ask("another long one"), max_tokens=5000, stream=True
    )  # type: ignore[arg-type]
    next(iter(blocker))
    with pytest.raises(openai.InternalServerError) as late:
        api.chat.completions.create(model="m", messages=ask("Hi"), max_tokens=5000)  # type: ignore[arg-type]
    assert late.value.status_code == 504
    with pytest.raises(openai.APIError, match="request timeout"):
        list(blocker)
    lines = [r.getMessage() for r in caplog.records if r.name == "tunelab.api"]
    assert any("POST /v1/completions 429" in line for line in lines)
    assert any("POST /v1/chat/completions 504" in line and "tokens_in=" in line for line in lines)
    assert any("secret question" in line for line in lines)  # --log-prompts
    assert not any(KEY in line for line in lines)
    figures = stats(strict_url)
    assert figures["requests"]["429"] >= 1 and figures["latency_seconds"]["p50"] is not None
