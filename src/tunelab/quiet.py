"""Keep library chatter (weight-loading bars, tokenizing bars, deprecation notices) off the console.

tunelab prints its own progress and summaries; the libraries' bars interleave with it and bury
them. Errors and warnings that matter still come through as exceptions or our own messages.
"""

from __future__ import annotations

import warnings

__all__ = ["quiet_libraries"]


def quiet_libraries() -> None:
    """Silence transformers/datasets progress bars and info logs; hide their FutureWarnings."""
    import datasets
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|trl)\b.*")
