"""One error hierarchy: every error a user can cause says what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ConfigError", "DataError", "ModelError", "ResourceError", "TunelabError"]


class TunelabError(Exception):
    """Base of all tunelab errors: a message naming the input, and a hint naming the fix.

    ``code`` and ``params`` name the message for other languages: :mod:`tunelab.error_texts` renders
    a known code in Chinese from the same parameters (the English text stays the one given here).
    ``problems`` holds the (where, error) rows of an error that lists several problems (a config report).
    """

    def __init__(
        self,
        message: str,
        hint: str = "",
        *,
        code: str = "",
        params: Mapping[str, Any] | None = None,
        problems: Sequence[tuple[str, TunelabError]] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code
        self.params = dict(params or {})
        self.problems = list(problems)

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(TunelabError):
    """A config file, key or value is wrong."""


class DataError(TunelabError):
    """A dataset, file or record is missing or malformed."""


class ModelError(TunelabError):
    """A model, tokenizer or adapter cannot be loaded or built."""


class ResourceError(TunelabError):
    """The machine lacks what the run needs (memory, a GPU, an optional package)."""
