"""An OpenAI-compatible HTTP API over a ChatEngine: /v1/models, /v1/chat/completions, /v1/completions.

    app = create_app(engine, api_key="secret")      # then serve it with uvicorn (see infer/server.py)

Works with the official `openai` client (`OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=...)`).
Streaming answers are server-sent events in OpenAI's chunk format, ending with `data: [DONE]`; token
counts in `usage` are the real prompt and completion token counts. Errors have OpenAI's JSON shape:
400 bad parameters, 401 missing or wrong API key, 404 unknown route, 413 prompt longer than the
model's context. The engine serialises generation behind a lock, so concurrent requests are served
one after another and never mix; endpoints are plain functions, which FastAPI runs in worker threads.
"""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunelab.errors import ConfigError, DataError
from tunelab.infer.api_schema import (
    APIError,
    ChatRequest,
    CompletionRequest,
    check_supported,
    error_body,
    generation_kwargs,
    message_text,
    stop_list,
)

if TYPE_CHECKING:
    from tunelab.infer.engine import ChatEngine, Reply, ReplyStream

__all__ = ["create_app", "default_model_id"]

T = TypeVar("T")


def default_model_id(engine_name: str) -> str:
    """The id clients use: a model or run directory's folder name, else the name as given (tiny:llama)."""
    path = Path(engine_name)
    return path.name if path.exists() and path.name else engine_name


