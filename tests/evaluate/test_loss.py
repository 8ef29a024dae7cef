"""evaluate_loss: token-weighted, padding-independent, equal to the model's own loss."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from tunelab.data.collator import build_collator
from tunelab.evaluate.loss import evaluate_loss


def test_matches_model_loss_and_ignores_batching(tiny_model_dir: Path, tiny_tokenizer) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    texts = [
        "the learning rate sets the step size",
        "a short one",
        "batch size and accumulation steps multiply",
    ]
    rows = []
    for text in texts:
        ids = tiny_tokenizer.encode(text)
        rows.append({"input_ids": ids, "labels": [-100, -100] + ids[2:]})
    collator = build_collator(tiny_tokenizer, packing=False)
    one = evaluate_loss(model, rows, collator, batch_size=1)
    three = evaluate_loss(model, rows, collator, batch_size=3)  # padded batch: same figure
    assert one["loss"] == pytest.approx(three["loss"], rel=1e-5)
    total, n = 0.0, 0
    with torch.no_grad():
        for row in rows:
            out = model(input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]]))
            k = sum(1 for t in row["labels"][1:] if t != -100)
            total, n = total + out.loss.item() * k, n + k
    assert one["loss"] == pytest.approx(total / n, rel=1e-5)
    assert one["tokens"] == n and one["perplexity"] == pytest.approx(
        torch.tensor(total / n).exp().item(), rel=1e-5
    )
