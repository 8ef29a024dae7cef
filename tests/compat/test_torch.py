"""The torch private parts behind tunelab.compat.torch still exist and behave as tunelab uses them."""

from __future__ import annotations

import pytest
import torch
from torch.optim.lr_scheduler import ConstantLR, LambdaLR, SequentialLR

from tunelab.compat.torch import TorchDispatchMode, scale_scheduler_state, set_last_lr, tree_leaves


def _sgd(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_set_last_lr_is_what_get_last_lr_reports() -> None:
    scheduler = LambdaLR(_sgd(), lambda step: 1.0)
    set_last_lr(scheduler, [0.025])
    assert scheduler.get_last_lr() == [0.025]
    assert scheduler.state_dict()["_last_lr"] == [0.025]


def test_scaled_state_scales_the_running_schedule() -> None:
    optimizer = _sgd()
    scheduler = LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    optimizer.step()
    scheduler.step()
    scheduler.load_state_dict(scale_scheduler_state(scheduler.state_dict(), 0.5))
    assert scheduler.get_last_lr() == pytest.approx([0.025])
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05 / 3)  # base 0.05 x 1/3


def test_nested_schedulers_keep_their_states_under_the_key_we_scale() -> None:
    optimizer = _sgd()
    scheduler = SequentialLR(
        optimizer, [ConstantLR(optimizer, factor=1.0, total_iters=1), LambdaLR(optimizer, lambda s: 1.0)], [1]
    )
    state = scheduler.state_dict()
    assert isinstance(state["_schedulers"], list) and len(state["_schedulers"]) == 2
    scaled = scale_scheduler_state(state, 0.5)
    assert [child["base_lrs"] for child in scaled["_schedulers"]] == [[0.05], [0.05]]


def test_dispatch_mode_sees_every_op_and_tree_leaves_flattens_its_arguments() -> None:
    seen: list[tuple[str, int]] = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            leaves = tree_leaves((args, kwargs or {}))
            seen.append((func.__name__, sum(isinstance(leaf, torch.Tensor) for leaf in leaves)))
            return func(*args, **(kwargs or {}))

    with Recorder():
        torch.ones(2).add(torch.ones(2))
    assert ("add.Tensor", 2) in seen  # the op and both tensor arguments
    assert tree_leaves({"a": [1, (2, 3)], "b": None}) == [1, 2, 3, None]
