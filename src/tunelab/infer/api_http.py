"""What the API server does around each request: a body-size limit enforced before anything parses
the body, one access-log line per request, and the counters behind /v1/stats and /metrics.

Both middlewares are plain ASGI, so streamed responses pass through untouched and a client
disconnect still reaches the endpoint. Endpoints add what only they know (token counts, and the
prompt with --log-prompts) to `scope["tunelab"]` through `note()`.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from typing import Any

__all__ = ["AccessLog", "BodyLimit", "ServerStats", "note"]

log = logging.getLogger("tunelab.api")

Scope = dict[str, Any]


def note(scope: Scope, **values: Any) -> None:
    """Attach values (tokens_in, tokens_out, prompt) to the request's access-log line and stats."""
    scope.setdefault("tunelab", {}).update(values)


class ServerStats:
    """Request counts, latencies and generated tokens, safe to update from any thread."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._status: collections.Counter[int] = collections.Counter()
        self._latencies: collections.deque[float] = collections.deque(maxlen=1000)
        self._tokens: collections.deque[tuple[float, int]] = collections.deque()
        self.tokens_total = 0

    def add_tokens(self, n: int) -> None:
        now = time.monotonic()
        with self._lock:
            self.tokens_total += n
            self._tokens.append((now, n))
            while self._tokens and self._tokens[0][0] < now - self.window:
                self._tokens.popleft()

    def add_request(self, status: int, latency: float, generated: bool) -> None:
        with self._lock:
            self._status[status] += 1
            if generated and status == 200:
                self._latencies.append(latency)

    def snapshot(self, waiting: int, running: int) -> dict[str, Any]:
        """The figures /v1/stats returns; latency percentiles over the last 1000 answered requests."""
        now = time.monotonic()
        with self._lock:
            recent = sum(n for t, n in self._tokens if t >= now - self.window)
            span = min(self.window, now - self.started) or 1.0
            ordered = sorted(self._latencies)
            status = dict(self._status)
        return {
            "queue_waiting": waiting,
            "running": running,
            "requests": {str(k): v for k, v in sorted(status.items())},
            "tokens_generated": self.tokens_total,
            "tokens_per_second": round(recent / span, 2),
            "latency_seconds": {f"p{q}": _percentile(ordered, q) for q in (50, 95, 99)},
            "uptime_seconds": round(now - self.started, 1),
        }


def _percentile(ordered: list[float], q: int) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))], 4)


def prometheus_text(snapshot: dict[str, Any]) -> str:
    """The /v1/stats figures in Prometheus' text format."""
    lines = [
        f"tunelab_queue_waiting {snapshot['queue_waiting']}",
        f"tunelab_running {snapshot['running']}",
        f"tunelab_tokens_generated_total {snapshot['tokens_generated']}",
        f"tunelab_tokens_per_second {snapshot['tokens_per_second']}",
    ]
    lines += [f'tunelab_requests_total{{status="{k}"}} {v}' for k, v in snapshot["requests"].items()]
    for name, value in snapshot["latency_seconds"].items():
        if value is not None:
            lines.append(f'tunelab_latency_seconds{{quantile="0.{name[1:]}"}} {value}')
    return "\n".join(lines) + "\n"


async def _reply(
    send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()
) -> None:  # type: ignore[assignment]
    data = json.dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": data})


class BodyLimit:
    """Refuses a request body over `max_bytes` with 413 before the app reads, parses or tokenizes it."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        note(scope, body=body)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: the disconnect the endpoint may wait for
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Any) -> None:
        note_message = (
            f"The request body is larger than this server's limit of {self.max_bytes} bytes; "
            "send a shorter prompt, or start the server with a larger --max-body-bytes."
        )
        body = {"error": {"message": note_message, "type": "invalid_request_error", "param": None,
                          "code": "request_too_large"}}  # fmt: skip
        await _reply(send, 413, body)


class AccessLog:
    """One log line per request: method, path, status, tokens in/out, latency (never the API key;
    the prompt only when the server runs with --log-prompts). Also feeds ServerStats."""

    def __init__(self, app: Any, stats: ServerStats, *, log_prompts: bool = False) -> None:
        self.app = app
        self.stats = stats
        self.log_prompts = log_prompts

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        info: dict[str, Any] = scope.setdefault("tunelab", {})
        status = {"code": 499}  # stays so when the client leaves before any answer
        logged = False

        def line() -> None:
            nonlocal logged
            if not logged:
                logged = True
                self._line(scope, info, status["code"], time.monotonic() - start)

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                line()  # before the last byte leaves, so the line exists once the client has its answer
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            line()

    def _line(self, scope: Scope, info: dict[str, Any], status: int, latency: float) -> None:
        code = 499 if info.get("client_gone") else status
        generated = "tokens_out" in info
        self.stats.add_request(code, latency, generated)
        parts = [f"{scope['method']} {scope['path']}", str(code)]
        if "tokens_in" in info:
            parts.append(f"tokens_in={info['tokens_in']}")
        if generated:
            parts.append(f"tokens_out={info['tokens_out']}")
        parts.append(f"{latency:.3f}s")
        if info.get("stream"):
            parts.append("stream")
        if self.log_prompts and "prompt" in info:
            parts.append(f"prompt={json.dumps(info['prompt'], ensure_ascii=False)}")
        client = scope.get("client") or ("-", 0)
        log.info("%s %s", client[0], " ".join(parts))
