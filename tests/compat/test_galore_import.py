"""The 32-bit GaLore/APOLLO optimizers import without bitsandbytes; a missing package is named."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tunelab.compat.galore_import import import_optimizer_class
from tunelab.errors import ResourceError


@pytest.mark.skipif(importlib.util.find_spec("galore_torch") is None, reason="galore-torch not installed")
def test_galore_adamw_imports_and_is_an_optimizer() -> None:
    cls = import_optimizer_class("galore_torch", "adamw", "AdamW", pip_name="galore-torch")
    assert issubclass(cls, torch.optim.Optimizer)


def test_missing_package_is_a_resource_error() -> None:
    with pytest.raises(ResourceError, match="the not-a-pkg package is not installed") as info:
        import_optimizer_class("not_a_pkg_tunelab", "adamw", "AdamW", pip_name="not-a-pkg")
    assert "pip install --no-deps not-a-pkg" in info.value.hint
