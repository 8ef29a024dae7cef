"""Choose each row's next token with that row's own settings (greedy, or sampled with its own seed).

The order of the logits processing is transformers' (repetition penalty, temperature, top-k, top-p),
so a setting means what it means in `generate`. Each sampled request draws from its own
torch.Generator: the same `seed` gives the same reply whatever else is in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["RowSampling", "choose_tokens"]


@dataclass
class RowSampling:
    """One request's decoding settings; `generator` is None for greedy decoding."""

    greedy: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    repetition_penalty: float = 1.0
    generator: Any = None

    @classmethod
    def create(
        cls,
        *,
        do_sample: bool,
        temperature: float,
        top_p: float,
        top_k: int,
        repetition_penalty: float,
        seed: int | None,
    ) -> RowSampling:
        import torch

        generator = None
        if do_sample:
            generator = torch.Generator()
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(seed)
        return cls(not do_sample, temperature, top_p, top_k or 0, repetition_penalty, generator)


def choose_tokens(logits: Any, rows: Sequence[RowSampling], histories: Sequence[Sequence[int]]) -> list[int]:
    """The next token of each row; `histories` (prompt + generated ids) feed the repetition penalty."""
    import torch

    chosen = logits.argmax(-1).tolist()
    for i, row in enumerate(rows):
        if row.greedy and row.repetition_penalty == 1.0:
            continue
        scores = logits[i].clone()
        if row.repetition_penalty != 1.0:
            seen = torch.tensor(sorted(set(histories[i])), dtype=torch.long, device=scores.device)
            picked = scores[seen]
            scores[seen] = torch.where(
                picked < 0, picked * row.repetition_penalty, picked / row.repetition_penalty
            )
            scores = _finite(scores)  # a penalty near 0 divides a score into +inf
        if row.greedy:
            chosen[i] = int(scores.argmax())
            continue
        chosen[i] = _sample(scores, row)
    return chosen


def _sample(scores: Any, row: RowSampling) -> int:
    import torch

    scores = _finite(scores / max(row.temperature, 1e-5))
    if 0 < row.top_k < scores.numel():
        kth = torch.topk(scores, row.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if row.top_p < 1.0:
        ordered, order = torch.sort(scores, descending=True)
        cumulative = ordered.softmax(-1).cumsum(-1)
        drop = cumulative - ordered.softmax(-1) >= row.top_p  # keep the smallest set reaching top_p
        drop[0] = False  # and always the most likely token (a top_p that rounds to 0 keeps just it)
        scores = scores.masked_fill(torch.zeros_like(drop).scatter(0, order, drop), float("-inf"))
    probs = scores.softmax(-1).cpu()
    if not bool(torch.isfinite(probs).all()) or float(probs.sum()) <= 0:
        return int(scores.argmax())  # nothing left to sample from: the most likely token
    return int(torch.multinomial(probs, 1, generator=row.generator))


def _finite(scores: Any) -> Any:
    """+inf as the largest float (ties share the probability), NaN as excluded (-inf)."""
    import torch

    return torch.nan_to_num(scores, nan=float("-inf"), posinf=torch.finfo(scores.dtype).max)
