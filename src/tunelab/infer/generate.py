"""Answer a list of single-turn questions with a chat template (the demo's before/after answers).

A thin shortcut over :class:`tunelab.infer.engine.ChatEngine` for callers that already hold a loaded
model: one generation path for the demo, eval, chat and the API server.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunelab.config import GenerationArgs

__all__ = ["generate_answers"]


def generate_answers(
    model: Any,
    tokenizer: Any,
    template: Any,
    questions: Sequence[str],
    generation: GenerationArgs,
    *,
    system: str = "",
    batch_size: int = 8,
) -> list[str]:
    """Answer each question as a single-turn chat; left padding so a batch generates together."""
    from tunelab.infer.engine import ChatEngine

    engine = ChatEngine(model, tokenizer, template, generation=generation)
    conversations = [[{"role": "user", "content": q}] for q in questions]
    replies = engine.chat_batch(conversations, system=system or None, batch_size=batch_size)
    return [reply.text for reply in replies]
