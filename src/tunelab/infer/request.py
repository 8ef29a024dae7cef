"""One generation request inside the batching scheduler, and how its tokens come back to the caller.

The scheduler thread calls `deliver()` / `end()`; the caller reads text pieces from the same object,
either from a thread (`pieces()`) or from an asyncio event loop (`apieces()`, used by the API server,
where the events cross threads with `call_soon_threadsafe`). Cancelling is setting an event, so any
thread may do it, and the scheduler drops the row before its next decoding step.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tunelab.errors import ResourceError
from tunelab.infer.streaming import IncrementalText, PieceFilter

if TYPE_CHECKING:
    from tunelab.infer.engine import ChatEngine, Reply
    from tunelab.infer.sampling import RowSampling

__all__ = ["GenerationRequest", "RequestCancelled", "RequestTimedOut"]

_END = "end"


class RequestCancelled(Exception):
    """The request was cancelled before it finished (its client went away, or the server stopped)."""


class RequestTimedOut(ResourceError):
    """The request ran longer than the server's --request-timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the request did not finish within the server's request timeout ({seconds:g} s)",
            "ask for fewer tokens (max_tokens), retry when the server is less busy, "
            "or start the server with a longer --request-timeout",
        )
        self.seconds = seconds


@dataclass(eq=False)
class GenerationRequest:
    """A prompt, its decoding settings, and the ids generated so far. See the module docstring."""

    engine: ChatEngine
    prompt: list[int]
    sampling: RowSampling
    max_new: int
    stop: list[str]
    strip: bool
    timeout: float | None = None
    requested: int = 0  # the max_new_tokens asked for, before `max_new` fitted it to the context
    loop: asyncio.AbstractEventLoop | None = None
    ids: list[int] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    reply: Reply | None = None
    outcome: str = "waiting"  # then running, finished, cancelled, timeout or failed

    def __post_init__(self) -> None:
        self._events: Any = asyncio.Queue() if self.loop is not None else queue.Queue()
        self._text = IncrementalText(self.engine.tokenizer)
        self._filter = PieceFilter(self.stop, strip=self.strip)
        self._failure: BaseException | None = None

    # ---- scheduler side -------------------------------------------------------------------------

    def expired(self, now: float) -> bool:
        return self.timeout is not None and now - self.created > self.timeout

    def deliver(self, token: int) -> None:
        """A new token (called by the scheduler thread)."""
        self.ids.append(token)
        self._post(token)

    def end(self, outcome: str, failure: BaseException | None = None) -> None:
        """No more tokens: finished, cancelled, timeout or failed (called by the scheduler thread)."""
        self.outcome, self._failure = outcome, failure
        self._post(_END)

    def _post(self, item: Any) -> None:
        if self.loop is None:
            self._events.put(item)
            return
        try:
            self.loop.call_soon_threadsafe(self._events.put_nowait, item)
        except RuntimeError:  # the event loop is gone: nobody reads this request any more
            self.cancelled.set()

    # ---- caller side ----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop generating at the next step (safe from any thread)."""
        self.cancelled.set()

    def pieces(self) -> Iterator[str]:
        """Text pieces as they are generated (from a thread); `reply` is set at the end."""
        try:
            while True:
                item = self._events.get()
                if item == _END:
                    break
                yield from self._text_for(item)
            yield from self._close()
        finally:
            self.cancel()

    async def apieces(self) -> AsyncIterator[str]:
        """Text pieces as they are generated (from the event loop given as `loop`)."""
        try:
            while True:
                item = await self._events.get()
                if item == _END:
                    break
                for piece in self._text_for(item):
                    yield piece
            for piece in self._close():
                yield piece
        finally:
            self.cancel()

    def wait(self) -> Reply:
        """The whole reply (from a thread)."""
        for _ in self.pieces():
            pass
        assert self.reply is not None
        return self.reply

    async def await_reply(self) -> Reply:
        """The whole reply (from the event loop)."""
        async for _ in self.apieces():
            pass
        assert self.reply is not None
        return self.reply

    def _text_for(self, token: int) -> list[str]:
        out = self._filter.feed(self._text.push([token]))
        return [out] if out else []

    def _close(self) -> list[str]:
        if self.outcome == "cancelled":
            raise RequestCancelled()
        if self.outcome == "timeout":
            raise RequestTimedOut(self.timeout or 0)
        if self._failure is not None:
            raise self._failure
        out = [self._filter.feed(self._text.flush()), self._filter.tail()]
        self.reply = self.engine.finish_reply(
            self.ids, len(self.prompt), self.max_new, self.stop, strip=self.strip
        )
        return [p for p in out if p]
