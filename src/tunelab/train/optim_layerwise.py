"""Layer-wise updates (``galore_layerwise`` / ``apollo_layerwise``): each weight steps during backward.

One optimizer per parameter steps as soon as that parameter's gradient is complete (a
post-accumulate-grad hook) and frees the gradient, so the gradients of the whole model never exist
at once: the memory GaLore/APOLLO save on optimizer states is then not spent on gradients. The
Trainer sees one optimizer whose ``step``/``zero_grad`` do nothing and whose ``param_groups`` are
the per-parameter optimizers' own group dicts, so the learning-rate schedule still reaches them.
Consequences, as in LLaMA-Factory: gradient accumulation is impossible (each micro-batch steps), and
gradient clipping cannot apply (no global norm exists before the steps), so the run does not clip;
the gradient norm is still measured, summed over the hooks, and logged as ``grad_norm``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["LayerwiseOptimizer"]


class LayerwiseOptimizer(torch.optim.Optimizer):
    """Steps ``make_optimizer([param])`` for each parameter inside the backward pass."""

    def __init__(
        self,
        groups: list[dict[str, Any]],
        make_optimizer: Callable[[list[dict[str, Any]]], torch.optim.Optimizer],
    ) -> None:
        self.per_param: dict[torch.nn.Parameter, torch.optim.Optimizer] = {}
        for group in groups:
            for param in group["params"]:
                self.per_param[param] = make_optimizer([{**group, "params": [param]}])
        own_groups = [g for optimizer in self.per_param.values() for g in optimizer.param_groups]
        super().__init__(own_groups, {})
        self.param_groups = own_groups  # the dicts the per-parameter optimizers read
        self._handles = [p.register_post_accumulate_grad_hook(self._step_one) for p in self.per_param]
        self._squared_norm = 0.0
        self.last_grad_norm: float | None = None  # of the last backward pass, for the log

    def _step_one(self, param: torch.Tensor) -> None:
        self._squared_norm += float(param.grad.detach().float().pow(2).sum())
        optimizer = self.per_param[param]
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def step(self, closure: Any = None) -> Any:
        """Every parameter already stepped during backward; record that pass's gradient norm."""
        loss = closure() if closure is not None else None
        self.last_grad_norm, self._squared_norm = self._squared_norm**0.5, 0.0
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass  # gradients were freed right after each step

    def state_dict(self) -> dict[str, Any]:
        return {"per_param": [optimizer.state_dict() for optimizer in self.per_param.values()]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for optimizer, state in zip(self.per_param.values(), state_dict["per_param"], strict=True):
            optimizer.load_state_dict(state)
