"""Read and replace the part of a raw row that augmentation rewrites: the prompt, or the text.

Working on raw rows (not records) lets an augmented copy be written in the user's own format with
every other column untouched: alpaca's ``instruction``, the last user turn of a sharegpt/openai
conversation, the ``text`` column of pre-training and classification data.
"""

from __future__ import annotations

import copy
from typing import Any

from tunelab.data.registry import DatasetAttr

__all__ = ["row_prompt", "with_prompt"]


def _last_user_turn(row: dict[str, Any], attr: DatasetAttr) -> dict[str, Any] | None:
    role, user = attr.tag("role_tag"), attr.tag("user_tag")
    turns = [
        m for m in row.get(attr.column("messages") or "", []) if isinstance(m, dict) and m.get(role) == user
    ]
    return turns[-1] if turns else None


def row_prompt(row: dict[str, Any], attr: DatasetAttr) -> str:
    """The text augmentation rewrites in ``row`` ("" when the row has none)."""
    if attr.formatting in ("sharegpt", "openai"):
        turn = _last_user_turn(row, attr)
        return str(turn[attr.tag("content_tag")]) if turn else ""
    return str(row.get(attr.column("prompt") or "text") or "")


def with_prompt(row: dict[str, Any], attr: DatasetAttr, text: str, **origin: Any) -> dict[str, Any]:
    """A copy of ``row`` with its prompt (or text) replaced by ``text`` and ``origin`` columns added."""
    new = copy.deepcopy(row)
    if attr.formatting in ("sharegpt", "openai"):
        turn = _last_user_turn(new, attr)
        if turn is not None:
            turn[attr.tag("content_tag")] = text
    else:
        new[attr.column("prompt") or "text"] = text
    new.update(origin)
    return new
