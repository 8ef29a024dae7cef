"""Read a YAML config plus ``key=value`` overrides into a RunConfig, with errors that name the fix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tunelab.config.control import NESTED_GROUP_TYPES
from tunelab.config.lf_defaults import lf_default_notes
from tunelab.config.run_config import KEY_TO_GROUP, RunConfig
from tunelab.config.schema import GROUP_TYPES
from tunelab.config.validate import validate
from tunelab.errors import ConfigError

__all__ = ["config_from_dict", "dump_config", "load_config", "parse_overrides", "read_config_values"]


def _key_lines(text: str) -> dict[str, int]:
    """Map each top-level key of a YAML document to its 1-based line number."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


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


# the name callers used before validate() existed: flat keys -> RunConfig, every problem at once
config_from_dict = validate


def read_config_values(
    path: str | Path | None, overrides: Sequence[str] = ()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(merged values, keyword arguments for :func:`validate`: source, lines, cli_keys, base_dir)."""
    values: dict[str, Any] = {}
    lines: dict[str, int] = {}
    source, base_dir = "command line", None
    if path is not None:
        p = Path(path)
        source, base_dir = str(p), p.parent
        values, lines = _read_yaml(p)
    cli = parse_overrides(overrides)
    where = {"source": source, "lines": lines, "cli_keys": set(cli), "base_dir": base_dir}
    return _merge(values, cli), where


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> RunConfig:
    """Load a YAML file (or nothing) and apply ``key=value`` overrides; validate once."""
    values, where = read_config_values(path, overrides)
    return validate(values, **where)


def _read_yaml(p: Path) -> tuple[dict[str, Any], dict[str, int]]:
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
    return loaded, _key_lines(text)


def dump_config(config: RunConfig) -> str:
    """YAML text of the resolved config, every default filled, grouped with comment headers.

    A value left at a tunelab default that LLaMA-Factory sets differently carries a trailing
    ``# LLaMA-Factory default: X`` comment, so a migrating user sees what behaves differently.
    """
    chunks = []
    for group in GROUP_TYPES:
        args = getattr(config, group)
        part = args.model_dump(mode="json")
        notes = lf_default_notes(part, set(args.model_fields_set))
        lines = [_dump_key(key, value, notes.get(key)) for key, value in part.items()]
        chunks.append(f"### {group}\n" + "".join(lines))
    for group in NESTED_GROUP_TYPES:
        part = {group: getattr(config, group).model_dump(mode="json")}
        chunks.append(f"### {group}\n" + yaml.safe_dump(part, sort_keys=False, allow_unicode=True))
    return "\n".join(chunks)


def _dump_key(key: str, value: Any, note: str | None) -> str:
    text = yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True)
    if note is None:
        return text
    first, sep, rest = text.partition("\n")
    return f"{first}  # {note}{sep}{rest}"
