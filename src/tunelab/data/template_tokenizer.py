"""The ``tokenizer`` template: the tokenizer's own Jinja chat template, split into turns by rendering prefixes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tunelab.config.template_catalog import TEMPLATE_NAMES
from tunelab.data.template_format import Template, Turn, _check_roles, _prompt_messages, _split_system
from tunelab.data.tools import parse_tools
from tunelab.errors import ConfigError

__all__ = ["TokenizerTemplate"]


@dataclass(frozen=True)
class TokenizerTemplate(Template):
    """Use ``tokenizer.apply_chat_template`` and split turns by rendering prefixes of the conversation.

    Turn k's prompt is render(messages[:2k+1], add_generation_prompt=True) minus everything before
    it, its response is render(messages[:2k+2]) minus the prompt. This is only valid when every
    rendering is a token-level prefix of the next one; templates that rewrite earlier turns (e.g.
    ones that strip reasoning from history) break it, and we raise ConfigError instead of mis-masking.
    """

    def encode_turns(
        self, tokenizer: Any, messages: Sequence[dict[str, str]], system: str = "", tools: str = ""
    ) -> list[Turn]:
        messages, system = _split_system(messages, system)
        _check_roles(messages, need_response=True)
        conversation, n_lead, tool_list = self._conversation(messages, system, tools)
        turns: list[Turn] = []
        previous: list[int] = []
        for k in range(len(messages) // 2):
            prompt = self._render(tokenizer, conversation[: n_lead + 2 * k + 1], tool_list, generation=True)
            full = self._render(tokenizer, conversation[: n_lead + 2 * k + 2], tool_list, generation=False)
            if prompt[: len(previous)] != previous or full[: len(prompt)] != prompt:
                raise ConfigError(
                    f"the tokenizer's chat template does not render turn {k + 1} as an extension of the "
                    "turns before it, so prompt and response tokens cannot be told apart",
                    "set the named template of the model's family (e.g. template: qwen3, llama3, gemma3), which "
                    "renders reasoning and history as the model's template does",
                )
            turns.append((prompt[len(previous) :], full[len(prompt) :]))
            previous = full
        return turns

    def encode_prompt(
        self, tokenizer: Any, messages: Sequence[dict[str, str]], system: str = "", tools: str = ""
    ) -> list[int]:
        messages, system = _prompt_messages(messages, system)
        conversation, _, tool_list = self._conversation(messages, system, tools)
        return self._render(tokenizer, conversation, tool_list, generation=True)

    def check_tokenizer(self, tokenizer: Any) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                "template: tokenizer needs a tokenizer with a chat_template, and this one has none",
                f"pick a named template instead: {', '.join(n for n in TEMPLATE_NAMES if n != 'tokenizer')}",
            )

    def _conversation(
        self, messages: Sequence[dict[str, str]], system: str, tools: str
    ) -> tuple[list[dict[str, Any]], int, list[Any] | None]:
        """Messages in Hugging Face chat form, the count of leading system messages, and parsed tools."""
        tool_list = parse_tools(tools) if tools else None
        system = system or self.default_system
        lead = [{"role": "system", "content": system}] if system else []
        return lead + [_to_hf_message(m) for m in messages], len(lead), tool_list

    @staticmethod
    def _render(
        tokenizer: Any, conversation: list[dict[str, Any]], tools: list[Any] | None, *, generation: bool
    ) -> list[int]:
        from jinja2 import TemplateError  # jinja2 comes with transformers; imported only when rendering

        try:
            text = tokenizer.apply_chat_template(
                conversation, tools=tools, tokenize=False, add_generation_prompt=generation
            )
        except TemplateError as err:
            raise ConfigError(
                f"the tokenizer's chat template rejected the conversation: {err}",
                "set an explicit template (template: chatml, llama3, ...) or fix the record's roles",
            ) from err
        return tokenizer.encode(text, add_special_tokens=False)


def _to_hf_message(message: dict[str, str]) -> dict[str, Any]:
    """Map tunelab roles onto the chat-template roles: function -> assistant tool_calls, observation -> tool."""
    role, content = message["role"], message["content"]
    if role == "observation":
        return {"role": "tool", "content": content}
    if role == "function":
        try:
            calls = json.loads(content)
        except json.JSONDecodeError:
            calls = None
        calls = calls if isinstance(calls, list) else [calls]
        if not all(isinstance(c, dict) and "name" in c for c in calls):
            return {"role": "assistant", "content": content}
        tool_calls = [
            {"type": "function", "function": {"name": c["name"], "arguments": c.get("arguments", {})}}
            for c in calls
        ]
        return {"role": "assistant", "content": "", "tool_calls": tool_calls}
    return {"role": role, "content": content}
