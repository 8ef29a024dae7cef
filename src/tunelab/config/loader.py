"""Read a YAML config plus ``key=value`` overrides into a RunConfig, with errors that name the fix."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tunelab.config.control import NESTED_GROUP_TYPES
from tunelab.config.run_config import KEY_TO_GROUP, RunConfig, nested_keys
from tunelab.config.schema import GROUP_TYPES
from tunelab.errors import ConfigError

__all__ = ["config_from_dict", "dump_config", "load_config", "parse_overrides"]


def _key_lines(text: str) -> dict[str, int]:
    """Map each top-level key of a YAML document to its 1-based line number."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


def _where(source: str, lines: dict[str, int], key: str) -> str:
    line = lines.get(key)
    return f"{source} line {line}" if line else source


def _suggest(key: str) -> str:
    candidates = nested_keys() if "." in key else list(KEY_TO_GROUP)
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else "see `tunelab train --help-keys` for all keys"


def _is_text_field(key: str) -> bool:
    group = KEY_TO_GROUP.get(key)
    if group is None or group in NESTED_GROUP_TYPES:
        return False
    annotation = str(GROUP_TYPES[group].model_fields[key].annotation)
    return "str" in annotation and "int" not in annotation and "float" not in annotation


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are read as YAML scalars (numbers, bools, lists, null)."""
    parsed: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"override {item!r} is not of the form key=value",
                "write overrides like learning_rate=5e-5 lora_rank=16",
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        group, dot, name = key.partition(".")
        if dot:  # health.grad_norm_alarm=5 -> {"health": {"grad_norm_alarm": 5}}
            parsed.setdefault(group, {})[name] = value
            continue
        # YAML reads output_dir=2024 as a number; a text field keeps what the user typed.
        parsed[key] = raw if _is_text_field(key) and isinstance(value, (int, float)) else value
    return parsed


def _merge(values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Apply overrides; a nested group's override changes only the keys it names."""
    merged = dict(values)
    for key, value in overrides.items():
        if key in NESTED_GROUP_TYPES and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def config_from_dict(
    values: dict[str, Any], *, source: str = "config", lines: dict[str, int] | None = None
) -> RunConfig:
    """Validate flat keys into a RunConfig; report every problem at once with location and fix."""
    lines = lines or {}
    unknown = [k for k in values if k not in KEY_TO_GROUP]
    if unknown:
        detail = "\n".join(
            f"  {_where(source, lines, k)}: unknown key '{k}' — {_suggest(k)}" for k in unknown
        )
        raise ConfigError(
            f"{len(unknown)} unknown key(s) in {source}:\n{detail}",
            "fix the spelling or remove the key; `tunelab train --help-keys` lists every key",
        )
    if "model_name_or_path" not in values or values["model_name_or_path"] in (None, ""):
        raise ConfigError(
            f"{source}: model_name_or_path is required",
            "set it to a local model directory, a .gguf file, 'smollm2' or 'tiny:llama'",
        )
    try:
        return RunConfig.from_flat(values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, values, source, lines), _hint(exc)) from None


def _describe(exc: ValidationError, values: dict[str, Any], source: str, lines: dict[str, int]) -> str:
    rows = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        msg = err["msg"].removeprefix("Value error, ")
        if loc and loc[0] in NESTED_GROUP_TYPES and len(loc) > 1:
            dotted, nested = f"{loc[0]}.{loc[1]}", values.get(loc[0]) or {}
            if err["type"] == "extra_forbidden":
                msg = f"unknown key — {_suggest(dotted)}"
            rows.append(f"  {_where(source, lines, loc[0])}: {dotted}={nested.get(loc[1])!r}: {msg}")
            continue
        key = next((p for p in loc if p in KEY_TO_GROUP), None)
        if key is None:  # a rule across groups, or a group-level rule
            rows.append(f"  {source}: {msg}")
            continue
        value = values.get(key)
        rows.append(f"  {_where(source, lines, key)}: {key}={value!r}: {msg}")
    return f"invalid config {source}:\n" + "\n".join(rows)


def _hint(exc: ValidationError) -> str:
    first = exc.errors()[0]
    ctx = first.get("ctx") or {}
    if "expected" in ctx:
        return f"allowed values: {ctx['expected']}"
    for bound, word in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if bound in ctx:
            return f"use a value {word} {ctx[bound]}"
    return "see `tunelab train --help-keys` for each key's meaning and range"


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> RunConfig:
    """Load a YAML file (or nothing) and apply ``key=value`` overrides; validate once."""
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    source = "command line"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(
                f"config file {p} does not exist", "check the path, e.g. examples/sft_lora_tiny.yaml"
            )
        text = p.read_text(encoding="utf-8")
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(
                f"{p}{where}: not valid YAML ({getattr(exc, 'problem', exc)})",
                "check indentation and that each entry is `key: value`",
            ) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"{p}: expected a mapping of key: value, got {type(loaded).__name__}",
                "write one `key: value` per line",
            )
        values.update(loaded)
        lines = _key_lines(text)
    cli = parse_overrides(overrides)
    for key in cli:
        lines.pop(key, None)
    return config_from_dict(_merge(values, cli), source=source, lines=lines)


def dump_config(config: RunConfig) -> str:
    """YAML text of the resolved config, every default filled, grouped with comment headers."""
    chunks = []
    for group in GROUP_TYPES:
        part = getattr(config, group).model_dump(mode="json")
        chunks.append(f"### {group}\n" + yaml.safe_dump(part, sort_keys=False, allow_unicode=True))
    for group in NESTED_GROUP_TYPES:
        part = {group: getattr(config, group).model_dump(mode="json")}
        chunks.append(f"### {group}\n" + yaml.safe_dump(part, sort_keys=False, allow_unicode=True))
    return "\n".join(chunks)
