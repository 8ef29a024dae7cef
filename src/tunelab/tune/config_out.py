"""Write a config that `tunelab train` accepts: the user's keys, changed values, one comment per change.

The user's own file stays recognisable (its keys in its order, untouched values as they were); the
keys a command changed or added carry a comment saying why. The written file is loaded back with
`tunelab.config.load_config`, so an answer that would not train is never left on disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tunelab.errors import ConfigError

__all__ = ["read_user_config", "write_config"]


def read_user_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """The keys the user wrote (file, then ``key=value`` overrides), without defaults filled in."""
    from tunelab.config import parse_overrides

    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            values.update(loaded)
    for key, value in parse_overrides(list(overrides)).items():
        if isinstance(value, dict) and isinstance(values.get(key), dict):
            values[key] = {**values[key], **value}
        else:
            values[key] = value
    return values


def _dump_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False).strip()
    return text.removesuffix("...").strip()


def write_config(
    path: str | Path,
    base: dict[str, Any],
    updates: dict[str, Any],
    comments: dict[str, str] | None = None,
    *,
    header: str = "",
) -> Path:
    """Write ``base`` with ``updates`` applied to ``path`` (comments beside changed keys) and validate it.

    Nested groups (``early_stopping``) are merged key by key. Raises ConfigError, and leaves no file,
    when the result would not load.
    """
    from tunelab.config import load_config

    comments = comments or {}
    merged: dict[str, Any] = dict(base)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    for key, value in merged.items():
        note = f"  # {comments[key]}" if key in comments else ""
        if isinstance(value, dict):
            lines.append(f"{key}:{note}")
            lines.extend(f"  {sub}: {_dump_value(item)}" for sub, item in value.items())
        else:
            lines.append(f"{key}: {_dump_value(value)}{note}")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    try:
        load_config(tmp)
    except ConfigError as err:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"the config to write to {out} would not load: {err.message}", err.hint) from None
    tmp.replace(out)
    return out
