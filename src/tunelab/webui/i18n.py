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

__all__ = ["FIELD_LABELS", "LANGS", "TEXTS", "Translator", "choices", "field_label", "headers", "tr", "tr_or"]

LANGS = ("en", "zh")


def tr(key: str, lang: str, **values: Any) -> str:
    """The UI text ``key`` in ``lang`` ('en' or 'zh'), with ``{name}`` placeholders filled."""
    entry = TEXTS[key]
    text = entry.get(lang) or entry["en"]
    return text.format(**values) if values else text


def tr_or(key: str, lang: str, default: str, **values: Any) -> str:
    """TEXTS[key] in ``lang`` when it is written, else ``default`` (a value the UI shows as recorded)."""
    return tr(key, lang, **values) if key in TEXTS else default


def headers(names: list[str] | tuple[str, ...], lang: str) -> list[str]:
    """Table column names in ``lang`` (col.<name> texts; a name without one, e.g. a run name, stays)."""
    return [tr_or(f"col.{name}", lang, name) for name in names]


def choices(prefix: str, values: list[str] | tuple[str, ...], lang: str) -> list[tuple[str, str]]:
    """(label, value) dropdown choices: the label is TEXTS[prefix.value] in ``lang``, the value the CLI's."""
    return [(tr_or(f"{prefix}.{value}", lang, value), value) for value in values]


def field_label(key: str, lang: str) -> str:
    """The short label of config key ``key`` (its key name when no label is written)."""
    pair = FIELD_LABELS.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "zh" else pair[0]


@dataclass
class _Entry:
    component: Any
    kind: str  # "field" | "label" | "value" | "headers" | "choices" | "placeholder"
    key: str
    info_key: str | None = None
    extra: Any = None  # column names (headers), values (choices), format values (placeholder)


class Translator:
    """Remembers which widget shows which text, and relabels all of them for a language."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._own_choices: set[int] = set()

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

    def headers(self, component: Any, names: list[str] | tuple[str, ...]) -> Any:
        """A table whose column names (col.<name> texts) follow the language; switching empties it."""
        self._entries.append(_Entry(component, "headers", "", extra=tuple(names)))
        return component

    def choices(self, component: Any, prefix: str, values: list[str] | tuple[str, ...]) -> Any:
        """A dropdown or radio whose choice labels (prefix.<value> texts) follow the language."""
        self._entries.append(_Entry(component, "choices", prefix, extra=tuple(values)))
        return component

    def own_choices(self, component: Any) -> Any:
        """A field whose choices its tab rebuilds on a language switch (e.g. from the files on disk):
        the translator relabels its label and info only, so a stale list never overwrites the tab's."""
        self._own_choices.add(id(component))
        return component

    def placeholder(self, component: Any, key: str, **values: Any) -> Any:
        """A widget whose placeholder is TEXTS[key] (filled with ``values``)."""
        self._entries.append(_Entry(component, "placeholder", key, extra=values))
        return component

    @property
    def components(self) -> list[Any]:
        """Every registered widget once, in registration order (a widget may carry several texts)."""
        return list({id(e.component): e.component for e in self._entries}.values())

    def field_keys(self) -> list[str]:
        """Config keys of every registered field widget (for the schema drift test)."""
        return [e.key for e in self._entries if e.kind == "field"]

    def updates(self, lang: str) -> list[Any]:
        """One gr.update per widget of :attr:`components`, in that order, for ``lang``."""
        import gradio as gr

        merged: dict[int, dict[str, Any]] = {}
        for entry in self._entries:
            merged.setdefault(id(entry.component), {}).update(self._texts(entry, lang))
        return [gr.update(**merged[id(c)]) for c in self.components]

    def _texts(self, entry: _Entry, lang: str) -> dict[str, Any]:
        from tunelab.webui.forms import NONE_CHOICE, field_spec, unset_choice_label

        if entry.kind == "field":
            texts = {"label": field_label(entry.key, lang), "info": field_spec(entry.key).help(lang)}
            shown = [tuple(c) for c in getattr(entry.component, "choices", None) or []]  # (label, value)
            owned = id(entry.component) in self._own_choices
            if not owned and any(value == NONE_CHOICE for _, value in shown):  # relabel the "unset" entry
                texts["choices"] = unset_choice_label(
                    [NONE_CHOICE if value == NONE_CHOICE else (label, value) for label, value in shown], lang
                )
            return texts
        if entry.kind == "label":
            extra = {"info": tr(entry.info_key, lang)} if entry.info_key else {}
            return {"label": tr(entry.key, lang), **extra}
        if (
            entry.kind == "headers"
        ):  # the table shows its value's columns: an empty one, refilled by its next refresh
            import pandas as pd

            return {"value": pd.DataFrame(columns=headers(entry.extra, lang))}
        if entry.kind == "choices":
            return {"choices": choices(entry.key, entry.extra, lang)}
        if entry.kind == "placeholder":
            return {"placeholder": tr(entry.key, lang, **entry.extra)}
        return {"value": tr(entry.key, lang)}
