"""Streaming pieces of the engine: the reader-side iterator, the generate-side token sink, cancellation."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunelab.infer.engine import Reply

__all__ = ["CancelCriteria", "ReplyStream", "TokenStreamer", "first_stop"]


class ReplyStream:
    """Text pieces as they are generated; after the last piece, `reply` holds the finished Reply.

    Closing the stream early (or dropping it, e.g. a client disconnect) stops the generation.
    """

    def __init__(self, pieces: Iterator[str], cancel: threading.Event, finish: dict[str, Any]) -> None:
        self._pieces = pieces
        self._cancel = cancel
        self._finish = finish
        self.reply: Reply | None = None

    def __iter__(self) -> ReplyStream:
        return self

    def __next__(self) -> str:
        try:
            return next(self._pieces)
        except StopIteration:
            self.reply = self._finish.get("reply")
            raise

    def close(self) -> None:
        """Stop generating; pieces not yet read are dropped."""
        self._cancel.set()
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()

    def __del__(self) -> None:
        self._cancel.set()


def first_stop(text: str, stop: Sequence[str]) -> int | None:
    """Index of the earliest stop string in `text`, or None."""
    found = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return min(found) if found else None


class CancelCriteria:
    """A stopping criterion that ends generation when its event is set (stream closed early)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full(
            (input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device
        )


class TokenStreamer:
    """Receives new token ids from `generate` and hands printable text to the reading thread.

    Like transformers' TextIteratorStreamer (text is released only at word or CJK boundaries so a
    multi-byte character is never split), but it also keeps the ids (for token counts and the finish
    reason) and passes an exception from the generating thread on instead of blocking forever.
    """

    _END = object()

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._queue: queue.Queue[Any] = queue.Queue()
        self._sent = 0  # characters of the decoded text already released
        self._prompt_seen = False
        self._failure: BaseException | None = None

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first passes the prompt
            self._prompt_seen = True
            return
        self.ids.extend(int(v) for v in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for the rest
            return
        end = len(text) if text.endswith("\n") or _is_cjk(text[-1:]) else text.rfind(" ") + 1
        if end > self._sent:
            self._queue.put(text[self._sent : end])
            self._sent = end

    def end(self) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True).rstrip("\ufffd")
        if len(text) > self._sent:
            self._queue.put(text[self._sent :])
            self._sent = len(text)
        self._queue.put(self._END)

    def fail(self, exc: BaseException) -> None:
        self._failure = exc
        self._queue.put(self._END)

    def raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def __iter__(self) -> Iterator[str]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            yield item


def _is_cjk(char: str) -> bool:
    return bool(char) and (
        "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf" or "\u3000" <= char <= "\u303f"
    )
