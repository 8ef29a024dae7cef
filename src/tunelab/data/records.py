"""The one internal record type every dataset format is converted into.

A record is a plain dict (cheap to store in a ``datasets.Dataset``) with these keys:

- ``messages``: list of ``{"role": ROLE, "content": str}`` in order, roles from :data:`ROLES`;
  for sft the last message is the assistant's response. Empty for pure pre-training text.
- ``system``: system prompt or ``""``.
- ``tools``: JSON string of tool definitions or ``""``.
- ``text``: raw text for pre-training (``pt``), else ``""``.
- ``chosen`` / ``rejected``: assistant responses for pairwise stages (rm, dpo), else ``None``.
- ``kto_tag``: True (desirable) / False (undesirable) for kto, else ``None``.
- ``label``: class label (str) for cls, else ``None``.
- ``source``: ``"<dataset name>#<record index>"`` so later errors can point at the input.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ROLES", "new_record"]

ROLES = ("system", "user", "assistant", "function", "observation")


def new_record(
    *,
    messages: list[dict[str, str]] | None = None,
    system: str = "",
    tools: str = "",
    text: str = "",
    chosen: str | None = None,
    rejected: str | None = None,
    kto_tag: bool | None = None,
    label: str | None = None,
    source: str = "",
) -> dict[str, Any]:
    """Return a record with every key present, so all records of a dataset share one schema."""
    return {
        "messages": messages or [],
        "system": system,
        "tools": tools,
        "text": text,
        "chosen": chosen,
        "rejected": rejected,
        "kto_tag": kto_tag,
        "label": label,
        "source": source,
    }
