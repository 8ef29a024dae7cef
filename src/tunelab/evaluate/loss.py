"""Token-weighted mean loss over a tokenized dataset (the number behind eval_loss and perplexity)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

__all__ = ["evaluate_loss"]


@torch.inference_mode()
def evaluate_loss(model: Any, dataset: Any, collator: Callable, *, batch_size: int = 8) -> dict[str, float]:
    """Mean cross-entropy over all learned (label != -100) tokens, and its perplexity.

    Weighting by tokens, not by batch, makes the figure independent of batch size and padding.
    """
    model.eval()
    device = next(model.parameters()).device
    total_loss, total_tokens = 0.0, 0
    rows = [dataset[i] for i in range(len(dataset))]
    for start in range(0, len(rows), batch_size):
        batch = collator(rows[start : start + batch_size])
        # non-tensor entries matter too: packed batches carry use_cache=False to keep samples apart
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        labels = batch.pop("labels")
        logits = model(**batch).logits.float()
        shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
        mask = shift_labels != -100
        loss = torch.nn.functional.cross_entropy(shift_logits[mask], shift_labels[mask], reduction="sum")
        total_loss += float(loss)
        total_tokens += int(mask.sum())
    mean = total_loss / max(total_tokens, 1)
    return {"loss": mean, "perplexity": math.exp(min(mean, 50.0)), "tokens": float(total_tokens)}
