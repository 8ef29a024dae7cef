"""English and Chinese texts of the web UI, and the live language switch.

Help texts of config fields come from the schema (see :mod:`tunelab.webui.forms`); this module holds
only what the schema does not: short field labels, tab and button names, and messages. Every
translatable widget is registered with a :class:`Translator`; switching the language returns one
update per registered widget, so every label and help text changes without a page reload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunelab.webui.i18n_texts import FIELD_LABELS, TEXTS

__all__ = ["FIELD_LABELS", "LANGS", "TEXTS", "Translator", "field_label", "tr"]

LANGS = ("en", "zh")


def tr(key: str, lang: str, **values: Any) -> str:
    """The UI text ``key`` in ``lang`` ('en' or 'zh'), with ``{name}`` placeholders filled."""
    entry = TEXTS[key]
    text = entry.get(lang) or entry["en"]
    return text.format(**values) if values else text


def field_label(key: str, lang: str) -> str:
    """The short label of config key ``key`` (its key name when no label is written)."""
    pair = FIELD_LABELS.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "zh" else pair[0]


@dataclass
class _Entry:
    component: Any
    kind: str  # "field" | "label" | "value" | "choices"
    key: str
    info_key: str | None = None


class Translator:
    """Remembers which widget shows which text, and relabels all of them for a language."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []

    def field(self, component: Any, key: str) -> Any:
        """A config-key widget: label from FIELD_LABELS, info from the schema's help."""
        self._entries.append(_Entry(component, "field", key))
        return component

    def label(self, component: Any, key: str, info_key: str | None = None) -> Any:
        """A widget labelled with TEXTS[key] (and optionally an info text TEXTS[info_key])."""
        self._entries.append(_Entry(component, "label", key, info_key))
        return component

    def value(self, component: Any, key: str) -> Any:
        """A widget whose value is the text (buttons, Markdown)."""
        self._entries.append(_Entry(component, "value", key))
        return component

    @property
    def components(self) -> list[Any]:
        return [e.component for e in self._entries]

    def field_keys(self) -> list[str]:
        """Config keys of every registered field widget (for the schema drift test)."""
        return [e.key for e in self._entries if e.kind == "field"]

    def updates(self, lang: str) -> list[Any]:
        """One gr.update per registered widget, in registration order, for ``lang``."""
        import gradio as gr

        from tunelab.webui.forms import field_spec

        out = []
        for entry in self._entries:
            if entry.kind == "field":
                out.append(
                    gr.update(label=field_label(entry.key, lang), info=field_spec(entry.key).help(lang))
                )
            elif entry.kind == "label":
                extra = {"info": tr(entry.info_key, lang)} if entry.info_key else {}
                out.append(gr.update(label=tr(entry.key, lang), **extra))
            else:
                out.append(gr.update(value=tr(entry.key, lang)))
        return out
