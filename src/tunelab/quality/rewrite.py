"""Rewrite texts with a language model: a local one through tunelab's engine, or any OpenAI-compatible API.

Paraphrase asks for the same meaning in other words; back-translation goes through a pivot
language (Chinese for English text, English for Chinese) and back, the classic way to get a
reworded copy. Replies that come back empty or equal to the input are dropped by the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunelab.errors import ResourceError
from tunelab.quality.detectors import dominant_script

__all__ = ["ApiRewriter", "EngineRewriter", "back_translate_prompts", "paraphrase_prompt", "translate_prompt"]


def paraphrase_prompt(text: str) -> list[dict[str, str]]:
    instruction = (
        "Rewrite the following text in different words. Keep its meaning, language and any numbers "
        "or names exactly. Reply with the rewritten text only.\n\n"
    )
    return [{"role": "user", "content": instruction + text}]


def translate_prompt(text: str, target: str) -> list[dict[str, str]]:
    language = {"zh": "Chinese (简体中文)", "en": "English"}[target]
    return [
        {
            "role": "user",
            "content": f"Translate the following text into {language}. Reply with the translation only.\n\n{text}",
        }
    ]


def back_translate_prompts(text: str) -> tuple[str, str]:
    """(pivot language, source language) for ``text``: zh for English-like text, en for Chinese."""
    script, _ = dominant_script(text)
    return ("en", "zh") if script == "Han" else ("zh", "en")


class EngineRewriter:
    """Generates with a local ChatEngine, batched; sampling seeded per variant."""

    def __init__(self, engine: Any, *, max_new_tokens: int = 256, temperature: float = 0.8) -> None:
        self.engine = engine
        self.gen = {
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "do_sample": temperature > 0,
        }

    def complete(self, conversations: Sequence[list[dict[str, str]]], *, seed: int) -> list[str]:
        import torch

        torch.manual_seed(seed)
        replies = self.engine.chat_batch(list(conversations), **self.gen)
        return [reply.text.strip() for reply in replies]


class ApiRewriter:
    """Generates through an OpenAI-compatible endpoint (a bigger model the user serves, or tunelab api)."""

    def __init__(
        self,
        base_url: str,
        *,
        model: str | None,
        api_key: str | None,
        max_tokens: int = 256,
        temperature: float = 0.8,
    ) -> None:
        try:
            import openai
        except ImportError as err:
            raise ResourceError(
                "--api-base needs the openai client, which is not installed", "pip install openai"
            ) from err
        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "unused", max_retries=2, timeout=120
        )
        self.model = model or self.client.models.list().data[0].id
        self.options = {"max_tokens": max_tokens, "temperature": temperature}

    def complete(self, conversations: Sequence[list[dict[str, str]]], *, seed: int) -> list[str]:
        import openai

        out = []
        for messages in conversations:
            try:
                reply = self.client.chat.completions.create(
                    model=self.model, messages=messages, seed=seed, **self.options
                )
            except openai.APIError as err:
                raise ResourceError(
                    f"the endpoint {self.client.base_url} refused a request: {err}",
                    "check --api-base, --api-model and the key",
                ) from err
            out.append((reply.choices[0].message.content or "").strip())
        return out
