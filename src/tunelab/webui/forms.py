"""Form fields generated from the config schema: one source for the CLI, YAML and the web UI.

Each UI field is named by its config key (``learning_rate``, or ``health.grad_norm_alarm`` for the
nested groups); its widget, choices, range, default and help text (en/zh) come from the schema field,
its short label from :mod:`tunelab.webui.i18n`. Values travel back as flat config keys, so the form,
``config.yaml`` and ``tunelab train key=value`` are the same thing.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tunelab.config.control import NESTED_GROUP_TYPES
from tunelab.config.fields import help_text
from tunelab.config.run_config import RunConfig
from tunelab.config.schema import GROUP_TYPES
from tunelab.errors import ConfigError

__all__ = [
    "NONE_CHOICE",
    "UNSET_PLACEHOLDER",
    "FieldSpec",
    "config_keys",
    "field_spec",
    "form_to_flat",
    "flat_to_form",
    "minimal_flat",
    "number_step",
    "optional_number",
    "to_cli_line",
    "to_yaml",
    "widget_value",
    "unset_choice_label",
]

Kind = Literal["choice", "bool", "int", "float", "list", "text", "mapping"]
NONE_CHOICE = "none"  # the dropdown entry that means "unset" for optional Literal fields


@dataclass(frozen=True)
class FieldSpec:
    """What the UI needs to know about one config key, read from the schema."""

    key: str
    model: type[BaseModel]
    name: str
    kind: Kind
    default: Any
    optional: bool
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False  # gt rather than ge: the minimum itself is not allowed

    def help(self, lang: str) -> str:
        """The schema's help text for this key."""
        return help_text(self.model, self.name, lang)

    def choice_labels(self) -> list[str]:
        """Dropdown entries (strings), with NONE_CHOICE first for optional fields."""
        labels = [str(c) for c in self.choices]
        return [NONE_CHOICE, *labels] if self.optional else labels


def _schema_index() -> dict[str, tuple[type[BaseModel], str]]:
    index: dict[str, tuple[type[BaseModel], str]] = {}
    for model in GROUP_TYPES.values():
        for name in model.model_fields:
            index[name] = (model, name)
    for group, model in NESTED_GROUP_TYPES.items():
        for name in model.model_fields:
            index[f"{group}.{name}"] = (model, name)
    return index


def config_keys() -> list[str]:
    """Every key the UI may show: flat keys, and dotted keys of the nested groups."""
    return list(_schema_index())


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(inner annotation, optional?) of ``X | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        return (args[0] if len(args) == 1 else annotation), optional
    return annotation, False


def _bounds(info: FieldInfo) -> tuple[float | None, float | None, bool]:
    low = high = None
    exclusive = False
    for meta in info.metadata:
        for attr in ("ge", "gt"):
            if getattr(meta, attr, None) is not None:
                low, exclusive = float(getattr(meta, attr)), attr == "gt"
        for attr in ("le", "lt"):
            if getattr(meta, attr, None) is not None:
                high = float(getattr(meta, attr))
    return low, high, exclusive


def _kind(inner: Any) -> tuple[Kind, tuple[Any, ...]]:
    origin = typing.get_origin(inner)
    if origin is Literal:
        return "choice", typing.get_args(inner)
    if origin is list:
        return "list", ()
    if origin is dict or isinstance(inner, type) and issubclass(inner, BaseModel):
        return "mapping", ()
    if inner is bool:
        return "bool", ()
    if inner is int:
        return "int", ()
    if inner is float:
        return "float", ()
    return "text", ()


def field_spec(key: str) -> FieldSpec:
    """The FieldSpec of config key ``key`` (KeyError for a key the schema does not have)."""
    model, name = _schema_index()[key]
    info = model.model_fields[name]
    inner, optional = _unwrap(info.annotation)
    kind, choices = _kind(inner)
    low, high, exclusive = _bounds(info)
    default = None if info.is_required() else info.get_default(call_default_factory=True)
    return FieldSpec(key, model, name, kind, default, optional, choices, low, high, exclusive)


# ---- values: widget <-> config ------------------------------------------------------------------


