"""The sft Trainer for ``use_asft_loss``: every step also runs the reference (starting) model.

ASFT's KL anchor needs the reference model's next-token distribution of the very batch being trained
(train/losses.py), which the Trainer's ``compute_loss_func`` hook does not receive, so
``compute_loss`` (the Trainer's documented override point) is replaced here; the plain sft path is
untouched. The reference is the model with its adapter disabled when the adapter starts at zero
effect (a fresh LoRA/OFT adapter), else a frozen copy of the model taken before the first step
(twice the weights' memory, as with LLaMA-Factory's separate reference model).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import torch

from tunelab.train.losses import asft_loss
from tunelab.train.trainer import TunelabTrainer

__all__ = ["AnchoredSFTTrainer", "frozen_reference"]


def frozen_reference(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen evaluation-mode copy of ``model`` as it is now."""
    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference


class AnchoredSFTTrainer(TunelabTrainer):
    """TunelabTrainer whose loss is ASFT: DFT + ``asft_alpha`` x KL(reference || model).

    ``reference=None``: the trained model with its adapter disabled is the reference.
    """

    def __init__(
        self, *args: Any, asft_alpha: float, reference: torch.nn.Module | None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.asft_alpha = asft_alpha
        self.reference = reference

    def _reference_logits(self, model: torch.nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        with torch.no_grad():
            if self.reference is not None:
                return self.reference(**inputs).logits
            unwrapped = self.accelerator.unwrap_model(model)
            disabled = (
                unwrapped.disable_adapter()
                if hasattr(unwrapped, "disable_adapter")
                else contextlib.nullcontext()
            )
            with disabled:
                return model(**inputs).logits

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        ref_logits = self._reference_logits(model, inputs)
        outputs = model(**inputs)
        loss = asft_loss(outputs.logits, ref_logits, labels, num_items_in_batch, alpha=self.asft_alpha)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            loss = loss * self.accelerator.num_processes  # as the Trainer does for token-averaged losses
        return (loss, outputs) if return_outputs else loss
