"""The text of a record as a data check compares it: prompt, response, and both, normalised.

Two records are "the same" when their normalised text is equal: Unicode NFKC, case folded,
whitespace collapsed. Near duplicates are compared on shingles (3-grams) of word tokens, where
each CJK character counts as a word, so that Chinese and English are treated alike.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

__all__ = ["RecordText", "normalize", "record_text", "shingles", "word_tokens"]

_SPACE = re.compile(r"\s+")
# a CJK ideograph, kana or hangul syllable is one token; other letters/digits group into words
_TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\W_]+", re.UNICODE
)


@dataclass(frozen=True)
class RecordText:
    """What a record asks (prompt), what it answers (response), and both."""

    prompt: str
    response: str
    tag: str = ""  # kto's desirability: part of what makes two records the same

    @property
    def full(self) -> str:
        text = f"{self.prompt}\n{self.response}" if self.response else self.prompt
        return f"{text}\n{self.tag}" if self.tag else text


def normalize(text: str) -> str:
    """Text folded for equality: NFKC, case folded, runs of whitespace made one space, trimmed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def word_tokens(text: str) -> list[str]:
    """Words of the normalised text (each CJK character on its own), punctuation dropped."""
    return _TOKEN.findall(normalize(text))


def shingles(text: str, n: int = 3) -> set[str]:
    """The set of ``n``-word shingles of ``text`` (the words themselves for texts shorter than n)."""
    words = word_tokens(text)
    if len(words) <= n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def _joined(messages: list[dict[str, str]]) -> str:
    return "\n".join(m["content"] for m in messages)


def record_text(record: dict[str, Any], stage: str) -> RecordText:
    """Prompt and response of a record of ``stage`` (see :mod:`tunelab.data.records`).

    sft/kto: the conversation up to the last response, and that response; rm/dpo: the prompt, and
    chosen + rejected; ppo: the prompt only; pt: the text; cls: the text, and its label.
    """
    # tool definitions are part of what is asked: the same question with other tools is another prompt
    system = "\n".join(filter(None, [record.get("system") or "", record.get("tools") or ""]))
    messages = record.get("messages") or []
    if stage == "pt":
        return RecordText(record.get("text") or _joined(messages), "")
    if stage == "cls":
        return RecordText(record.get("text") or "", str(record.get("label") or ""))
    if stage in ("rm", "dpo"):
        prompt = "\n".join(filter(None, [system, _joined(messages)]))
        return RecordText(prompt, f"{record.get('chosen') or ''}\n{record.get('rejected') or ''}")
    if stage == "ppo":
        return RecordText("\n".join(filter(None, [system, _joined(messages)])), "")
    history, last = messages[:-1], messages[-1:] or [{"content": ""}]
    prompt = "\n".join(filter(None, [system, _joined(history)]))
    response = last[0]["content"]
    if stage == "kto" and record.get("kto_tag") is not None:
        # the same text tagged the other way is a conflict, not a duplicate: the tag is part of the record
        return RecordText(prompt, response, tag="desirable" if record["kto_tag"] else "undesirable")
    return RecordText(prompt, response)
