"""Write a tunelab chat template as the Jinja `chat_template` an exported tokenizer carries.

A model trained with `template: alpaca` (say) only answers well in that format; plain transformers
users reach the format through `tokenizer.apply_chat_template`, so the export must carry it. The
Jinja text is generated from the same format strings training used. Like LLaMA-Factory's exported
templates, a user turn already ends with the assistant header (that is how these formats are
defined), so the rendering is the same with or without `add_generation_prompt`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tunelab.data.template import ReasoningTemplate, Template, TokenizerTemplate

__all__ = ["template_to_jinja"]

_SLOT = re.compile(r"\{(content|bos|eos|token:[^{}]+)\}")


def _literal(text: str) -> str:
    # Jinja string literals take backslash escapes like JSON's; non-ASCII stays as is
    return json.dumps(text, ensure_ascii=False)


def _expression(fmt: str, tokenizer: Any, content: str = "content") -> str:
    """A Jinja expression rendering format string `fmt` with the variable `content` in its slot."""
    parts: list[str] = []
    for index, piece in enumerate(_SLOT.split(fmt)):  # text, slot, text, slot, ..., text
        if index % 2 == 0:
            if piece:
                parts.append(_literal(piece))
        elif piece == "content":
            parts.append(content)
        elif piece.startswith("token:"):
            parts.append(_literal(piece[len("token:") :]))
        else:
            token = tokenizer.bos_token if piece == "bos" else tokenizer.eos_token
            if token:
                parts.append(_literal(token))
    return " + ".join(parts) if parts else "''"


def template_to_jinja(template: Template, tokenizer: Any) -> str | None:
    """Jinja source equivalent to `template`, or None for the tokenizer's own template (kept as is)."""
    if isinstance(template, TokenizerTemplate):
        return None
    if isinstance(template, ReasoningTemplate) and getattr(tokenizer, "chat_template", None):
        # Our thinking formats follow the model's own template, which also renders the reasoning
        # blocks and enable_thinking that the flat Jinja below cannot: keep it.
        return None
    roles = {
        "user": template.user,
        "assistant": template.assistant,
        "function": template.function or template.assistant,
        "observation": template.observation or template.user,
        "tool": template.observation or template.user,
    }
    system = _expression(template.system, tokenizer, "system_message")
    out = [
        "{% if messages and messages[0]['role'] == 'system' %}"
        "{% set system_message = messages[0]['content'] %}{% set loop_messages = messages[1:] %}"
        f"{{% else %}}{{% set system_message = {_literal(template.default_system)} %}}"
        "{% set loop_messages = messages %}{% endif %}"
    ]
    if template.prefix:
        out.append("{{ " + _expression(template.prefix, tokenizer) + " }}")
    if not template.system_in_user:
        out.append("{% if system_message %}{{ " + system + " }}{% endif %}")
    out.append("{% for message in loop_messages %}{% set content = message['content'] %}")
    if template.system_in_user:
        out.append(
            "{% if loop.first and system_message %}{% set content = " + system + " + content %}{% endif %}"
        )
    branches = [
        f"{{% {'if' if i == 0 else 'elif'} message['role'] == {_literal(role)} %}}{{{{ {_expression(fmt, tokenizer)} }}}}"
        for i, (role, fmt) in enumerate(roles.items())
    ]
    out.append("".join(branches) + "{% endif %}{% endfor %}")
    return "".join(out)
