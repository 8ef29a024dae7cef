"""The OpenAI-compatible server, tested through a real uvicorn server: the official `openai` client for
answers (stream and non-stream), raw HTTP for the wire format and the error cases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest
from typer.testing import CliRunner

from tunelab.infer.api import create_app
from tunelab.infer.engine import ChatEngine
from tunelab.infer.server import bind_socket

KEY = "test-key-123"
MODEL = "tiny"
QUESTIONS = ["What is a learning rate?", "Hi", "Tell me about LoRA rank.", "用一句话介绍你自己。"]


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


@pytest.fixture(scope="module")
def base_url(tiny_engine: ChatEngine, serve_app: Callable) -> Iterator[str]:
    with serve_app(create_app(tiny_engine, model_id=MODEL, api_key=KEY)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY, max_retries=0, timeout=60)


def post(base_url: str, path: str, body: object, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return httpx.post(f"{base_url}/v1{path}", json=body, headers=headers, timeout=60)


def test_models_list(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]
    assert client.models.retrieve(MODEL).owned_by == "tunelab"


def test_chat_matches_the_engine_with_real_usage(client: openai.OpenAI, tiny_engine: ChatEngine) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *ask(QUESTIONS[0])]
    want = tiny_engine.chat(messages, max_new_tokens=12)
    got = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12)  # type: ignore[arg-type]
    assert got.choices[0].message.content == want.text and got.choices[0].message.role == "assistant"
    assert got.choices[0].finish_reason == want.finish_reason
    assert got.usage is not None
    assert got.usage.prompt_tokens == len(tiny_engine.encode_chat(messages)) == want.prompt_tokens
    assert got.usage.completion_tokens == want.completion_tokens
    assert got.usage.total_tokens == want.prompt_tokens + want.completion_tokens


def test_chat_stream_adds_up(client: openai.OpenAI, tiny_engine: ChatEngine) -> None:
    want = tiny_engine.chat(ask(QUESTIONS[2]), max_new_tokens=16)
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=ask(QUESTIONS[2]),  # type: ignore[arg-type]
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == want.text
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # really streamed
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == want.finish_reason
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == want.completion_tokens


def test_completions_stream_and_not(client: openai.OpenAI, tiny_engine: ChatEngine) -> None:
    prompt = "Once upon a time"
    want = tiny_engine.complete(prompt, max_new_tokens=10)
    got = client.completions.create(model=MODEL, prompt=prompt, max_tokens=10)
    assert got.choices[0].text == want.text and got.object == "text_completion"
    assert got.usage is not None and got.usage.prompt_tokens == len(tiny_engine.encode_text(prompt))
    streamed = client.completions.create(model=MODEL, prompt=prompt, max_tokens=10, stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == want.text
    echoed = client.completions.create(model=MODEL, prompt=prompt, max_tokens=10, echo=True)
    assert echoed.choices[0].text.startswith(prompt)


def test_sse_wire_format(base_url: str) -> None:
    body = {"model": MODEL, "messages": ask("Hi"), "max_tokens": 6, "stream": True}
    with httpx.stream(
        "POST", f"{base_url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"temperature": -0.5}, "temperature", None),
        ({"top_p": 1.5}, "top_p", None),
        ({"max_tokens": 0}, "max_tokens", None),
        ({"n": 2}, "n", "unsupported_parameter"),
        ({"messages": []}, "messages", None),
        ({"model": ""}, "model", None),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "messages", None),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role", None),
        ({"frequency_penalty": 0.5}, "frequency_penalty", "unsupported_parameter"),
    ],
)
def test_bad_parameters_are_400(base_url: str, body: dict, param: str, code: str | None) -> None:
    response = post(base_url, "/chat/completions", {"model": MODEL, "messages": ask("Hi"), **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["code"] == code
    assert error["message"]


def test_completion_errors(base_url: str) -> None:
    assert post(base_url, "/completions", {"model": MODEL, "prompt": ""}).status_code == 400
    response = post(base_url, "/completions", {"model": MODEL, "prompt": ["a", "b"], "stream": True})
    assert response.status_code == 400 and response.json()["error"]["param"] == "prompt"
    not_json = httpx.post(
        f"{base_url}/v1/completions", content=b"model=x", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]["message"]


def test_api_key_is_required(base_url: str) -> None:
    for key in (None, "wrong"):
        response = post(base_url, "/chat/completions", {"model": MODEL, "messages": ask("Hi")}, key=key)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{base_url}/v1/models").status_code == 401
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0).models.list()


def test_over_long_input_is_400_context_length_exceeded(base_url: str, tiny_engine: ChatEngine) -> None:
    long = "learning rate " * tiny_engine.max_context
    for path, body in (
        ("/chat/completions", {"messages": ask(long)}),
        ("/chat/completions", {"messages": ask(long), "stream": True}),
        ("/completions", {"prompt": long}),
    ):
        response = post(base_url, path, {"model": MODEL, **body})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "context_length_exceeded" and str(tiny_engine.max_context) in error["message"]


def test_unknown_route_is_openai_shaped(base_url: str) -> None:
    response = httpx.get(f"{base_url}/v1/nothing", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 404 and "error" in response.json()


def test_concurrent_requests_do_not_mix(client: openai.OpenAI, tiny_engine: ChatEngine) -> None:
    # each job has its own prompt and length, so an answer delivered to the wrong request would show
    jobs = [(q, 3 + 2 * i, i % 2 == 0) for i, q in enumerate(QUESTIONS * 2)]
    want = {(q, n): tiny_engine.chat(ask(q), max_new_tokens=n).text for q, n, _ in jobs}
    assert len(set(want.values())) == len(want)

    def one(job: tuple[str, int, bool]) -> str:
        question, n, stream = job
        if stream:
            chunks = client.chat.completions.create(
                model=MODEL,
                messages=ask(question),  # type: ignore[arg-type]
                max_tokens=n,
                stream=True,
            )
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        reply = client.chat.completions.create(model=MODEL, messages=ask(question), max_tokens=n)  # type: ignore[arg-type]
        return reply.choices[0].message.content or ""

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(one, jobs))
    assert results == [want[(q, n)] for q, n, _ in jobs]


def test_busy_port_fails_fast() -> None:
    from tunelab.cli import app

    sock = bind_socket("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        result = CliRunner().invoke(app, ["api", "--model", "tiny:llama", "--port", str(port)])
    finally:
        sock.close()
    assert result.exit_code == 2 and "cannot listen" in result.output


@pytest.mark.slow  # a fresh process imports torch and loads the model: ~10 s idle, 30 s loaded
@pytest.mark.ci
def test_cli_serves_with_api_key_from_environment(tiny_model_dir: Path) -> None:
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "TUNELAB_API_KEY": KEY}
    command = [sys.executable, "-m", "tunelab", "api", "--model", str(tiny_model_dir), "--template", "chatml",
               "--port", str(port), "--model-name", "served", "compute_type=fp32"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "tunelab api did not come up"
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        assert httpx.get(f"{url}/v1/models").status_code == 401
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0)
        assert [m.id for m in client.models.list()] == ["served"]
        reply = client.chat.completions.create(model="served", messages=ask("Hi"), max_tokens=4)  # type: ignore[arg-type]
        assert reply.usage is not None and reply.usage.completion_tokens >= 1
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
