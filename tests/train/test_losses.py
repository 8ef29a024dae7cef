"""DFT, EAFT and ASFT losses against closed-form values, and their wiring into the sft stage."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from tunelab.config import config_from_dict
from tunelab.errors import ConfigError
from tunelab.train.losses import asft_loss, dft_loss, eaft_loss

# one sequence of 3 positions over 2 tokens; position t predicts label t+1
LOGITS = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0], [5.0, -5.0]]])  # p = (1/4, 3/4), (1/2, 1/2), unused
LABELS = torch.tensor([[-100, 1, 0]])  # label 1 at p = 3/4, then label 0 at p = 1/2


def test_dft_is_probability_weighted_cross_entropy() -> None:
    logits = LOGITS.clone().requires_grad_(True)
    loss = dft_loss(logits, LABELS)
    expected = (-0.75 * math.log(0.75) - 0.5 * math.log(0.5)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # the weight is detached: the gradient is p x the cross-entropy gradient (softmax - onehot), / 2 tokens
    assert torch.allclose(logits.grad[0, 1], torch.tensor([-0.5, 0.5]) * 0.5 / 2)
    assert torch.allclose(logits.grad[0, 0], torch.tensor([0.25, -0.25]) * 0.75 / 2)
    assert torch.equal(logits.grad[0, 2], torch.zeros(2))  # the last position predicts nothing
    # with the Trainer's token count the sum is divided by it instead
    assert dft_loss(LOGITS, LABELS, torch.tensor(4)).item() == pytest.approx(expected * 2 / 4, rel=1e-6)


def test_eaft_weights_by_normalised_top20_entropy() -> None:
    uniform = torch.zeros(1, 2, 20)
    labels = torch.tensor([[-100, 3]])
    # uniform: entropy ln 20, weight 1, so the loss is the plain cross-entropy ln 20
    assert eaft_loss(uniform, labels).item() == pytest.approx(math.log(20), rel=1e-6)
    peaked = torch.zeros(1, 2, 20)
    peaked[0, 0, 0] = math.log(19.0)  # p0 = 1/2, the 19 others 1/38 each
    entropy = 0.5 * math.log(2) + 0.5 * math.log(38)
    for alpha in (1.0, 2.0):
        got = eaft_loss(peaked, torch.tensor([[-100, 0]]), alpha=alpha).item()
        assert got == pytest.approx((entropy / math.log(20)) ** alpha * math.log(2), rel=1e-6)


def test_asft_is_dft_plus_the_kl_anchor() -> None:
    assert asft_loss(LOGITS, LOGITS, LABELS, alpha=0.5).item() == pytest.approx(
        dft_loss(LOGITS, LABELS).item()
    )
    ref = torch.tensor([[[0.0, 0.0], [math.log(3.0), 0.0], [0.0, 0.0]]])  # q = (1/2, 1/2), (3/4, 1/4)
    kl_0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # KL(q || p) at position 0
    kl_1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    expected = dft_loss(LOGITS, LABELS).item() + 0.1 * (kl_0 + kl_1) / 2
    assert asft_loss(LOGITS, ref, LABELS, alpha=0.1).item() == pytest.approx(expected, rel=1e-6)


def test_one_loss_at_a_time_and_only_in_sft() -> None:
    with pytest.raises(ConfigError, match="keep one of them"):
        config_from_dict({"model_name_or_path": "tiny:llama", "use_dft_loss": True, "use_eaft_loss": True})
    with pytest.raises(ConfigError, match="use stage: sft"):
        config_from_dict({"model_name_or_path": "tiny:llama", "use_dft_loss": True, "stage": "pt"})


@pytest.mark.parametrize("loss", ["use_dft_loss", "use_asft_loss"])
def test_sft_trains_with_the_loss(
    tiny_model_dir: Path, tmp_path: Path, tiny_sft_config: Any, loss: str
) -> None:
    from tunelab.train import train

    config = tiny_sft_config(
        tiny_model_dir,
        tmp_path / "run",
        **{loss: True},
        finetuning_type="full" if loss == "use_asft_loss" else "lora",  # full: a frozen copy anchors
        max_samples=16,
        val_size=4,
        eval_strategy="steps",
        eval_steps=2,
        learning_rate=1e-3,
    )
    result = train(config)
    assert result.status == "finished"
    assert math.isfinite(result.metrics["train_loss"]) and math.isfinite(result.metrics["eval_loss"])
    # an untrained model gives each label p ~ 1/vocab: the p-weighted loss is ~0 where cross-entropy
    # is ~ln(vocab) > 5, so a small loss shows the stage used the weighted loss (ASFT's KL starts at 0)
    assert result.metrics["train_loss"] < 0.5
    # the weighted loss is no NLL: no perplexity is derived from it
    assert "eval_perplexity" not in result.metrics
