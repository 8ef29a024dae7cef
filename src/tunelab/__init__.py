"""tunelab: fine-tune language models with hyperparameters chosen from evidence."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
