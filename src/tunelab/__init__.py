"""tunelab: fine-tune language models with hyperparameters chosen from evidence.

Python API (each name is imported on first use, so ``import tunelab`` stays light)::

    from tunelab import train, evaluate, chat_engine
    from tunelab import advise, estimate, find_batch, lr_find
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = [
    "__version__",
    "advise",
    "chat_engine",
    "estimate",
    "evaluate",
    "export",
    "find_batch",
    "lr_find",
    "train",
]

# name -> (module, attribute or None for the callable subpackage itself)
_API: dict[str, tuple[str, str | None]] = {
    "train": ("tunelab.train", None),
    "evaluate": ("tunelab.evaluate", None),
    "export": ("tunelab.export", None),
    "chat_engine": ("tunelab.infer.engine", "chat_engine"),
    "advise": ("tunelab.tune.advise", "advise"),
    "estimate": ("tunelab.tune.estimate", "estimate"),
    "find_batch": ("tunelab.tune.find_batch", "find_batch"),
    "lr_find": ("tunelab.tune.lr_find", "lr_find"),
}


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'tunelab' has no attribute {name!r}")
    module_name, attribute = _API[name]
    module = importlib.import_module(module_name)
    return module if attribute is None else getattr(module, attribute)
