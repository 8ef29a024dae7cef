"""Stage dpo: implicit rewards separate chosen from rejected; every loss variant trains and logs its metrics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tunelab.config import PreferenceArgs
from tunelab.errors import DataError
from tunelab.runs import RunDir
from tunelab.train import train
from tunelab.train.stages.dpo import preference_losses

DPO_METRICS = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins")


def test_dpo_lora_learns_the_preference_and_logs_reward_metrics(
    tiny_model_dir: Path, tmp_path: Path, pref_config
) -> None:
    config = pref_config(
        tiny_model_dir, tmp_path / "dpo", max_steps=12, val_size=0.1, eval_strategy="steps", eval_steps=12
    )
    result = train(config)
    rows = RunDir(result.run_dir).read_log()
    train_rows = [row for row in rows if "loss" in row]
    assert all(key in row and math.isfinite(row[key]) for row in train_rows for key in DPO_METRICS)
    # step 1 is taken before any update: the policy equals its reference (the adapter-disabled base)
    assert train_rows[0]["rewards/chosen"] == 0.0 and train_rows[0]["rewards/margins"] == 0.0
    assert train_rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    late = train_rows[-4:]
    assert sum(row["rewards/accuracies"] for row in late) / len(late) > 0.5
    assert sum(row["rewards/margins"] for row in late) / len(late) > 0
    assert train_rows[-1]["loss"] < train_rows[0]["loss"]
    metrics = result.metrics
    assert all(f"eval_{key}" in metrics for key in DPO_METRICS) and "eval_perplexity" not in metrics


@pytest.mark.parametrize(
    ("loss", "extra"),
    [
        ("sigmoid", {"dpo_label_smoothing": 0.1, "pref_ftx": 0.5}),
        ("ipo", {}),
        ("hinge", {}),
        ("orpo", {}),
        ("simpo", {"pref_beta": 2.0, "simpo_gamma": 0.5}),
    ],
)
def test_every_pref_loss_trains_and_logs_its_metrics(
    tiny_model_dir: Path, tmp_path: Path, pref_config, loss: str, extra: dict
) -> None:
    config = pref_config(
        tiny_model_dir, tmp_path / loss, pref_loss=loss, max_steps=3, per_device_train_batch_size=4, **extra
    )
    rows = RunDir(train(config).run_dir).read_log()
    assert len(rows) == 3
    for row in rows:
        assert math.isfinite(row["loss"]) and all(math.isfinite(row[key]) for key in DPO_METRICS)
    assert rows[-1]["loss"] != rows[0]["loss"]


def test_full_finetuning_uses_reference_log_probs_of_the_untouched_model(
    tiny_model_dir: Path, tmp_path: Path, pref_config
) -> None:
    config = pref_config(
        tiny_model_dir, tmp_path / "full", finetuning_type="full", max_steps=3, learning_rate=1e-3
    )
    rows = RunDir(train(config).run_dir).read_log()
    assert rows[0]["rewards/chosen"] == pytest.approx(0.0, abs=1e-4)  # precomputed = policy before step 1
    assert rows[-1]["rewards/margins"] != 0.0


def _pref(**values) -> PreferenceArgs:
    return PreferenceArgs(**values)


def test_loss_formulas_match_the_papers() -> None:
    chosen, rejected = torch.tensor([-10.0, -12.0]), torch.tensor([-11.0, -9.0])
    ref_c, ref_r = torch.tensor([-10.5, -12.0]), torch.tensor([-10.5, -10.0])
    n_c, n_r = torch.tensor([5.0, 4.0]), torch.tensor([5.0, 2.0])
    margin = (chosen - ref_c) - (rejected - ref_r)  # [1.0, -1.0]

    loss, rc, rr = preference_losses(_pref(pref_beta=0.5), chosen, rejected, ref_c, ref_r, n_c, n_r)
    assert torch.allclose(loss, -torch.nn.functional.logsigmoid(0.5 * margin))
    assert torch.allclose(rc - rr, 0.5 * margin)
    loss, _, _ = preference_losses(
        _pref(pref_loss="hinge", pref_beta=0.5), chosen, rejected, ref_c, ref_r, n_c, n_r
    )
    assert torch.allclose(loss, torch.relu(1 - 0.5 * margin))
    loss, _, _ = preference_losses(
        _pref(pref_loss="ipo", pref_beta=0.5), chosen, rejected, ref_c, ref_r, n_c, n_r
    )
    per_token = (chosen - ref_c) / n_c - (rejected - ref_r) / n_r
    assert torch.allclose(loss, (per_token - 1.0) ** 2)
    eps = 0.2
    loss, _, _ = preference_losses(
        _pref(pref_beta=0.5, dpo_label_smoothing=eps), chosen, rejected, ref_c, ref_r, n_c, n_r
    )
    logsig = torch.nn.functional.logsigmoid
    assert torch.allclose(loss, -(1 - eps) * logsig(0.5 * margin) - eps * logsig(-0.5 * margin))
    # reference-free: simpo on length-normalised log-probs with a target margin
    loss, rc, _ = preference_losses(
        _pref(pref_loss="simpo", pref_beta=2.0, simpo_gamma=0.5), chosen, rejected, None, None, n_c, n_r
    )
    assert torch.allclose(loss, -logsig(2.0 * (chosen / n_c - rejected / n_r) - 0.5))
    assert torch.allclose(rc, 2.0 * chosen / n_c)
    loss, _, _ = preference_losses(
        _pref(pref_loss="orpo", pref_beta=0.1), chosen, rejected, None, None, n_c, n_r
    )
    pc, pr = chosen / n_c, rejected / n_r
    log_odds = (pc - pr) - (torch.log1p(-pc.exp()) - torch.log1p(-pr.exp()))
    assert torch.allclose(loss, -pc - 0.1 * logsig(log_odds))


def test_adapter_disabled_model_is_the_base_model(tiny_model_dir: Path) -> None:
    """The DPO reference with LoRA: no second copy, yet exactly the base model's log-probs."""
    from transformers import AutoModelForCausalLM

    from tunelab.config import FinetuningArgs
    from tunelab.model import apply_finetuning
    from tunelab.train.preference import completion_logps, reference_mode

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    policy = apply_finetuning(AutoModelForCausalLM.from_pretrained(tiny_model_dir), FinetuningArgs())
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.add_(0.05)  # as after some training
    ids = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    completion = torch.tensor([[0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 0, 0]])
    with reference_mode(policy):
        reference = completion_logps(policy, ids, mask, completion)[0]
    with torch.no_grad():
        expected = completion_logps(base, ids, mask, completion)[0]
        trained = completion_logps(policy, ids, mask, completion)[0]
    assert torch.allclose(reference, expected, atol=1e-5)
    assert not torch.allclose(trained, expected, atol=1e-3)
    full = torch.log_softmax(base(input_ids=ids, attention_mask=mask).logits[:, :-1].float(), -1)
    manual = full.gather(-1, ids[:, 1:, None])[..., 0] * completion[:, 1:]
    assert torch.allclose(expected, manual.sum(-1), atol=1e-5)


@pytest.mark.parametrize(
    ("stage", "dataset", "named"),
    [
        ("dpo", "instruct_en", "'chosen' and 'rejected'"),
        ("rm", "kto_polite_en", "'chosen' and 'rejected'"),
        ("kto", "pref_polite_en", "kto_tag"),
        ("kto", "identity_en", "kto_tag"),
    ],
)
def test_wrong_data_for_a_stage_names_the_missing_columns(
    tiny_model_dir: Path, tmp_path: Path, pref_config, stage: str, dataset: str, named: str
) -> None:
    config = pref_config(tiny_model_dir, tmp_path / "bad", stage=stage, dataset=dataset)
    with pytest.raises(DataError) as info:
        train(config)
    message = str(info.value)
    assert named in message and f"stage {stage}" in message
    assert not (tmp_path / "bad" / "trainer_log.jsonl").exists()
