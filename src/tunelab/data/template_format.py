"""The Template class: a chat format written as format strings, encoded turn by turn so prompts can be masked.

A :class:`Template` is a small declarative object: one format string per role, a prefix, a default
system prompt, stop words. Format strings use four slots, substituted *after* parsing so user text
is never interpreted:

- ``{content}``: the message text;
- ``{bos}`` / ``{eos}``: the tokenizer's BOS / EOS id (left out when the tokenizer has none);
- ``{token:NAME}``: the id of the vocabulary entry NAME, inserted directly (for tokens such as
  ChatGLM's ``sop`` that plain text would not encode to).

Text between slots is encoded together with the content it surrounds (``"Human: " + content``),
so BPE merges come out as the model saw them. Each message is encoded on its own, which makes the
per-turn split exact: the concatenation of all (prompt, response) pairs *is* the conversation's ids.
The named formats live in config/template_catalog.py, thinking models' formats in template_reasoning.py and
the tokenizer's own Jinja template in template_tokenizer.py; template.py picks one by name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from tunelab.data.tools import check_tool_format, render_tools
from tunelab.errors import ConfigError, DataError

__all__ = ["Template", "Turn"]

Turn = tuple[list[int], list[int]]
"""One turn pair: (prompt ids, response ids)."""

_SLOT = re.compile(r"\{(content|bos|eos|token:[^{}]+)\}")
_PROMPT_ROLES = ("user", "observation")
_RESPONSE_ROLES = ("assistant", "function")


@dataclass(frozen=True)
class Template:
    """A chat format described by format strings; see the module docstring for the slot syntax."""

    name: str
    user: str = "{content}"
    assistant: str = "{content}{eos}"
    system: str = "{content}"
    function: str | None = None  # assistant tool call; None = same as assistant
    observation: str | None = None  # tool result; None = same as user
    prefix: str = ""  # once, before the first message ("{bos}" here = the template adds BOS)
    default_system: str = ""
    stop_words: tuple[str, ...] = ()
    tool_format: str = "default"  # how tool definitions are rendered into the system prompt
    system_in_user: bool = False  # Llama-2/Mistral style: system text is glued to the first user message
    efficient_eos: bool = False  # responses end with no EOS; the next prompt's stop token (or EOS) is learned
    required_tokens: tuple[str, ...] = ()  # vocabulary entries the format cannot work without

    @property
    def adds_bos(self) -> bool:
        """Whether encoded conversations start with the tokenizer's BOS token."""
        return "{bos}" in self.prefix

    def with_options(
        self,
        *,
        default_system: str | None = None,
        tool_format: str | None = None,
        enable_thinking: bool | None = None,
    ) -> Template:
        """A copy with the config's ``default_system`` / ``tool_format`` applied (None keeps the template's).

        ``enable_thinking`` only concerns formats with a thinking block (ReasoningTemplate); plain
        formats have none, so it changes nothing here.
        """
        changes: dict[str, Any] = {}
        if default_system is not None:
            changes["default_system"] = default_system
        if tool_format is not None:
            check_tool_format(tool_format)
            changes["tool_format"] = tool_format
        return replace(self, **changes) if changes else self

    # ---- encoding -------------------------------------------------------------------------------

    def encode_turns(
        self, tokenizer: Any, messages: Sequence[dict[str, str]], system: str = "", tools: str = ""
    ) -> list[Turn]:
        """Return (prompt ids, response ids) per turn; their concatenation is the whole conversation.

        ``messages`` alternate user/observation and assistant/function and end with a response.
        """
        messages, system = _split_system(messages, system)
        _check_roles(messages, need_response=True)
        encoded = self._encode_messages(tokenizer, messages, system, tools)
        turns = [(encoded[i], encoded[i + 1]) for i in range(0, len(encoded), 2)]
        if self.efficient_eos:
            turns = self._move_stop_tokens(tokenizer, turns)
        return turns

    def encode_prompt(
        self, tokenizer: Any, messages: Sequence[dict[str, str]], system: str = "", tools: str = ""
    ) -> list[int]:
        """Return the ids to generate from: the conversation so far, ending with the assistant header.

        If ``messages`` ends with a response (an sft record), that response is left out: the prompt
        is what the model sees when asked to produce it.
        """
        messages, system = _prompt_messages(messages, system)
        return [i for ids in self._encode_messages(tokenizer, messages, system, tools) for i in ids]

    def stop_token_ids(self, tokenizer: Any) -> list[int]:
        """Ids that end generation: the tokenizer's EOS, then every stop word that is one token."""
        ids: list[int] = []
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
        for word in self.stop_words:
            encoded = tokenizer.encode(word, add_special_tokens=False)
            if len(encoded) == 1 and encoded[0] not in ids:
                ids.append(encoded[0])
        return ids

    def check_tokenizer(self, tokenizer: Any) -> None:
        """Raise ConfigError when the tokenizer lacks a token this format is built on."""
        literal = _SLOT.sub("", "".join(self._formats()))
        for token in self.required_tokens:
            token_id = tokenizer.convert_tokens_to_ids(token)
            single = token_id is not None and token_id != tokenizer.unk_token_id
            if single and token in literal:
                single = tokenizer.encode(token, add_special_tokens=False) == [token_id]
            if not single:
                raise ConfigError(
                    f"template {self.name!r} needs {token!r} to be one token, but the tokenizer "
                    f"({getattr(tokenizer, 'name_or_path', '') or type(tokenizer).__name__}) does not have it",
                    "use the template that matches the model (template: tokenizer uses its own chat "
                    "template), or add the tokens as special tokens and resize the embeddings",
                )

    # ---- internals ------------------------------------------------------------------------------

    def _formats(self) -> list[str]:
        fields = (self.prefix, self.system, self.user, self.assistant, self.function, self.observation)
        return [f or "" for f in fields]

    def _system_text(self, system: str, tools: str) -> str:
        text = system or self.default_system
        tool_text = render_tools(tools, self.tool_format)
        if tool_text:
            text = text + tool_text if text else tool_text.lstrip("\n")
        return text

    def _encode_messages(
        self, tokenizer: Any, messages: Sequence[dict[str, str]], system: str, tools: str
    ) -> list[list[int]]:
        system_text = self._system_text(system, tools)
        encoded: list[list[int]] = []
        for index, message in enumerate(messages):
            ids: list[int] = []
            content = message["content"]
            if index == 0:
                ids += _fill(tokenizer, self.prefix, "")
                if system_text and self.system_in_user:
                    content = self.system.replace("{content}", system_text) + content
                elif system_text:
                    ids += _fill(tokenizer, self.system, system_text)
            ids += _fill(tokenizer, self._format_of(message["role"]), content)
            encoded.append(ids)
        return encoded

    def _format_of(self, role: str) -> str:
        if role in ("user", "assistant"):
            return self.user if role == "user" else self.assistant
        return (self.function or self.assistant) if role == "function" else (self.observation or self.user)

    def _move_stop_tokens(self, tokenizer: Any, turns: list[Turn]) -> list[Turn]:
        """Let each response learn to stop: take the next prompt's leading stop token, or EOS at the end."""
        stop_ids = set(self.stop_token_ids(tokenizer))
        moved: list[Turn] = []
        for prompt, response in turns:
            prompt, response = list(prompt), list(response)
            if moved and prompt and prompt[0] in stop_ids:
                moved[-1][1].append(prompt.pop(0))
            moved.append((prompt, response))
        if moved and tokenizer.eos_token_id is not None:
            moved[-1][1].append(tokenizer.eos_token_id)
        return moved


