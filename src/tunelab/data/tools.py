"""Tool definitions (function calling) rendered into the system prompt, in the formats models know."""

from __future__ import annotations

import json
from typing import Any

from tunelab.errors import ConfigError, DataError

__all__ = ["TOOL_FORMATS", "check_tool_format", "parse_tools", "render_tools"]

TOOL_FORMATS = ("default", "qwen")


def parse_tools(tools: str) -> list[Any]:
    """The tool definitions of a record as a list (a single JSON object becomes a one-item list)."""
    try:
        parsed = json.loads(tools)
    except json.JSONDecodeError as err:
        raise DataError(
            f"tools is not valid JSON ({err.msg} at char {err.pos})", "store tools as a JSON list"
        ) from err
    return parsed if isinstance(parsed, list) else [parsed]


def render_tools(tools: str, tool_format: str = "default") -> str:
    """Return the text appended to the system prompt for the JSON tool definitions ``tools`` ('' if none)."""
    check_tool_format(tool_format)
    if not tools:
        return ""
    items = parse_tools(tools)
    if tool_format == "qwen":
        # The wording Qwen2.5 models were trained with, so their tool use keeps working after tuning.
        lines = "\n".join(
            json.dumps(t if "type" in t else {"type": "function", "function": t}, ensure_ascii=False)
            for t in items
        )
        return (
            "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
            "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            f"{lines}\n</tools>\n\nFor each function call, return a json object with function name and "
            "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
            '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
        )
    return (  # default
        "\n\nYou can call these tools (JSON schema):\n"
        + json.dumps(items, ensure_ascii=False)
        + '\nTo call a tool, answer with a JSON object {"name": <tool name>, "arguments": <JSON object>}.'
    )


def check_tool_format(tool_format: str) -> None:
    """Raise ConfigError naming the choices when ``tool_format`` is unknown."""
    if tool_format not in TOOL_FORMATS:
        raise ConfigError(f"tool_format: unknown value {tool_format!r}", f"use one of: {TOOL_FORMATS}")