def widget_value(spec: FieldSpec, value: Any) -> Any:
    """The value a widget shows for config value ``value``."""
    if spec.kind == "choice":
        return NONE_CHOICE if value is None else str(value)
    if spec.kind == "list":
        return ", ".join(str(v) for v in value) if value else ""
    if spec.kind == "mapping":
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True).strip() if value else ""
    if spec.kind == "text" or _number_in_textbox(spec):
        return "" if value is None else str(value)
    return value


def _number_in_textbox(spec: FieldSpec) -> bool:
    """Optional numbers get a textbox: Gradio 6.31's number box draws None as 0 (even with a
    placeholder), which read as "alpha 0" next to help saying "unset = 2 x rank"."""
    return spec.optional and spec.kind in ("int", "float")


def optional_number(shown: Any, what: str) -> float | None:
    """The number typed in a box where empty means unset; ConfigError naming ``what`` for text."""
    if shown is None or str(shown).strip() == "":
        return None
    try:
        return float(shown)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{what}: {shown!r} is not a number",
            "type a number, or leave it empty",
            code="not_a_number",
            params={"what": what, "shown": repr(shown)},
        ) from None


def config_value(spec: FieldSpec, shown: Any) -> Any:
    """The config value of what a widget holds (None when the field is left unset)."""
    if spec.kind == "choice":
        if shown in (None, "") or (spec.optional and shown == NONE_CHOICE):
            return None
        for choice in spec.choices:
            if str(choice) == str(shown):
                return choice
        return shown  # left to the schema to reject, with its message
    if spec.kind == "list":
        if isinstance(shown, (list, tuple)):
            items = [str(v).strip() for v in shown if str(v).strip()]
        else:
            items = [p.strip() for p in str(shown or "").split(",") if p.strip()]
        return items or None
    if spec.kind == "mapping":
        return yaml.safe_load(shown) if isinstance(shown, str) and shown.strip() else None
    if spec.kind == "text":
        text = "" if shown is None else str(shown).strip()
        # an optional text key offered as a dropdown (resume_from_checkpoint) has a "none" entry too
        return None if spec.optional and text == NONE_CHOICE else text or None
    if spec.kind in ("int", "float"):
        if shown is None or str(shown).strip() == "":
            return None
        if isinstance(shown, str):  # an optional number's textbox; the schema rejects what is not a number
            try:
                shown = float(shown.strip())
            except ValueError:
                return shown.strip()
            if spec.kind == "int" and not shown.is_integer():
                return shown
        # for an optional key whose range excludes its minimum (max_samples > 0, lora_alpha > 0)
        # a 0 means "unset" (what Gradio's number box showed for an unset value)
        if spec.optional and spec.exclusive_minimum and float(shown) == spec.minimum:
            return None
        return int(shown) if spec.kind == "int" else float(shown)
    return bool(shown)


def form_to_flat(keys: Sequence[str], values: Sequence[Any]) -> dict[str, Any]:
    """Flat config keys (nested groups as mappings) from widget values; unset fields are omitted."""
    flat: dict[str, Any] = {}
    for key, shown in zip(keys, values, strict=True):
        spec = field_spec(key)
        value = config_value(spec, shown)
        if value is None and not (spec.optional and spec.default is not None):
            continue
        group, dot, name = key.partition(".")
        if dot:
            flat.setdefault(group, {})[name] = value
        else:
            flat[key] = value
    return flat


def flat_to_form(keys: Sequence[str], flat: dict[str, Any]) -> list[Any]:
    """Widget values for ``keys`` from a flat config (missing keys get the schema default)."""
    shown = []
    for key in keys:
        spec = field_spec(key)
        group, dot, name = key.partition(".")
        source = (flat.get(group) or {}) if dot else flat
        value = source.get(name if dot else key, spec.default)
        shown.append(widget_value(spec, value))
    return shown


def minimal_flat(config: RunConfig, *, keep: Iterable[str] = ()) -> dict[str, Any]:
    """The keys of ``config`` that differ from the schema defaults (plus ``keep``): a short YAML."""
    defaults = {}
    for key in config_keys():
        spec = field_spec(key)
        defaults[key] = spec.default
    full = config.to_flat()
    out: dict[str, Any] = {}
    keep = set(keep)
    for key, value in full.items():
        if key in NESTED_GROUP_TYPES:
            changed = {
                name: v for name, v in (value or {}).items() if _dumped(defaults.get(f"{key}.{name}")) != v
            }
            if changed:
                out[key] = changed
        elif key in keep or _dumped(defaults.get(key)) != value:
            out[key] = value
    return out


