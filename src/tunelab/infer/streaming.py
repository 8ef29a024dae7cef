"""Streaming pieces of the engine: id -> text decoding, the release of text pieces, cancellation.

Two producers feed the same text logic: transformers' `generate` (through TokenStreamer, for the
engine's own streams) and the batching scheduler (one token id at a time per request).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunelab.infer.engine import Reply

__all__ = ["CancelCriteria", "IncrementalText", "PieceFilter", "ReplyStream", "TokenStreamer", "first_stop"]


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


class IncrementalText:
    """Generated ids in, printable text out: released only at word or CJK boundaries, so a
    multi-byte character or a word that later tokens change is never sent half-made."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._sent = 0  # characters of the decoded text already released

    def push(self, new_ids: Sequence[int]) -> str:
        """The text that the new ids make final ("" while a word or character is unfinished)."""
        self.ids.extend(new_ids)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # an incomplete multi-byte character: wait for the rest
            return ""
        end = len(text) if text.endswith("\n") or _is_cjk(text[-1:]) else text.rfind(" ") + 1
        return self._release(text, end)

    def flush(self) -> str:
        """Whatever is left once generation has ended."""
        text = self.tokenizer.decode(self.ids, skip_special_tokens=True).rstrip("\ufffd")
        return self._release(text, len(text))

    def _release(self, text: str, end: int) -> str:
        if end <= self._sent:
            return ""
        piece, self._sent = text[self._sent : end], end
        return piece


class PieceFilter:
    """Holds back text that may be the start of a stop string, or whitespace that Reply.text strips
    at the ends (when `strip`), so the released pieces always add up to exactly Reply.text."""

    def __init__(self, stop: Sequence[str], *, strip: bool) -> None:
        self.stop = [s for s in stop if s]
        self.strip = strip
        self.stopped = False  # a stop string was found: nothing more will be released
        self._held = ""
        self._started = not strip
        self._keep = max((len(s) for s in self.stop), default=1) - 1

    def feed(self, piece: str) -> str:
        """The part of the text so far that is safe to send now."""
        if self.stopped:
            return ""
        self._held += piece
        if not self._started:
            self._held = self._held.lstrip()
        cut = first_stop(self._held, self.stop)
        if cut is not None:
            self._held = self._held[:cut]
            self.stopped = True
            return ""
        release = len(self._held) - self._keep
        while self.strip and release > 0 and self._held[release - 1].isspace():
            release -= 1
        if release <= 0:
            return ""
        self._started = True
        out, self._held = self._held[:release], self._held[release:]
        return out

    def tail(self) -> str:
        """The held text once generation has ended (stop string cut, trailing whitespace stripped)."""
        tail, self._held = self._held, ""
        return tail.rstrip() if self.strip else tail


class TokenStreamer:
    """Receives new token ids from `generate` and hands printable text to the reading thread.

    Like transformers' TextIteratorStreamer, but it also keeps the ids (for token counts and the
    finish reason) and passes an exception from the generating thread on instead of blocking forever.
    """

    _END = object()

    def __init__(self, tokenizer: Any) -> None:
        self._text = IncrementalText(tokenizer)
        self._queue: queue.Queue[Any] = queue.Queue()
        self._prompt_seen = False
        self._failure: BaseException | None = None

    @property
    def ids(self) -> list[int]:
        return self._text.ids

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first passes the prompt
            self._prompt_seen = True
            return
        piece = self._text.push([int(v) for v in value.reshape(-1).tolist()])
        if piece:
            self._queue.put(piece)

    def end(self) -> None:
        piece = self._text.flush()
        if piece:
            self._queue.put(piece)
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