def _fill(tokenizer: Any, fmt: str, content: str) -> list[int]:
    """Encode one format string with ``content`` in place of ``{content}``; special slots become ids."""
    ids: list[int] = []
    text = ""
    for index, piece in enumerate(_SLOT.split(fmt)):  # text, slot, text, slot, ..., text
        if index % 2 == 0 or piece == "content":
            text += content if index % 2 else piece
            continue
        if text:
            ids += tokenizer.encode(text, add_special_tokens=False)
            text = ""
        if piece.startswith("token:"):
            token_id = tokenizer.convert_tokens_to_ids(piece[len("token:") :])
        else:
            token_id = tokenizer.bos_token_id if piece == "bos" else tokenizer.eos_token_id
        if token_id is not None:
            ids.append(token_id)
    if text:
        ids += tokenizer.encode(text, add_special_tokens=False)
    return ids


def _split_system(messages: Sequence[dict[str, str]], system: str) -> tuple[list[dict[str, str]], str]:
    """Move a leading ``system`` message into the system prompt (the record field wins if both exist)."""
    messages = list(messages)
    if messages and messages[0]["role"] == "system":
        system = system or messages[0]["content"]
        messages = messages[1:]
    return messages, system


def _prompt_messages(messages: Sequence[dict[str, str]], system: str) -> tuple[list[dict[str, str]], str]:
    """The messages a generation prompt is built from: without a trailing response, roles checked."""
    messages, system = _split_system(messages, system)
    if messages and messages[-1]["role"] in _RESPONSE_ROLES:
        messages = messages[:-1]
    _check_roles(messages, need_response=False)
    return messages, system


def _check_roles(messages: Sequence[dict[str, str]], *, need_response: bool) -> None:
    if not messages:
        raise DataError(
            "the conversation has no messages",
            "sft records need a user message and an assistant response; plain text belongs to stage: pt",
        )
    for index, message in enumerate(messages):
        expected = _PROMPT_ROLES if index % 2 == 0 else _RESPONSE_ROLES
        if message["role"] not in expected:
            raise DataError(
                f"message {index} has role {message['role']!r}, expected one of {expected}",
                "conversations must alternate user/observation and assistant/function turns",
            )
    if need_response and len(messages) % 2:
        raise DataError(
            "the conversation ends with a user message, so there is no response to learn",
            "end each training conversation with an assistant message",
        )
