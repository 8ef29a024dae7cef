"""Packing and collation: bin packing, position ids, label boundaries, and no attention across samples."""

from __future__ import annotations

import random

import datasets
import pytest
import torch
from transformers import AutoModelForCausalLM

from tunelab.compat.transformers import attn_implementation
from tunelab.data.collator import build_collator
from tunelab.data.packing import first_fit_decreasing, pack_sequences, packing_mode
from tunelab.errors import DataError
from tunelab.model.packed_attention import PACKED_SDPA, enable_packed_sdpa

M = -100

# Three samples of different lengths, with a masked prompt part each.
SAMPLES = [
    {"input_ids": [5, 6, 7, 8, 9, 10, 11], "labels": [M, M, M, 8, 9, 10, 11]},
    {"input_ids": [20, 21, 22], "labels": [M, 21, 22]},
    {"input_ids": [30, 31, 32, 33, 34], "labels": [M, M, 32, 33, 34]},
]


def naive_ffd(lengths, capacity):
    bins, free = [], []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for b, room in enumerate(free):
            if room >= lengths[index]:
                bins[b].append(index)
                free[b] -= lengths[index]
                break
        else:
            bins.append([index])
            free.append(capacity - lengths[index])
    return bins


def test_first_fit_decreasing_by_hand():
    # sorted: 5(i0) 4(i1) 3(i2) 3(i3) 2(i4) 2(i5) 1(i6); capacity 8
    assert first_fit_decreasing([5, 4, 3, 3, 2, 2, 1], 8) == [[0, 2], [1, 3, 6], [4, 5]]


def test_first_fit_decreasing_matches_the_textbook_algorithm():
    rng = random.Random(0)
    for _ in range(30):
        lengths = [rng.randint(1, 50) for _ in range(rng.randint(1, 200))]
        bins = first_fit_decreasing(lengths, 64)
        assert bins == naive_ffd(lengths, 64)
        assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
        assert all(sum(lengths[i] for i in b) <= 64 for b in bins)
    with pytest.raises(DataError, match="more than the packing capacity"):
        first_fit_decreasing([3, 9], 8)


def test_pack_sequences_positions_and_label_boundaries():
    packed = pack_sequences(datasets.Dataset.from_list(SAMPLES), cutoff_len=10)
    # FFD: the 7-token sample opens row 0 and the 3-token one joins it; the 5-token one gets row 1.
    assert packed[0] == {
        "input_ids": [5, 6, 7, 8, 9, 10, 11, 20, 21, 22],
        "labels": [M, M, M, 8, 9, 10, 11, M, 21, 22],
        "position_ids": [0, 1, 2, 3, 4, 5, 6, 0, 1, 2],
    }
    assert packed[1] == {
        "input_ids": [30, 31, 32, 33, 34],
        "labels": [M, M, 32, 33, 34],
        "position_ids": [0, 1, 2, 3, 4],
    }


def test_collator_pads_right_with_pad_token_and_ignored_labels(tiny_tokenizer):
    collate = build_collator(tiny_tokenizer, packing=False)
    batch = collate(SAMPLES[:2])
    pad = tiny_tokenizer.pad_token_id
    assert set(batch) == {"input_ids", "labels", "attention_mask"}
    assert batch["input_ids"].tolist() == [SAMPLES[0]["input_ids"], [20, 21, 22] + [pad] * 4]
    assert batch["labels"].tolist() == [SAMPLES[0]["labels"], [M, 21, 22] + [M] * 4]
    assert batch["attention_mask"].tolist() == [[1] * 7, [1, 1, 1, 0, 0, 0, 0]]
    assert build_collator(tiny_tokenizer, packing=False, pad_to_multiple_of=8)(SAMPLES)[
        "input_ids"
    ].shape == (3, 8)


def test_collator_for_packed_rows(tiny_tokenizer):
    packed = pack_sequences(datasets.Dataset.from_list(SAMPLES), cutoff_len=10)
    batch = build_collator(tiny_tokenizer, packing=True)(list(packed))
    assert "attention_mask" not in batch and batch["use_cache"] is False
    assert batch["input_ids"].shape == batch["labels"].shape == batch["position_ids"].shape == (2, 10)
    assert batch["position_ids"][1].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4]  # padding is its own segment
    assert batch["labels"][1].tolist() == [M, M, 32, 33, 34] + [M] * 5
    flat = build_collator(tiny_tokenizer, packing=True, flatten=True)(list(packed))
    assert flat["input_ids"].shape == (1, 15)
    assert flat["position_ids"][0].tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 0, 1, 2, 3, 4]


