"""Per-record scores from the model itself: answer loss with and without the prompt, token counts.

IFD (instruction-following difficulty, Li et al. 2023, "From Quantity to Quality"): the loss of the
answer given the prompt divided by the loss of the answer alone. Near 1 the prompt does not help
the model predict the answer (the pair teaches little about following instructions); low values
mean the answer follows from the prompt almost by itself (easy); above 1 the prompt even hurts,
which the paper treats as noise. Losses are mean cross-entropy over the answer's tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["SCORERS", "encode_for_scoring", "sequence_losses"]

SCORERS = ("ifd", "perplexity", "length")


def encode_for_scoring(
    record: dict[str, Any], tokenizer: Any, template: Any, stage: str
) -> tuple[list[int], int, list[int]]:
    """(whole sequence ids, where the scored part starts, the scored part alone as the model would see it).

    sft: the conversation, its last response, and that response after BOS only; pt: the text, 0,
    the text (scored whole either way).
    """
    if stage == "pt":
        ids = tokenizer(record.get("text") or "", add_special_tokens=True)["input_ids"]
        return ids, 1 if template.adds_bos else 0, ids
    turns = template.encode_turns(
        tokenizer, record["messages"], record.get("system") or "", record.get("tools") or ""
    )
    ids = [i for p, r in turns for i in p + r]
    answer = list(turns[-1][1])
    bos = [tokenizer.bos_token_id] if template.adds_bos and tokenizer.bos_token_id is not None else []
    return ids, len(ids) - len(answer), bos + answer


def sequence_losses(
    model: Any,
    sequences: Sequence[tuple[list[int], int]],
    *,
    pad_id: int,
    batch_size: int = 8,
    max_len: int | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[float]:
    """Mean next-token cross-entropy of each sequence over its tokens from ``start`` on (``(ids, start)``).

    Sequences are cut to ``max_len`` from the left-most token; a sequence with nothing left to score
    gets NaN. ``on_batch(n)`` is called after each batch (progress, interruption tests).
    """
    import torch

    device = next(model.parameters()).device
    model.eval()
    out: list[float] = []
    for first in range(0, len(sequences), batch_size):
        chunk = [
            (ids[:max_len] if max_len else ids, start) for ids, start in sequences[first : first + batch_size]
        ]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (ids, start) in enumerate(chunk):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
            labels[row, max(start, 1) : len(ids)] = torch.tensor(ids[max(start, 1) :], dtype=torch.long)
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
        shift_logits, shift_labels = logits[:, :-1], labels[:, 1:].to(device)
        losses = torch.nn.functional.cross_entropy(
            shift_logits.transpose(1, 2), shift_labels, ignore_index=-100, reduction="none"
        )
        counts = (shift_labels != -100).sum(dim=1)
        for total, n in zip(losses.sum(dim=1).tolist(), counts.tolist()):
            out.append(total / n if n else math.nan)
        if on_batch is not None:
            on_batch(len(chunk))
    return out
