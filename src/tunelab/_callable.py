"""Let a subpackage be called like the function it is named after: ``from tunelab import train; train(cfg)``.

``tunelab.train``, ``tunelab.evaluate`` and ``tunelab.export`` are subpackages *and* the verbs of the
Python API. Importing a submodule sets the package attribute to the module, which would replace any
function of the same name in ``tunelab/__init__.py``. So the module itself is made callable: calling
it imports the target function (lazily, so importing the package stays cheap) and calls it, while
``tunelab.train.train``, ``import tunelab.train.run`` and friends keep working unchanged.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__all__ = ["make_module_callable"]


class _CallableModule(types.ModuleType):
    """A module whose call forwards to ``__call_target__`` = (module name, function name)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module_name, function_name = self.__dict__["__call_target__"]
        return getattr(importlib.import_module(module_name), function_name)(*args, **kwargs)


def make_module_callable(module_name: str, target_module: str, target_name: str) -> None:
    """Make ``sys.modules[module_name]`` callable as ``target_module.target_name``."""
    module = sys.modules[module_name]
    module.__call_target__ = (target_module, target_name)  # type: ignore[attr-defined]
    module.__class__ = _CallableModule
