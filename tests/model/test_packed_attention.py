"""Per-sample sdpa for packed rows: the plan, that it really skips the full masked tile, when it is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from tunelab.compat.transformers import attn_implementation
from tunelab.model import load_model_for_training
from tunelab.model.attention import uses_packed_sdpa
from tunelab.model.packed_attention import PACKED_SDPA, enable_packed_sdpa, plan_segments


def test_plan_cuts_rows_at_position_restarts_and_buckets_by_length() -> None:
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]])
    plan = plan_segments(positions, 2, bucket=4)
    assert plan is not None
    assert plan.lengths == (3, 2, 5, 7, 3)
    # lengths 3, 2, 3 round up to 4 (one call, padded to 3); 5 and 7 round up to 8 (padded to 7)
    assert plan.shapes == ((3, 3), (2, 7))
    gather = plan.gather.tolist()
    assert gather[:9] == [0, 1, 2, 3, 4, 4, 17, 18, 19]  # the 2-token segment repeats its last token
    assert gather[9:] == [5, 6, 7, 8, 9, 9, 9, 10, 11, 12, 13, 14, 15, 16]
    # every token's output is read back from its own place in the padded layout
    assert [gather[i] for i in plan.scatter.tolist()] == list(range(20))


def test_plan_is_none_without_packing() -> None:
    assert plan_segments(torch.arange(6).unsqueeze(0), 3) is None  # one sample per row


@pytest.fixture(scope="module")
def models(tiny_model_dir: Path) -> tuple[Any, Any]:
    plain = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, attn_implementation="sdpa", dtype=torch.float32
    )
    packed = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, attn_implementation="sdpa", dtype=torch.float32
    )
    enable_packed_sdpa(packed)
    return plain.train(), packed.train()


def _sdpa_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[int, ...], bool]]:
    """Record (query shape, has a mask) of every sdpa kernel call."""
    calls: list[tuple[tuple[int, ...], bool]] = []
    original = torch.nn.functional.scaled_dot_product_attention

    def spy(query: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append((tuple(query.shape), kwargs.get("attn_mask") is not None))
        return original(query, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    return calls


def test_packed_rows_run_per_sample_blocks_without_a_mask(models, monkeypatch) -> None:
    plain, packed = models
    positions = torch.tensor([[0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 0, 1], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]])
    ids = torch.randint(3, 200, positions.shape)
    calls = _sdpa_calls(monkeypatch)
    with torch.no_grad():
        got = packed(input_ids=ids, position_ids=positions, use_cache=False).logits
    n_layers = packed.config.num_hidden_layers
    # segments 6, 4, 2 | 10, 2: buckets of <= 32 tokens -> one call per layer, 5 segments padded to 10
    assert calls == [((5, 4, 10, 16), False)] * n_layers
    with torch.no_grad():
        want = plain(input_ids=ids, position_ids=positions, use_cache=False).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_other_batches_take_transformers_sdpa_unchanged(models, monkeypatch) -> None:
    plain, packed = models
    ids = torch.randint(3, 200, (2, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padded, not packed
    restarts = torch.tensor([[0, 1, 2, 0, 1, 2, 3, 4, 5]] * 2)  # restarts *with* a 2-D mask: not packing
    calls = _sdpa_calls(monkeypatch)
    for kwargs in ({"attention_mask": mask}, {"attention_mask": mask, "position_ids": restarts}, {}):
        with torch.no_grad():
            got = packed(input_ids=ids, use_cache=False, **kwargs).logits
            want = plain(input_ids=ids, use_cache=False, **kwargs).logits
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    assert all(shape[0] == 2 for shape, _ in calls)  # never cut into segments


def test_auto_picks_per_sample_sdpa_for_packed_rows_on_cpu(tiny_model_dir, tiny_sft_config, tmp_path) -> None:
    assert uses_packed_sdpa("auto", "sdpa", packing=True, device_type="cpu")
    assert not uses_packed_sdpa("sdpa", "sdpa", packing=True, device_type="cpu")  # asked for by name
    assert not uses_packed_sdpa("auto", "sdpa", packing=False, device_type="cpu")
    assert not uses_packed_sdpa("auto", "sdpa", packing=True, device_type="cuda")  # not measured there
    assert not uses_packed_sdpa("auto", "flash_attention_2", packing=True, device_type="cuda")
    model = load_model_for_training(tiny_sft_config(tiny_model_dir, tmp_path, packing=True), torch.float32)
    assert attn_implementation(model.config) == PACKED_SDPA
    model = load_model_for_training(tiny_sft_config(tiny_model_dir, tmp_path), torch.float32)
    assert attn_implementation(model.config) == "sdpa"


def test_short_blocks_run_in_fp32_under_bf16_autocast(models, monkeypatch) -> None:
    """torch's CPU flash kernel is slow on short bf16 blocks: they run in fp32, autocast or not."""
    _, packed = models
    positions = torch.tensor([[0, 1, 2, 3, 0, 1, 2, 3]])
    seen: list[torch.dtype] = []
    original = torch.nn.functional.scaled_dot_product_attention

    def spy(query: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = original(query, *args, **kwargs)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = packed(
            input_ids=torch.randint(3, 200, (1, 8)), position_ids=positions, use_cache=False
        ).logits
    assert seen == [torch.float32] * packed.config.num_hidden_layers
    assert logits.dtype == torch.bfloat16  # the rest of the model still runs under autocast
