"""An OpenAI-compatible HTTP API over a ChatEngine: /v1/models, /v1/chat/completions, /v1/completions.

    app = create_app(engine, api_key="secret", options=ServeOptions(max_batch_size=8))

Works with the official `openai` client (`OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=...)`).
Requests go to a Scheduler (infer/scheduler.py) that decodes all running requests as one batch;
endpoints are async and only wait for their request's tokens, so a client that disconnects (or a
request past --request-timeout) is cancelled at the next decoding step. Streaming answers are
server-sent events in OpenAI's chunk format, ending with `data: [DONE]`. Errors have OpenAI's JSON
shape and statuses: 400 bad parameters (code context_length_exceeded for a prompt that does not
fit), 401 wrong key (with WWW-Authenticate), 404 unknown model or route, 413 body too large,
429 queue full (with Retry-After), 504 request timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from tunelab.errors import ConfigError, DataError
from tunelab.infer.api_errors import ERROR_RESPONSES, STREAMED_OK, install_error_handlers, protected_docs
from tunelab.infer.api_http import AccessLog, BodyLimit, ServerStats, note, prometheus_text
from tunelab.infer.api_schema import (
    APIError,
    ChatRequest,
    CompletionRequest,
    check_supported,
    generation_kwargs,
    message_text,
    stop_list,
)
from tunelab.infer.request import RequestCancelled, RequestTimedOut
from tunelab.infer.scheduler import QueueFullError, Scheduler

if TYPE_CHECKING:
    from tunelab.infer.engine import ChatEngine, Reply
    from tunelab.infer.request import GenerationRequest

__all__ = ["ServeOptions", "create_app", "default_model_id"]


@dataclass(frozen=True)
class ServeOptions:
    """How the server batches, limits and logs (the `tunelab api` flags of the same names)."""

    max_batch_size: int = 32
    max_waiting: int = 256
    max_input_tokens: int | None = None
    request_timeout: float | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    accept_any_model: bool = False
    log_prompts: bool = False
    public_docs: bool = False

    def check(self) -> None:
        """ConfigError naming the flag, before any model is loaded."""
        for flag, value, low in (
            ("--max-batch-size", self.max_batch_size, 1),
            ("--max-waiting", self.max_waiting, 0),
            ("--max-input-tokens", self.max_input_tokens, 1),
            ("--max-body-bytes", self.max_body_bytes, 1024),
        ):
            if value is not None and value < low:
                raise ConfigError(f"{flag} {value} is too small", f"use a number >= {low}")
        if self.request_timeout is not None and self.request_timeout <= 0:
            raise ConfigError(
                f"--request-timeout {self.request_timeout} must be positive", "e.g. --request-timeout 120"
            )


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


def _chat_messages(request: ChatRequest) -> list[dict[str, str]]:
    messages = []
    for index, message in enumerate(request.messages):
        role = "system" if message.role == "developer" else message.role
        if role == "system" and index > 0:
            raise APIError(400, "a system message is only allowed first", param=f"messages[{index}].role")
        messages.append({"role": role, "content": message_text(message, index)})
    if messages[-1]["role"] != "user":
        raise APIError(400, "the last message must come from the user", param="messages")
    return messages


def _clamp_notice(request: GenerationRequest) -> str | None:
    asked = request.requested
    if asked <= request.max_new:
        return None
    return (
        f"max_tokens {asked} was lowered to {request.max_new} so that the prompt "
        f"({len(request.prompt)} tokens) and the reply fit the model's context"
    )


def create_app(
    engine: ChatEngine,
    *,
    model_id: str | None = None,
    api_key: str | None = None,
    options: ServeOptions | None = None,
) -> FastAPI:
    """The FastAPI app serving `engine` under `model_id`; with `api_key`, /v1 needs `Bearer <api_key>`."""
    from tunelab import __version__

    opts = options or ServeOptions()
    served = model_id or default_model_id(engine.name)
    created = int(time.time())
    stats = ServerStats()
    scheduler = Scheduler(
        engine,
        max_batch_size=opts.max_batch_size,
        max_waiting=opts.max_waiting,
        max_input_tokens=opts.max_input_tokens,
        request_timeout=opts.request_timeout,
        on_tokens=stats.add_tokens,
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        scheduler.close()  # requests still running end as cancelled

    app = FastAPI(
        title="tunelab OpenAI-compatible API",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.scheduler, app.state.stats = scheduler, stats

    def authorize(authorization: str | None = Header(None, include_in_schema=False)) -> None:
        if api_key is None:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), api_key.encode()):
            raise APIError(
                401,
                "Incorrect or missing API key: send the header 'Authorization: Bearer <key>' with the key "
                "the server was started with (TUNELAB_API_KEY).",
                code="invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def check_model(name: str) -> None:
        if not opts.accept_any_model and name not in (served, engine.name):
            raise APIError(
                404,
                f"The model {name!r} does not exist; this server serves {served!r} "
                "(start it with --accept-any-model to answer any model name).",
                param="model",
                code="model_not_found",
            )

    def model_card() -> dict[str, Any]:
        return {"id": served, "object": "model", "created": created, "owned_by": "tunelab"}

    async def submit(
        http: Request, encode: Callable[[], list[int]], param: str, **kwargs: Any
    ) -> GenerationRequest:
        """Tokenize off the event loop, then queue; input errors become 400s, a full queue a 429."""
        from tunelab.infer.engine import InputTooLongError

        try:
            prompt = await run_in_threadpool(encode)
            request = scheduler.submit(prompt, loop=asyncio.get_running_loop(), **kwargs)
        except InputTooLongError as exc:
            raise APIError(
                400,
                f"This model's maximum context length is {exc.limit} tokens; the prompt has {exc.n_tokens} "
                "tokens. Shorten the prompt.",
                param=param,
                code="context_length_exceeded",
            ) from None
        except QueueFullError as exc:
            raise APIError(
                429, f"{exc.message}; {exc.hint}", type_="rate_limit_error", code="queue_full",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None  # fmt: skip
        except (ConfigError, DataError) as exc:
            raise APIError(400, exc.message + (f" ({exc.hint})" if exc.hint else ""), param=param) from None
        note(http.scope, tokens_in=len(prompt))
        return request

    async def wait_for(http: Request, requests: list[GenerationRequest]) -> list[Reply]:
        """The replies, cancelling every request as soon as the client disconnects."""
        task = asyncio.gather(*(r.await_reply() for r in requests))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=0.2)
                if done:
                    replies = list(task.result())
                    note(http.scope, tokens_out=sum(r.completion_tokens for r in replies))
                    return replies
                if await http.is_disconnected():
                    note(http.scope, client_gone=True)
                    raise APIError(499, "the client closed the connection", code="client_closed")
        except RequestTimedOut as exc:
            raise APIError(
                504, f"{exc.message}; {exc.hint}", type_="timeout_error", code="request_timeout"
            ) from None
        except RequestCancelled:
            raise APIError(
                503, "the server is shutting down", type_="server_error", code="shutting_down"
            ) from None
        except (RuntimeError, ValueError) as exc:  # torch/transformers failures during generation
            raise APIError(
                500, f"generation failed: {exc}", type_="server_error", code="generation_failed"
            ) from None
        finally:
            for request in requests:
                request.cancel()
            task.cancel()

    def stream_response(
        http: Request, request: GenerationRequest, chunks: AsyncIterator[str]
    ) -> StreamingResponse:
        notice = _clamp_notice(request)
        note(http.scope, stream=True)
        return StreamingResponse(
            chunks, media_type="text/event-stream", headers={"X-Tunelab-Notice": notice} if notice else None
        )

    async def sse_body(http: Request, request: GenerationRequest, piece: Callable[[str], dict[str, Any]],
                       finish: Callable[[Reply], dict[str, Any]], usage: Callable[[Reply], dict[str, Any]] | None,
                       first: dict[str, Any] | None) -> AsyncIterator[str]:  # fmt: skip
        """Pieces as chunks, then the finish reason, optional usage and [DONE]; a timeout or failure
        after the 200 was sent becomes an error event. A disconnect cancels the request (finally)."""
        try:
            if first is not None:
                yield _sse(first)
            async for text in request.apieces():
                yield _sse(piece(text))
            reply = request.reply
            assert reply is not None
            note(http.scope, tokens_out=reply.completion_tokens)
            yield _sse(finish(reply))
            if usage is not None:
                yield _sse(usage(reply))
        except RequestCancelled:
            return
        except (RequestTimedOut, RuntimeError, ValueError) as exc:
            kind, code = ("timeout_error", "request_timeout") if isinstance(exc, RequestTimedOut) else (
                "server_error", "generation_failed")  # fmt: skip
            note(http.scope, tokens_out=len(request.ids))
            yield _sse(
                {"error": {"message": f"generation failed: {exc}", "type": kind, "param": None, "code": code}}
            )
        finally:
            request.cancel()
        yield "data: [DONE]\n\n"

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorize)], responses=ERROR_RESPONSES)

    @v1.get("/models")
    def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @v1.get("/models/{name:path}")
    def get_model(name: str) -> dict[str, Any]:
        check_model(name)
        return model_card()

    @v1.post("/chat/completions", response_model=None, responses=STREAMED_OK)
    async def chat_completions(body: ChatRequest, http: Request) -> Any:
        check_model(body.model)
        check_supported(body)
        messages = _chat_messages(body)
        if opts.log_prompts:
            note(http.scope, prompt=messages)
        gen, stop = generation_kwargs(body), stop_list(body.stop)
        request = await submit(http, lambda: engine.encode_chat(messages), "messages", stop=stop, **gen)
        cid, kind = f"chatcmpl-{uuid.uuid4().hex}", "chat.completion"

        def envelope(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {
                "id": cid,
                "object": kind,
                "created": int(time.time()),
                "model": served,
                "choices": choices,
                **extra,
            }

        if body.stream:
            kind = "chat.completion.chunk"

            def delta(d: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
                return envelope([{"index": 0, "delta": d, "logprobs": None, "finish_reason": reason}])

            usage = (
                (lambda r: envelope([], usage=_usage([r])))
                if (body.stream_options or {}).get("include_usage")
                else None
            )
            chunks = sse_body(http, request, lambda t: delta({"content": t}), lambda r: delta({}, r.finish_reason),
                              usage, delta({"role": "assistant", "content": ""}))  # fmt: skip
            return stream_response(http, request, chunks)
        (reply,) = await wait_for(http, [request])
        message = {"role": "assistant", "content": reply.text}
        result = envelope([{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
                          usage=_usage([reply]))  # fmt: skip
        return _with_notice(result, _clamp_notice(request))

    @v1.post("/completions", response_model=None, responses=STREAMED_OK)
    async def completions(body: CompletionRequest, http: Request) -> Any:
        check_model(body.model)
        check_supported(body)
        prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
        if opts.log_prompts:
            note(http.scope, prompt=prompts)
        if body.stream and len(prompts) > 1:
            raise APIError(400, "streaming takes a single prompt", param="prompt")
        gen, stop = generation_kwargs(body), stop_list(body.stop)
        requests = []
        try:
            for text in prompts:
                encode = (lambda t: lambda: engine.encode_text(t))(text)
                requests.append(await submit(http, encode, "prompt", stop=stop, strip=False, **dict(gen)))
        except APIError:
            for request in requests:
                request.cancel()
            raise
        note(http.scope, tokens_in=sum(len(r.prompt) for r in requests))
        cid = f"cmpl-{uuid.uuid4().hex}"

        def envelope(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {"id": cid, "object": "text_completion", "created": int(time.time()), "model": served,
                    "choices": choices, **extra}  # fmt: skip

        def choice(text: str, reason: str | None, index: int = 0) -> dict[str, Any]:
            return {"index": index, "text": text, "logprobs": None, "finish_reason": reason}

        if body.stream:
            usage = (
                (lambda r: envelope([], usage=_usage([r])))
                if (body.stream_options or {}).get("include_usage")
                else None
            )
            first = envelope([choice(prompts[0], None)]) if body.echo else None
            chunks = sse_body(http, requests[0], lambda t: envelope([choice(t, None)]),
                              lambda r: envelope([choice("", r.finish_reason)]), usage, first)  # fmt: skip
            return stream_response(http, requests[0], chunks)
        replies = await wait_for(http, requests)
        choices = [
            choice((prompts[i] if body.echo else "") + reply.text, reply.finish_reason, i)
            for i, reply in enumerate(replies)
        ]
        return _with_notice(envelope(choices, usage=_usage(replies)), _clamp_notice(requests[0]))

    @v1.get("/stats")
    def server_stats() -> dict[str, Any]:
        return stats.snapshot(scheduler.n_waiting, scheduler.n_running)

    @app.get(
        "/metrics",
        dependencies=[Depends(authorize)],
        response_class=PlainTextResponse,
        responses=ERROR_RESPONSES,
    )
    def metrics() -> str:
        return prometheus_text(stats.snapshot(scheduler.n_waiting, scheduler.n_running))

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model": served}

    app.include_router(v1)
    protected_docs(app, None if opts.public_docs else authorize)
    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=opts.max_body_bytes)
    app.add_middleware(AccessLog, stats=stats, log_prompts=opts.log_prompts)
    return app


def _with_notice(result: dict[str, Any], notice: str | None) -> Any:
    """The JSON body, with an X-Tunelab-Notice header (and a `warnings` list) when max_tokens was lowered."""
    if notice is None:
        return result
    return JSONResponse({**result, "warnings": [notice]}, headers={"X-Tunelab-Notice": notice})
