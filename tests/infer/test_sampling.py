"""Per-request token choice: greedy is argmax, a seed repeats, extreme settings never crash."""

from __future__ import annotations

import torch

from tunelab.infer.sampling import RowSampling, choose_tokens


def row(**kwargs: object) -> RowSampling:
    settings = {"do_sample": True, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "repetition_penalty": 1.0,
                "seed": 0, **kwargs}  # fmt: skip
    return RowSampling.create(**settings)  # type: ignore[arg-type]


def test_greedy_seeded_and_filtered_rows_in_one_batch() -> None:
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(1))
    rows = [row(do_sample=False), row(seed=5), row(seed=5), row(top_k=1)]
    chosen = choose_tokens(logits, rows, [[]] * 4)
    assert chosen[0] == int(logits[0].argmax()) and chosen[3] == int(logits[3].argmax())
    again = choose_tokens(logits, [row(do_sample=False), row(seed=5), row(seed=5), row(top_k=1)], [[]] * 4)
    assert again == chosen  # the same seed draws the same token
    draws = {choose_tokens(logits[1:2], [row(seed=s, temperature=2.0)], [[]])[0] for s in range(20)}
    assert len(draws) > 1  # it really samples


def test_extreme_values_give_a_token_not_an_error() -> None:
    logits = torch.randn(2, 50, generator=torch.Generator().manual_seed(2))
    tiny = row(temperature=2.0, top_p=5e-324, repetition_penalty=5e-324)  # values schemathesis sent
    huge = row(temperature=1e-9, repetition_penalty=1e9)
    for chosen in (
        choose_tokens(logits, [tiny, tiny], [[1, 2], [3]]),
        choose_tokens(logits * 1e30, [huge, huge], [[1], [2]]),
    ):
        assert all(0 <= t < 50 for t in chosen)
    assert choose_tokens(logits[:1], [row(top_p=5e-324)], [[]]) == [int(logits[0].argmax())]
