"""Stage ppo: policy rollouts scored by a trained reward model, updated by clipped PPO with a KL penalty."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tunelab.errors import ConfigError, ModelError
from tunelab.runs import RunDir
from tunelab.train import train
from tunelab.train.ppo_core import KLController, RunningMoments, gae_advantages, masked_whiten, ppo_losses
from tunelab.train.stages.ppo import _until_stop

PPO_METRICS = ("reward", "kl", "policy_loss", "value_loss", "entropy", "kl_coef", "response_length")


def test_ppo_runs_end_to_end_with_a_trained_reward_model(
    tiny_model_dir: Path, tmp_path: Path, pref_config, rm_run
) -> None:
    config = pref_config(
        tiny_model_dir,
        tmp_path / "ppo",
        stage="ppo",
        reward_model=str(rm_run.run_dir),
        max_steps=6,
        ppo_epochs=2,
        ppo_kl_coef=0.05,
        max_new_tokens=8,
        top_p=1.0,
        top_k=0,
        temperature=1.0,
        learning_rate=5e-3,
    )
    result = train(config)
    rows = RunDir(result.run_dir).read_log()
    assert len(rows) == 6 and result.status == "finished"
    for row in rows:
        assert all(math.isfinite(row[key]) for key in PPO_METRICS), row
        assert 1 <= row["response_length"] <= 8
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # round 1 samples from the untouched policy
    assert any(abs(row["kl"]) > 1e-3 for row in rows[1:])  # later rounds have moved away from it
    assert rows[-1]["kl_coef"] != rows[0]["kl_coef"]  # adaptive KL control at work
    assert (result.run_dir / "adapter_model.safetensors").is_file()
    assert (result.run_dir / "value_head.safetensors").is_file()


def test_resumed_ppo_keeps_its_adapted_kl_coefficient(
    tiny_model_dir: Path, tmp_path: Path, pref_config, rm_run
) -> None:
    """The adaptive KL coefficient and the score statistics live beside each checkpoint (ppo_state.json):
    a resumed run goes on from the adapted coefficient, not from ppo_kl_coef again."""
    import json

    settings = dict(
        stage="ppo", reward_model=str(rm_run.run_dir), ppo_kl_coef=0.05, ppo_score_norm=True,
        max_new_tokens=8, top_p=1.0, top_k=0, temperature=1.0, learning_rate=5e-3, save_steps=3,
    )  # fmt: skip
    first = train(pref_config(tiny_model_dir, tmp_path / "ppo", max_steps=3, **settings))
    state = json.loads((first.run_dir / "checkpoint-3" / "ppo_state.json").read_text())
    coef = state["kl_control"]["coef"]
    assert coef != pytest.approx(0.05) and state["score_moments"]["count"] > 0
    resumed = train(
        pref_config(tiny_model_dir, tmp_path / "ppo", max_steps=5, resume_from_checkpoint="auto", **settings)
    )
    rows = RunDir(resumed.run_dir).read_log()
    assert [row["current_steps"] for row in rows] == [1, 2, 3, 4, 5]
    assert rows[3]["kl_coef"] == pytest.approx(coef)  # round 4 starts from the saved coefficient


@pytest.mark.slow
def test_ppo_raises_the_reward_of_sampled_replies(
    tiny_model_dir: Path, tmp_path: Path, pref_config, rm_run
) -> None:
    """24 rounds of 16 prompts: the eval reward (32 held-out prompts) and the rollout reward both rise."""
    config = pref_config(
        tiny_model_dir,
        tmp_path / "ppo-long",
        stage="ppo",
        reward_model=str(rm_run.run_dir),
        max_steps=24,
        per_device_train_batch_size=16,
        ppo_epochs=4,
        ppo_kl_coef=0.02,
        max_new_tokens=6,
        top_p=1.0,
        top_k=0,
        temperature=1.0,
        cutoff_len=96,
        val_size=32,
        eval_strategy="steps",
        eval_steps=24,
        metric_for_best_model="eval_reward",
    )
    rows = RunDir(train(config).run_dir).read_log()
    evals = [row for row in rows if "eval_reward" in row]
    assert evals[0]["current_steps"] == 0  # evaluated before the first round
    assert evals[-1]["eval_reward"] > evals[0]["eval_reward"] + 0.5
    rewards = [row["reward"] for row in rows if "reward" in row]
    assert sum(rewards[-8:]) / 8 > sum(rewards[:8]) / 8 + 0.5


def test_ppo_needs_a_reward_model_run(tiny_model_dir: Path, tmp_path: Path, pref_config) -> None:
    with pytest.raises(ConfigError, match="stage: ppo needs reward_model"):
        pref_config(tiny_model_dir, tmp_path / "a", stage="ppo")
    config = pref_config(
        tiny_model_dir, tmp_path / "b", stage="ppo", reward_model=str(tmp_path / "nothing"), max_new_tokens=8
    )
    with pytest.raises(ModelError, match="no config.yaml"):
        train(config)


def test_gae_matches_a_hand_computation() -> None:
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.2, 0.4]])
    mask = torch.ones_like(rewards)
    advantages, returns = gae_advantages(rewards, values, mask, gamma=1.0, lam=0.5)
    d2 = 1.0 - 0.4
    d1 = 0.0 + 0.4 - 0.2
    d0 = 0.0 + 0.2 - 0.5
    a2, a1 = d2, d1 + 0.5 * d2
    expected = torch.tensor([[d0 + 0.5 * a1, a1, a2]])
    assert torch.allclose(advantages, expected) and torch.allclose(returns, expected + values)
    # padding after the response contributes nothing
    padded, _ = gae_advantages(
        torch.tensor([[0.0, 1.0, 5.0]]), torch.tensor([[0.1, 0.2, 9.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    )
    assert padded[0, 2] == 0 and padded[0, 1] == pytest.approx(0.8)


def test_ppo_loss_clips_the_ratio_and_whitening_normalises() -> None:
    mask = torch.ones(1, 2)
    old = torch.zeros(1, 2)
    adv = torch.tensor([[1.0, 1.0]])
    values = returns = torch.zeros(1, 2)
    far = ppo_losses(torch.full((1, 2), 1.0), old, adv, values, values, returns, mask)  # ratio e > 1.2
    assert far.policy.item() == pytest.approx(-1.2) and far.clip_fraction.item() == 1.0
    near = ppo_losses(torch.full((1, 2), 0.1), old, adv, values, values, returns, mask)
    assert near.policy.item() == pytest.approx(-math.exp(0.1)) and near.clip_fraction.item() == 0.0
    white = masked_whiten(torch.tensor([[1.0, 2.0, 3.0, 100.0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]]))
    assert white[0, :3].mean().abs() < 1e-6 and white[0, 3] == 0


def test_kl_controller_moves_towards_the_target_and_score_moments() -> None:
    control = KLController(0.2, target=6.0, horizon=100)
    control.update(12.0, 10)
    assert control.coef > 0.2
    control.update(1.0, 10)
    fixed = KLController(0.2, target=None)
    fixed.update(50.0, 10)
    assert fixed.coef == 0.2
    moments = RunningMoments()
    data = torch.tensor([1.0, 2.0, 3.0, 4.0, 10.0])
    moments.update(data[:2])
    moments.update(data[2:])
    assert moments.mean == pytest.approx(4.0) and moments.std == pytest.approx(
        data.std(unbiased=False).item()
    )


def test_responses_are_cut_after_their_stop_token() -> None:
    responses = torch.tensor([[5, 2, 7, 2], [5, 6, 7, 8], [2, 0, 0, 0]])
    assert _until_stop(responses, [2]).tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