@pytest.fixture(scope="module")
def random_samples(tiny_tokenizer):
    rng = random.Random(1)
    vocab = len(tiny_tokenizer)
    samples = []
    for length in (9, 4, 13, 6, 11):
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        samples.append({"input_ids": ids, "labels": [M] * 2 + ids[2:]})
    return samples


# atol = rtol per precision: fp32 is exact up to summation order; bf16 carries 8 mantissa bits, and the
# packed and lone runs round their (differently shaped) matmuls and reductions differently.
# bf16 logits of the same sample computed in a packed row and alone differ by rounding that builds up over
# the layers: up to ~0.03 on single elements on some CPUs (1 of 26,000 seen on an AMD EPYC). A sample
# that attended to its neighbour would differ everywhere by far more.
TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 4e-2}


def _load(model_dir, attn: str, dtype: torch.dtype):
    if attn != PACKED_SDPA:
        return AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation=attn, dtype=dtype)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="sdpa", dtype=dtype)
    enable_packed_sdpa(model)
    return model


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("attn", ["sdpa", "eager", PACKED_SDPA])
def test_packed_samples_do_not_attend_to_each_other(
    tiny_model_dir, tiny_tokenizer, random_samples, attn, dtype
):
    """Each sample of a packed batch gets the logits, loss and gradients it gets alone."""
    model = _load(tiny_model_dir, attn, dtype)
    model.train()  # what training sees (the tiny model has no dropout, so outputs are deterministic)
    assert model.config.use_cache  # the default the collator has to override
    assert packing_mode(attn_implementation(model.config)) == "rows"
    packed = pack_sequences(datasets.Dataset.from_list(random_samples), cutoff_len=24)
    assert len(packed) == 2 and all(row["position_ids"].count(0) >= 2 for row in packed)
    batch = build_collator(tiny_tokenizer, packing=True)(list(packed))
    params = list(model.parameters())
    packed_out = model(**batch)
    packed_grads = torch.autograd.grad(packed_out.loss, params)
    alone = []
    for s in random_samples:
        out = model(input_ids=torch.tensor([s["input_ids"]]), labels=torch.tensor([s["labels"]]))
        alone.append((out.logits[0].detach(), out.loss))
    tol = {"atol": TOLERANCE[dtype], "rtol": TOLERANCE[dtype]}
    n_checked = 0
    for row, row_positions in enumerate(batch["position_ids"].tolist()):
        starts = [i for i, p in enumerate(row_positions) if p == 0]
        for start in starts:
            ids = batch["input_ids"][row, start:].tolist()
            match = [k for k, s in enumerate(random_samples) if ids[: len(s["input_ids"])] == s["input_ids"]]
            if not match:
                continue  # the padding segment
            sample = random_samples[match[0]]
            got = packed_out.logits[row, start : start + len(sample["input_ids"])].detach()
            torch.testing.assert_close(got, alone[match[0]][0], **tol)
            n_checked += 1
    assert n_checked == len(random_samples)
    # The packed loss is the token-weighted mean of the per-sample losses: no sample learns from another,
    # and so are its gradients.
    n_targets = [sum(1 for label in s["labels"][1:] if label != M) for s in random_samples]
    expected = sum(loss * n for (_, loss), n in zip(alone, n_targets)) / sum(n_targets)
    torch.testing.assert_close(packed_out.loss, expected, **tol)
    for got, want in zip(packed_grads, torch.autograd.grad(expected, params)):
        scale = want.abs().max().item() or 1.0  # bf16 rounds relative to each tensor's magnitude
        torch.testing.assert_close(got / scale, want / scale, **tol)


def test_without_disabling_the_cache_packed_samples_leak(tiny_model_dir, tiny_tokenizer, random_samples):
    """Why the collator sends use_cache=False: with a KV cache transformers skips packed-sequence masks."""
    model = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, attn_implementation="sdpa", dtype=torch.float32
    )
    packed = pack_sequences(datasets.Dataset.from_list(random_samples[:2]), cutoff_len=24)
    batch = build_collator(tiny_tokenizer, packing=True)(list(packed))
    batch.pop("use_cache")
    second = random_samples[1]["input_ids"]
    start = len(random_samples[0]["input_ids"])
    with torch.no_grad():
        leaked = model(**batch).logits[0, start : start + len(second)]
        alone = model(input_ids=torch.tensor([second])).logits[0]
    assert (leaked - alone).abs().max() > 1e-3
