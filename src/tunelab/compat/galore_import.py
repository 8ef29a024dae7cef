"""Import the 32-bit GaLore/APOLLO optimizers without bitsandbytes.

galore-torch 1.0 and apollo-torch 1.0.x import their 8-bit optimizers (and so bitsandbytes, which
needs a CUDA build to be useful) in their package ``__init__``, although the 32-bit optimizers never
touch it. Where bitsandbytes is missing, the package is registered without running that
``__init__`` and only the wanted submodule is imported. Unneeded once the packages import their
8-bit classes lazily (not the case in galore-torch 1.0 / apollo-torch 1.0.3).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

from tunelab.errors import ResourceError

__all__ = ["import_optimizer_class"]


def import_optimizer_class(package: str, module: str, name: str, *, pip_name: str) -> Any:
    """``package.module.name``, importing ``package``'s __init__ only when bitsandbytes is there."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:
        raise ResourceError(
            f"the {pip_name} package is not installed",
            f"run `pip install --no-deps {pip_name}` (or `pip install 'tunelab[optimizers]'`), "
            "or remove the option to train with optim=adamw_torch",
        )
    if package not in sys.modules and importlib.util.find_spec("bitsandbytes") is None:
        stub = types.ModuleType(package)
        stub.__path__ = list(spec.submodule_search_locations)
        stub.__spec__ = spec
        sys.modules[package] = stub
    return getattr(importlib.import_module(f"{package}.{module}"), name)
