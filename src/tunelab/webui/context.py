"""What every tab shares: the language widget, the config form, the job manager and the path guard."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig, config_from_dict
from tunelab.errors import TunelabError
from tunelab.webui.forms import form_to_flat
from tunelab.webui.i18n import Translator, field_label, tr
from tunelab.webui.jobs import JobManager
from tunelab.webui.paths import PathGuard

__all__ = ["UIContext", "error_html", "message_html", "table_cell"]


def table_cell(value: Any) -> str:
    """A value as a table shows it: floats to 4 significant digits, None as an empty cell."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def message_html(text: str, kind: str = "info", *, code: str = "") -> str:
    """A coloured status box (kind: info, ok, warn, error); ``code`` (a command line) follows as <code>,
    which is not translated."""
    shown = html.escape(text).replace(chr(10), "<br>")
    if code:
        shown += f" <code>{html.escape(code)}</code>"
    return f"<div class='tl-msg tl-{kind}'>{shown}</div>"


def error_html(exc: TunelabError, lang: str) -> str:
    """A tunelab error as the UI shows it, in ``lang`` (see tunelab.error_texts): the message, then the fix."""
    from tunelab.error_texts import render_error

    message, hint = render_error(exc, lang)
    text = message + (f"\n{tr('hint', lang)}: {hint}" if hint else "")
    return message_html(text, "error")


@dataclass
class UIContext:
    """Shared state of one web UI app (one per create_app call)."""

    runs_dir: Path
    state_dir: Path
    jobs: JobManager
    guard: PathGuard
    translator: Translator = field(default_factory=Translator)
    lang: Any = None  # the language Dropdown
    default_lang: str = "en"
    # the config form: key -> widget, in the order handlers receive their values
    fields: dict[str, Any] = field(default_factory=dict)
    # widgets outside the schema that change the config (the booster checkboxes)
    extra_inputs: list[Any] = field(default_factory=list)
    extras: Any = None  # gr.State: keys of a loaded config that the form does not show

    # ---- the form --------------------------------------------------------------------------------
    def add_field(self, key: str, component: Any) -> Any:
        """Register a config widget: part of the form, relabelled on a language switch."""
        self.fields[key] = component
        self.translator.field(component, key)
        return component

    def field(self, key: str, lang: str | None = None, **overrides: Any) -> Any:
        """Build (from the schema) and register the widget of config key ``key``."""
        from tunelab.webui.forms import build_field

        lang = lang or self.default_lang
        return self.add_field(key, build_field(key, lang, label=field_label(key, lang), **overrides))

    def widget(self, key: str, lang: str | None = None, **overrides: Any) -> Any:
        """A schema-generated widget outside the training form (chat, evaluate, export settings)."""
        from tunelab.webui.forms import build_field

        lang = lang or self.default_lang
        component = build_field(key, lang, label=field_label(key, lang), **overrides)
        self.translator.field(component, key)
        return component

    @property
    def form_keys(self) -> list[str]:
        return list(self.fields)

    @property
    def form_inputs(self) -> list[Any]:
        """Inputs of a handler that needs the whole config: fields, extra widgets, loaded extras."""
        return [*self.fields.values(), *self.extra_inputs, self.extras]

    def form_flat(self, values: tuple[Any, ...] | list[Any]) -> dict[str, Any]:
        """Flat config from a handler's ``*values`` (as passed for ``form_inputs``)."""
        n = len(self.fields)
        flat = form_to_flat(self.form_keys, list(values[:n]))
        boosters = list(values[n : n + len(self.extra_inputs)])
        extras = values[n + len(self.extra_inputs)] if len(values) > n + len(self.extra_inputs) else None
        from tunelab.webui.topbar import apply_boosters

        apply_boosters(flat, boosters)
        merged = {**(extras or {}), **flat}
        return merged

    def form_config(self, values: tuple[Any, ...] | list[Any]) -> tuple[dict[str, Any], RunConfig]:
        """(flat, validated RunConfig) of the form; ConfigError names the key and the fix."""
        flat = self.form_flat(values)
        self.guard.check_config(flat)
        return flat, config_from_dict(flat, source="web UI form")
