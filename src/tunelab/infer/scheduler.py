"""Continuous batching: one thread owns the model and decodes every running request together.

    scheduler = Scheduler(engine, max_batch_size=8, max_waiting=64)
    request = scheduler.submit_chat(messages, max_new_tokens=20)   # from any thread
    print(request.wait().text)                                     # or: for piece in request.pieces()

Between two decoding steps the thread drops the rows that finished, were cancelled or ran out of
time, and admits waiting requests (prefilled together, then merged into the running batch), so a
request never waits for another one to finish, and a cancelled one costs at most one more step.
Each row keeps its own sampling settings, stop strings and token budget; greedy rows get the reply
they would get alone (see infer/batch_decode.py).
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tunelab.errors import ConfigError, ResourceError
from tunelab.infer.batch_decode import DecodeBatch
from tunelab.infer.request import GenerationRequest
from tunelab.infer.sampling import RowSampling, choose_tokens
from tunelab.infer.streaming import first_stop

if TYPE_CHECKING:
    from tunelab.infer.engine import ChatEngine, Messages

__all__ = ["QueueFullError", "Scheduler"]


class QueueFullError(ResourceError):
    """More requests wait than --max-waiting allows (HTTP 429 with Retry-After in the API)."""

    def __init__(self, waiting: int, retry_after: int) -> None:
        super().__init__(
            f"the server is busy: {waiting} requests are already waiting",
            f"retry in about {retry_after} s, or start the server with a larger --max-waiting",
        )
        self.retry_after = retry_after


class Scheduler:
    """Serves generation requests for one engine from a single decoding thread."""

    def __init__(
        self,
        engine: ChatEngine,
        *,
        max_batch_size: int = 8,
        max_waiting: int = 256,
        max_input_tokens: int | None = None,
        request_timeout: float | None = None,
        on_tokens: Any = None,
    ) -> None:
        if max_batch_size < 1 or max_waiting < 0:
            raise ConfigError(
                "--max-batch-size must be >= 1 and --max-waiting >= 0", "e.g. --max-batch-size 8"
            )
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.max_waiting = max_waiting
        self.max_input_tokens = max_input_tokens
        self.request_timeout = request_timeout
        self.on_tokens = on_tokens  # called with the number of tokens each step produced (stats)
        self._waiting: collections.deque[GenerationRequest] = collections.deque()
        self._rows: list[GenerationRequest] = []
        self._batch = DecodeBatch(engine.model, engine.pad_id)
        self._cond = threading.Condition()
        self._closed = False
        self._recent: collections.deque[float] = collections.deque(maxlen=50)  # request durations
        self._thread = threading.Thread(target=self._run, name="tunelab-scheduler", daemon=True)
        self._thread.start()

    # ---- submitting -----------------------------------------------------------------------------

    @property
    def n_waiting(self) -> int:
        return len(self._waiting)

    @property
    def n_running(self) -> int:
        return len(self._rows)

    def submit(
        self,
        prompt: list[int],
        *,
        stop: Sequence[str] | None = None,
        strip: bool = True,
        loop: asyncio.AbstractEventLoop | None = None,
        **gen: Any,
    ) -> GenerationRequest:
        """Queue prompt ids for generation; InputTooLongError, ConfigError or QueueFullError at once."""
        from tunelab.infer.engine import InputTooLongError

        seed = gen.pop("seed", None)
        settings = self.engine.settings(**gen)
        if settings.num_beams > 1:
            raise ConfigError("beam search is not served by the batching scheduler", "set num_beams=1")
        if self.max_input_tokens is not None and len(prompt) > self.max_input_tokens:
            raise InputTooLongError(len(prompt), self.max_input_tokens)
        max_new = self.engine.room([prompt], settings.max_new_tokens)
        sampling = RowSampling.create(
            do_sample=settings.do_sample,
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=settings.top_k,
            repetition_penalty=settings.repetition_penalty,
            seed=seed,
        )
        request = GenerationRequest(
            self.engine, list(prompt), sampling, max_new, [s for s in stop or [] if s], strip,
            timeout=self.request_timeout, requested=settings.max_new_tokens, loop=loop,
        )  # fmt: skip
        with self._cond:
            if self._closed:
                raise ResourceError("the server is shutting down", "retry against a running server")
            if len(self._waiting) >= self.max_waiting:
                raise QueueFullError(len(self._waiting), self.retry_after())
            self._waiting.append(request)
            self._cond.notify()
        return request

    def submit_chat(
        self, messages: Messages, *, system: str | None = None, **kwargs: Any
    ) -> GenerationRequest:
        return self.submit(self.engine.encode_chat(messages, system=system), **kwargs)

    def submit_text(self, prompt: str, **kwargs: Any) -> GenerationRequest:
        return self.submit(self.engine.encode_text(prompt), strip=False, **kwargs)

    def retry_after(self) -> int:
        """Seconds after which a refused request has a fair chance: the queue ahead, served a batch
        at a time at the recent pace."""
        per_request = sum(self._recent) / len(self._recent) if self._recent else 1.0
        rounds = (len(self._waiting) + len(self._rows)) / self.max_batch_size
        return max(1, min(60, round(per_request * rounds)))

    def close(self) -> None:
        """Stop the thread; requests still waiting or running end as cancelled."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=30)

    # ---- the decoding thread --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._rows and not self._closed:
                    self._cond.wait()
                if self._closed:
                    break
                room = self.max_batch_size - len(self._rows)
                new = [self._waiting.popleft() for _ in range(min(room, len(self._waiting)))]
            try:
                self._drop_abandoned()
                fresh = [r for r in new if not self._abandoned(r, time.monotonic())]
                if fresh:
                    self._admit(fresh)
                if self._rows:
                    self._step()
            except Exception as exc:  # noqa: BLE001 - a failed step fails its requests, not the server
                for request in self._rows + new:
                    if request.outcome in ("waiting", "running"):
                        request.end("failed", exc)
                self._rows = []
                self._batch.keep([])
        for request in [*self._rows, *self._waiting]:
            request.end("cancelled")

    def _abandoned(self, request: GenerationRequest, now: float) -> bool:
        """Ends a cancelled or expired request; True if it was one."""
        if request.cancelled.is_set():
            request.end("cancelled")
        elif request.expired(now):
            request.end("timeout")
        else:
            return False
        return True

    def _drop_abandoned(self) -> None:
        now = time.monotonic()
        keep = [i for i, r in enumerate(self._rows) if not self._abandoned(r, now)]
        if len(keep) < len(self._rows):
            self._rows = [self._rows[i] for i in keep]
            self._batch.keep(keep)

    def _admit(self, requests: list[GenerationRequest]) -> None:
        logits = self._batch.prefill([r.prompt for r in requests])
        now = time.monotonic()
        for request in requests:
            request.started, request.outcome = now, "running"
        tokens = choose_tokens(logits, [r.sampling for r in requests], [r.prompt for r in requests])
        keep = [i for i, (r, t) in enumerate(zip(requests, tokens)) if not self._take(r, t)]
        self._batch.admit(tokens, keep)
        self._rows.extend(requests[i] for i in keep)
        self._count(len(requests))

    def _step(self) -> None:
        logits = self._batch.step()
        rows = self._rows
        histories = [r.prompt + r.ids if r.sampling.repetition_penalty != 1.0 else [] for r in rows]
        tokens = choose_tokens(logits, [r.sampling for r in rows], histories)
        keep = [i for i, (r, t) in enumerate(zip(rows, tokens)) if not self._take(r, t)]
        self._batch.set_pending(tokens)
        self._batch.keep(keep)
        self._rows = [rows[i] for i in keep]
        self._count(len(rows))

    def _take(self, request: GenerationRequest, token: int) -> bool:
        """Hand the token to its request; True when the request is done (stop, stop string, length)."""
        request.deliver(token)
        done = token in self.engine.stop_ids or len(request.ids) >= request.max_new
        if not done and request.stop:
            text = self.engine.tokenizer.decode(request.ids, skip_special_tokens=True)
            done = first_stop(text, request.stop) is not None
        if done:
            self._recent.append(time.monotonic() - request.created)
            request.end("finished")
        return done

    def _count(self, n_tokens: int) -> None:
        if self.on_tokens is not None:
            self.on_tokens(n_tokens)
