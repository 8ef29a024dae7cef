"""Token length of each record as training would see it: the model's tokenizer and chat template.

Lengths are counted before ``cutoff_len``, so a check can say how many records the cutoff would
cut, and a clean can drop them (``too_long``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunelab.data.template import Template
from tunelab.data.tokenize_pref import encode_reply

__all__ = ["record_token_length", "token_lengths"]


def record_token_length(record: dict[str, Any], tokenizer: Any, template: Template | None, stage: str) -> int:
    """Tokens of one record: prompt + response (sft, kto), prompt + the longer answer (rm, dpo),
    the prompt (ppo), the text (pt, cls)."""
    system, tools = record.get("system") or "", record.get("tools") or ""
    if stage in ("pt", "cls"):
        return len(tokenizer(record.get("text") or "", add_special_tokens=stage == "cls")["input_ids"])
    messages = record["messages"]
    if stage == "ppo":
        return len(template.encode_prompt(tokenizer, messages, system, tools))
    if stage in ("rm", "dpo"):
        lengths = []
        for reply in (record.get("chosen") or "", record.get("rejected") or ""):
            prompt, answer = encode_reply(messages, reply, tokenizer, template, system, tools)
            lengths.append(len(prompt) + len(answer))
        return max(lengths)
    turns = template.encode_turns(tokenizer, messages, system, tools)
    return sum(len(p) + len(r) for p, r in turns)


def token_lengths(
    records: Sequence[dict[str, Any]], tokenizer: Any, template: Template | None, stage: str
) -> list[int]:
    """:func:`record_token_length` of every record, in order."""
    return [record_token_length(r, tokenizer, template, stage) for r in records]
