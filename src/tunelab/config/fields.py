"""A field constructor that carries English and Chinese help beside each setting.

Every setting is documented once, here in the schema; CLI help, YAML examples and the web UI read
the texts back through :func:`help_text`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Group", "field", "help_text"]


def field(default: Any = ..., *, en: str, zh: str, **constraints: Any) -> Any:
    """Declare a config field with its help in English (``en``) and Chinese (``zh``)."""
    return Field(default, description=en, json_schema_extra={"zh": zh}, **constraints)


def help_text(model: type[BaseModel], name: str, lang: str = "en") -> str:
    """Return the help text of field ``name`` of ``model`` in ``lang`` ('en' or 'zh')."""
    info = model.model_fields[name]
    if lang == "zh":
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("zh"):
            return str(extra["zh"])
    return info.description or ""


class Group(BaseModel):
    """Base of every config group: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())
