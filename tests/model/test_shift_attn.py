"""shift_attn (LongLoRA S²-Attn): attention stays in 4 groups, half of the heads shifted; eval is SDPA."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from transformers import AutoModelForCausalLM

from tunelab.model.shift_attn import S2_ATTENTION, enable_shift_attn, s2_attention_forward

LENGTH, GROUP, HEADS, DIM = 16, 4, 4, 8


def _affected(training: bool, position: int) -> dict[int, set[int]]:
    """Per head, the output positions that change when the value at ``position`` changes."""
    torch.manual_seed(0)
    module = SimpleNamespace(training=training, is_causal=True, num_key_value_groups=1)
    q, k, v = (torch.randn(1, HEADS, LENGTH, DIM) for _ in range(3))
    out, _ = s2_attention_forward(module, q, k, v, None, scaling=DIM**-0.5, dropout=0.0)
    v2 = v.clone()
    v2[:, :, position] += 1.0
    out2, _ = s2_attention_forward(module, q, k, v2, None, scaling=DIM**-0.5, dropout=0.0)
    diff = (out - out2).abs().amax(-1)[0]  # [positions, heads]
    return {h: {t for t in range(LENGTH) if diff[t, h] > 1e-6} for h in range(HEADS)}


def test_training_attends_within_groups_and_shifted_groups() -> None:
    position = 5  # in group 1 (positions 4-7)
    affected = _affected(True, position)
    for head in (0, 1):  # unshifted: causal inside its own group
        assert affected[head] == {5, 6, 7}
    for head in (2, 3):  # shifted by half a group: groups are 2-5, 6-9, ...; 5 is the last of 2-5
        assert affected[head] == {5}
    # as in LongLoRA (and LLaMA-Factory), the roll wraps: the last shifted group is 14, 15, 0, 1
    assert _affected(True, 14)[2] == {14, 15, 0, 1}
    late = _affected(True, 6)
    assert late[0] == {6, 7} and late[2] == {6, 7, 8, 9}  # 6 opens the shifted group 6-9


def test_eval_is_full_causal_attention() -> None:
    affected = _affected(False, 5)
    assert all(affected[head] == set(range(5, LENGTH)) for head in range(HEADS))


def test_model_uses_it_in_training_only(tiny_model_dir: Path, tiny_sft_config: Any, tmp_path: Path) -> None:
    from tunelab.train import train

    plain = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa"
    )
    model = AutoModelForCausalLM.from_pretrained(
        tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa"
    )
    enable_shift_attn(model)
    assert model.config._attn_implementation == S2_ATTENTION
    ids = torch.arange(3, 3 + 32).unsqueeze(0)
    with torch.no_grad():
        assert torch.allclose(
            model.eval()(input_ids=ids).logits, plain.eval()(input_ids=ids).logits, atol=1e-5
        )
        grouped = model.train()(input_ids=ids).logits
    assert not torch.allclose(grouped, plain(input_ids=ids).logits, atol=1e-3)  # training attends in groups
    result = train(tiny_sft_config(tiny_model_dir, tmp_path / "run", shift_attn=True, flash_attn="sdpa"))
    assert result.status == "finished" and result.metrics["train_loss"] > 0
