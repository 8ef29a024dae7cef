"""Private parts of torch that tunelab relies on (written for torch 2.13).

``tests/compat/test_torch.py`` checks each one against the installed torch.
"""

from __future__ import annotations

from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["TorchDispatchMode", "scale_scheduler_state", "set_last_lr", "tree_leaves"]

# torch 2.13 LRScheduler.state_dict(): the last rates get_last_lr() returns, and (SequentialLR,
# ChainedScheduler) the child schedulers' own state dicts.
_LAST_LR = "_last_lr"
_CHILDREN = "_schedulers"


def tree_leaves(tree: Any) -> list[Any]:
    """The leaves of nested args/kwargs/outputs, as a dispatch mode sees them.

    torch 2.13 has no public pytree module (``torch.utils._pytree`` is what ``TorchDispatchMode``
    users are pointed to); ``TorchDispatchMode`` itself lives only in
    ``torch.utils._python_dispatch`` and is re-exported here for the same reason.
    """
    return tree_flatten(tree)[0]


def set_last_lr(scheduler: Any, rates: list[float]) -> None:
    """Make ``scheduler.get_last_lr()`` report ``rates`` after changing the rates outside ``step()``.

    torch 2.13's ``LRScheduler.get_last_lr`` returns the private ``_last_lr`` that ``step()`` sets.
    """
    scheduler._last_lr = list(rates)


def scale_scheduler_state(state: dict[str, Any], factor: float) -> dict[str, Any]:
    """A scheduler ``state_dict()`` with its learning rates scaled (nested schedulers included).

    Written for torch 2.13's state layout: ``base_lrs``, the private ``_last_lr`` and, for
    SequentialLR / ChainedScheduler, the children's states under the private ``_schedulers``.
    """
    scaled = dict(state)
    for key in ("base_lrs", _LAST_LR):
        if isinstance(state.get(key), list):
            scaled[key] = [lr * factor for lr in state[key]]
    if isinstance(state.get(_CHILDREN), list):
        scaled[_CHILDREN] = [scale_scheduler_state(child, factor) for child in state[_CHILDREN]]
    return scaled
