"""Chat templates by name: how a conversation becomes token ids, turn by turn, so prompts can be masked.

The formats themselves are data in config/template_catalog.py; the machinery that encodes them is the
Template class (template_format.py), its thinking-model variant (template_reasoning.py) and the
tokenizer's own Jinja template (template_tokenizer.py). This module builds the registry and picks
the template a run uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunelab.config.template_catalog import FORMATS, unknown_template_hint
from tunelab.data.template_format import Template
from tunelab.data.template_reasoning import ReasoningTemplate
from tunelab.data.template_tokenizer import TokenizerTemplate
from tunelab.errors import ConfigError

if TYPE_CHECKING:
    from tunelab.config.schema import DataArgs

__all__ = [
    "TEMPLATES",
    "ReasoningTemplate",
    "Template",
    "TokenizerTemplate",
    "get_template",
    "template_for",
    "template_names",
]


def _build(name: str, spec: dict[str, Any]) -> Template:
    options = dict(spec)
    kind = options.pop("kind", None)
    return (ReasoningTemplate if kind == "reasoning" else Template)(name=name, **options)


TEMPLATES: dict[str, Template] = {name: _build(name, spec) for name, spec in FORMATS.items()}
TEMPLATES["tokenizer"] = TokenizerTemplate(name="tokenizer")


def template_names() -> list[str]:
    """Names accepted by the ``template`` config key."""
    return list(TEMPLATES)


def get_template(name: str | None, tokenizer: Any) -> Template:
    """Return the template called ``name``, checked against ``tokenizer``.

    ``None`` picks the tokenizer's own chat template when it has one (the model's authors know its
    format best), else ``default``.
    """
    if name is None:
        name = "tokenizer" if getattr(tokenizer, "chat_template", None) else "default"
    if name not in TEMPLATES:
        raise ConfigError(f"template: unknown template {name!r}", unknown_template_hint(name))
    template = TEMPLATES[name]
    template.check_tokenizer(tokenizer)
    return template


def template_for(data: DataArgs, tokenizer: Any) -> Template:
    """The template a run's data settings ask for, with their default_system, tool_format and enable_thinking."""
    return get_template(data.template, tokenizer).with_options(
        default_system=data.default_system, tool_format=data.tool_format, enable_thinking=data.enable_thinking
    )