def _usage(replies: list[Reply]) -> dict[str, int]:
    prompt = sum(r.prompt_tokens for r in replies)
    completion = sum(r.completion_tokens for r in replies)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _sse(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _engine_call(fn: Callable[[], T], param: str) -> T:
    """Run an engine call, turning its input errors into HTTP errors (raised before generating)."""
    from tunelab.infer.engine import InputTooLongError

    try:
        return fn()
    except InputTooLongError as exc:
        raise APIError(
            413,
            f"This model's maximum context length is {exc.limit} tokens; the prompt has {exc.n_tokens} tokens. "
            "Shorten the prompt.",
            param=param,
            code="context_length_exceeded",
        ) from None
    except (ConfigError, DataError) as exc:
        raise APIError(400, exc.message + (f" ({exc.hint})" if exc.hint else ""), param=param) from None


def _chat_messages(request: ChatRequest) -> list[dict[str, str]]:
    if not request.messages:
        raise APIError(400, "messages must contain at least one message", param="messages")
    messages = []
    for index, message in enumerate(request.messages):
        role = "system" if message.role == "developer" else message.role
        if role == "system" and index > 0:
            raise APIError(400, "a system message is only allowed first", param=f"messages[{index}].role")
        messages.append({"role": role, "content": message_text(message, index)})
    if messages[-1]["role"] != "user":
        raise APIError(400, "the last message must come from the user", param="messages")
    return messages


def create_app(engine: ChatEngine, *, model_id: str | None = None, api_key: str | None = None) -> FastAPI:
    """The FastAPI app serving `engine` under `model_id`; with `api_key`, /v1 needs `Bearer <api_key>`."""
    from tunelab import __version__

    served = model_id or default_model_id(engine.name)
    created = int(time.time())
    app = FastAPI(title="tunelab OpenAI-compatible API", version=__version__)

    def authorize(authorization: str | None = Header(None)) -> None:
        if api_key is None:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise APIError(
                401,
                "Incorrect or missing API key: send the header 'Authorization: Bearer <key>' with the key "
                "the server was started with (TUNELAB_API_KEY).",
                code="invalid_api_key",
            )

    def check_model(name: str) -> None:
        if name not in (served, engine.name):
            raise APIError(
                400,
                f"The model {name!r} does not exist; this server serves {served!r}.",
                param="model",
                code="model_not_found",
            )

    def model_card() -> dict[str, Any]:
        return {"id": served, "object": "model", "created": created, "owned_by": "tunelab"}

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorize)])

    @v1.get("/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @v1.get("/models/{name:path}")
    def get_model(name: str) -> dict[str, Any]:
        if name not in (served, engine.name):
            raise APIError(404, f"The model {name!r} does not exist.", param="model", code="model_not_found")
        return model_card()

    @v1.post("/chat/completions", response_model=None)
    def chat_completions(request: ChatRequest) -> dict[str, Any] | StreamingResponse:
        check_model(request.model)
        check_supported(request)
        messages = _chat_messages(request)
        gen, stop = generation_kwargs(request), stop_list(request.stop)
        cid = f"chatcmpl-{uuid.uuid4().hex}"
        if request.stream:
            stream = _engine_call(lambda: engine.stream(messages, stop=stop, **gen), "messages")
            include_usage = bool((request.stream_options or {}).get("include_usage"))
            chunks = _chat_chunks(stream, cid, served, include_usage)
            return StreamingResponse(chunks, media_type="text/event-stream")
        reply = _engine_call(lambda: engine.chat(messages, stop=stop, **gen), "messages")
        return {
            "id": cid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": served,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
            ],
            "usage": _usage([reply]),
        }

    @v1.post("/completions", response_model=None)
    def completions(request: CompletionRequest) -> dict[str, Any] | StreamingResponse:
        check_model(request.model)
        check_supported(request)
        prompts = [request.prompt] if isinstance(request.prompt, str) else list(request.prompt)
        if not prompts or not all(prompts):
            raise APIError(400, "prompt must be a non-empty string (or a list of them)", param="prompt")
        gen, stop = generation_kwargs(request), stop_list(request.stop)
        cid = f"cmpl-{uuid.uuid4().hex}"
        if request.stream:
            if len(prompts) > 1:
                raise APIError(400, "streaming takes a single prompt", param="prompt")
            stream = _engine_call(lambda: engine.stream_complete(prompts[0], stop=stop, **gen), "prompt")
            include_usage = bool((request.stream_options or {}).get("include_usage"))
            echo = prompts[0] if request.echo else ""
            return StreamingResponse(
                _completion_chunks(stream, cid, served, include_usage, echo), media_type="text/event-stream"
            )
        ids = [engine.encode_text(p) for p in prompts]
        replies = _engine_call(lambda: engine.generate(ids, stop=stop, **gen), "prompt")
        choices = [
            {
                "index": i,
                "text": (prompts[i] if request.echo else "") + reply.text,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
            for i, reply in enumerate(replies)
        ]
        return {
            "id": cid,
            "object": "text_completion",
            "created": int(time.time()),
            "model": served,
            "choices": choices,
            "usage": _usage(replies),
        }

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model": served}

    app.include_router(v1)
    _install_error_handlers(app)
    return app


def _envelope(cid: str, kind: str, model: str, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """One streamed OpenAI object (``chat.completion.chunk`` or ``text_completion``)."""
    return {
        "id": cid,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        **extra,
    }


def _chat_chunks(stream: ReplyStream, cid: str, model: str, include_usage: bool) -> Iterator[str]:
    kind = "chat.completion.chunk"

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _envelope(cid, kind, model, [choice])

    yield _sse(chunk({"role": "assistant", "content": ""}))
    yield from _stream_body(
        stream,
        lambda piece: chunk({"content": piece}),
        lambda r: chunk({}, r.finish_reason),
        lambda r: _envelope(cid, kind, model, [], usage=_usage([r])),
        include_usage,
    )


def _completion_chunks(
    stream: ReplyStream, cid: str, model: str, include_usage: bool, echo: str
) -> Iterator[str]:
    kind = "text_completion"

    def chunk(text: str, finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return _envelope(cid, kind, model, [choice])

    if echo:
        yield _sse(chunk(echo))
    yield from _stream_body(
        stream,
        chunk,
        lambda r: chunk("", r.finish_reason),
        lambda r: _envelope(cid, kind, model, [], usage=_usage([r])),
        include_usage,
    )


def _stream_body(
    stream: ReplyStream,
    piece_chunk: Callable[[str], dict[str, Any]],
    finish_chunk: Callable[[Reply], dict[str, Any]],
    usage_chunk: Callable[[Reply], dict[str, Any]],
    include_usage: bool,
) -> Iterator[str]:
    """Text pieces as chunks, then the finish reason, optional usage and [DONE]; a failure mid-stream
    (after the 200 status was sent) becomes an error event. Closing early stops the generation."""
    try:
        for piece in stream:
            yield _sse(piece_chunk(piece))
        reply = stream.reply
        if reply is not None:
            yield _sse(finish_chunk(reply))
            if include_usage:
                yield _sse(usage_chunk(reply))
    except (RuntimeError, ValueError) as exc:  # torch/transformers failures during generation
        yield _sse(error_body(f"generation failed: {exc}", "server_error", code="generation_failed"))
    finally:
        stream.close()
    yield "data: [DONE]\n\n"


def _install_error_handlers(app: FastAPI) -> None:
    """Every error leaves the server in OpenAI's JSON shape."""

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
        if param is None:  # the body itself: not JSON, or not an object
            message = "the request body must be a JSON object, sent with Content-Type: application/json"
        return JSONResponse(error_body(message, "invalid_request_error", param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code)
