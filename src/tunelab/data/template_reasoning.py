"""Formats of thinking models (Qwen3, Qwen3.5, DeepSeek-R1, gpt-oss, GLM-4.5): responses carry a reasoning block.

Training data writes reasoning the way most reasoning datasets do, inline before the answer:
``<think>step by step ...</think>The answer.``. The template re-renders it in the model's own markup
(``<think>\\n...\\n</think>\\n\\n`` for Qwen3, an ``analysis`` channel for gpt-oss) following the
rules of the model's published chat template:

- responses after the last user message (the answer being learned) get the block, an empty one when
  the record has no reasoning, as Qwen3's template renders them;
- responses before the last user message lose their reasoning and the block, because the model's
  template strips them from history: what the model sees as context at inference is what it trains
  on. Those earlier answers are still learned without a block unless ``mask_history: true`` (learn
  only the last turn), which is the right setting for multi-turn reasoning data;
- ``enable_thinking: false`` removes all reasoning and moves the empty block into the prompt (not
  learned), as the template's ``enable_thinking=False`` generation prompt does; the model then
  learns to answer directly.

Where the model's generation prompt already opens the block (Qwen3.5 and DeepSeek-R1 end it with
``<think>\\n``), the opening tag belongs to the prompt, so the mask boundary sits where generation starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from tunelab.data.template_format import Template

__all__ = ["ReasoningTemplate", "split_reasoning"]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def split_reasoning(content: str) -> tuple[str, str]:
    """Return (reasoning, answer) of a response written ``<think>reasoning</think>answer`` ('' reasoning if none)."""
    if THINK_CLOSE not in content:
        return "", content
    head, answer = content.split(THINK_CLOSE, 1)
    reasoning = head.split(THINK_OPEN, 1)[-1]
    return reasoning.strip("\n"), answer.lstrip("\n")


@dataclass(frozen=True)
class ReasoningTemplate(Template):
    """A Template whose final responses carry ``thought_open + reasoning + thought_close`` before the answer."""

    thought_open: str = "<think>\n"
    thought_close: str = "\n</think>\n\n"
    # the model's generation prompt ends with thought_open (Qwen3.5, DeepSeek-R1)
    open_in_prompt: bool = False
    history_prefix: str = ""  # what earlier responses start with instead: GLM-4.5 keeps an empty block
    enable_thinking: bool = True

    def with_options(
        self,
        *,
        default_system: str | None = None,
        tool_format: str | None = None,
        enable_thinking: bool | None = None,
    ) -> Template:
        template = super().with_options(default_system=default_system, tool_format=tool_format)
        if enable_thinking is None or enable_thinking == self.enable_thinking:
            return template
        return replace(template, enable_thinking=enable_thinking)

    def encode_prompt(
        self, tokenizer: Any, messages: Sequence[dict[str, str]], system: str = "", tools: str = ""
    ) -> list[int]:
        ids = super().encode_prompt(tokenizer, messages, system, tools)
        return ids + tokenizer.encode(self._generation_suffix(), add_special_tokens=False)

    def _encode_messages(
        self, tokenizer: Any, messages: Sequence[dict[str, str]], system: str, tools: str
    ) -> list[list[int]]:
        rendered, suffixes = self._render_reasoning(messages)
        encoded = super()._encode_messages(tokenizer, rendered, system, tools)
        for index, suffix in suffixes.items():  # the prompt before response `index` ends with `suffix`
            encoded[index - 1] += tokenizer.encode(suffix, add_special_tokens=False)
        return encoded

    def _generation_suffix(self) -> str:
        """What the prompt of a response ends with, after the assistant header."""
        if not self.enable_thinking:
            return self.thought_open + self.thought_close
        return self.thought_open if self.open_in_prompt else ""

    def _render_reasoning(
        self, messages: Sequence[dict[str, str]]
    ) -> tuple[list[dict[str, str]], dict[int, str]]:
        """Messages with every assistant response in this model's thought markup, and per-response prompt suffixes."""
        last_query = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
        rendered: list[dict[str, str]] = []
        suffixes: dict[int, str] = {}
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                rendered.append(dict(message))
                continue
            reasoning, answer = split_reasoning(message["content"])
            if index < last_query:  # history: the model's template drops the reasoning
                content = self.history_prefix + answer
            elif not self.enable_thinking:  # the empty block is in the prompt (see _generation_suffix)
                content = answer
            else:
                content = reasoning + self.thought_close + answer
                if not self.open_in_prompt:
                    content = self.thought_open + content
            suffix = self._generation_suffix() if index > last_query else ""
            if suffix:
                suffixes[index] = suffix
            rendered.append({"role": "assistant", "content": content})
        return rendered, suffixes