def _dumped(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def to_yaml(flat: dict[str, Any]) -> str:
    """YAML text of a flat config, key order kept."""
    return yaml.safe_dump(flat, sort_keys=False, allow_unicode=True)


def _scalar(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_cli_line(command: str, flat: dict[str, Any], config_path: str | None = None) -> str:
    """The equivalent command line: ``tunelab <command> [cfg.yaml] key=value ...`` (shell-quoted)."""
    import shlex

    parts = ["tunelab", *command.split()]
    if config_path:
        parts.append(config_path)
        return " ".join(shlex.quote(p) for p in parts)
    for key, value in flat.items():
        if isinstance(value, dict):
            parts.extend(f"{key}.{name}={_scalar(v)}" for name, v in value.items())
        else:
            parts.append(f"{key}={_scalar(value)}")
    return " ".join(shlex.quote(p) for p in parts)


# ---- widgets ------------------------------------------------------------------------------------

# what the box of an unset optional number shows (language-neutral)
UNSET_PLACEHOLDER = "—"
_LR_KEYS = {"learning_rate", "lr_end", "plateau_min_lr"}


def number_step(spec: FieldSpec) -> float:
    """How far one arrow key moves a number box: about a tenth of the key's usual magnitude.

    Gradio's default step is 1, so one key press turned a learning rate of 1e-4 into 1.
    """
    if spec.kind == "int":
        return 1
    default = spec.default if isinstance(spec.default, (int, float)) else None
    if default:
        return 10.0 ** (math.floor(math.log10(abs(default))) - 1)
    return 1e-6 if spec.name in _LR_KEYS else 0.01  # a zero default: ratios, decays, LR floors


def unset_choice_label(choices: Sequence[Any], lang: str) -> list[Any]:
    """Dropdown choices with the NONE_CHOICE entry labelled in ``lang`` (its value stays 'none')."""
    from tunelab.webui.i18n import tr

    label = tr("choice.unset", lang)
    return [
        (label, NONE_CHOICE) if c == NONE_CHOICE or c == (NONE_CHOICE, NONE_CHOICE) else c for c in choices
    ]


def build_field(key: str, lang: str, *, label: str, **overrides: Any) -> Any:
    """A Gradio widget for config key ``key``: kind, choices, range, default and help from the schema.

    ``overrides`` replace constructor arguments (e.g. ``choices`` of a dataset dropdown filled from
    dataset_info.json, or ``value``). The widget's ``elem_id`` is the key, so tests and users' CSS
    find it by the same name as the YAML.
    """
    import gradio as gr

    spec = field_spec(key)
    common: dict[str, Any] = {
        "label": label,
        "info": spec.help(lang),
        "elem_id": "field-" + key.replace(".", "-"),
        "value": widget_value(spec, spec.default),
    }
    multiselect = overrides.pop("multiselect", False)
    common.update(overrides)
    if spec.kind == "choice":
        return gr.Dropdown(
            choices=unset_choice_label(common.pop("choices", spec.choice_labels()), lang), **common
        )
    if spec.kind == "bool":
        return gr.Checkbox(**common)
    if _number_in_textbox(spec):
        common.setdefault("placeholder", UNSET_PLACEHOLDER)
        return gr.Textbox(**common)
    if spec.kind in ("int", "float"):
        common.setdefault("minimum", spec.minimum)
        common.setdefault("maximum", spec.maximum)
        common.setdefault("step", number_step(spec))
        if spec.kind == "int":
            common.setdefault("precision", 0)
        return gr.Number(**common)
    if multiselect or "choices" in common:
        value = common.pop("value")
        values = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        common.setdefault("allow_custom_value", True)
        return gr.Dropdown(
            multiselect=multiselect or None, value=values if multiselect else (value or None), **common
        )
    common.setdefault("lines", 3 if spec.kind == "mapping" else 1)
    return gr.Textbox(**common)
