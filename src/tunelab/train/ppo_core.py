"""The arithmetic of PPO for language models, as small tensor functions (no model, no trainer).

Follows "The N+ implementation details of RLHF with PPO" (Huang et al. 2024) and TRL's former
PPOTrainer: per-token rewards are ``-kl_coef x (log pi - log pi_ref)`` with the reward-model score
added at the last response token; advantages by GAE over the response tokens, whitened; a clipped
policy-gradient loss and a clipped value loss; an adaptive KL coefficient (Ziegler et al. 2019).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = [
    "KLController",
    "PPOLosses",
    "RunningMoments",
    "gae_advantages",
    "masked_mean",
    "masked_whiten",
    "ppo_losses",
]

GAMMA = 1.0  # no discount within a response: the score comes at its end
LAM = 0.95  # GAE lambda
CLIP_RANGE = 0.2  # policy ratio clip
CLIP_RANGE_VALUE = 0.2  # value prediction clip around the rollout's values
VALUE_COEF = 0.1  # weight of the value loss in the total loss
KL_HORIZON = 10_000  # samples over which the adaptive KL coefficient closes the gap to its target


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, *, shift_mean: bool = True) -> torch.Tensor:
    """Scale to unit variance over the masked entries (and centre them unless ``shift_mean=False``)."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    return (whitened if shift_mean else whitened + mean) * mask


def gae_advantages(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, *, gamma: float = GAMMA, lam: float = LAM
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) per response token by generalised advantage estimation; padding is 0."""
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.size(1))):
        next_value = values[:, t + 1] if t + 1 < rewards.size(1) else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = delta + gamma * lam * running
        advantages[:, t] = running
    return advantages * mask, (advantages + values) * mask


@dataclass
class PPOLosses:
    """The two losses of one mini-batch and what they say about the update."""

    policy: torch.Tensor
    value: torch.Tensor
    clip_fraction: torch.Tensor
    approx_kl: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.policy + VALUE_COEF * self.value


def ppo_losses(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
) -> PPOLosses:
    """Clipped surrogate policy loss and clipped value loss, masked means over response tokens."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    policy = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - CLIP_RANGE, 1 + CLIP_RANGE))
    clipped_values = old_values + (values - old_values).clamp(-CLIP_RANGE_VALUE, CLIP_RANGE_VALUE)
    value = 0.5 * torch.max((values - returns) ** 2, (clipped_values - returns) ** 2)
    with torch.no_grad():
        clip_fraction = masked_mean(((ratio - 1).abs() > CLIP_RANGE).float(), mask)
        approx_kl = 0.5 * masked_mean(log_ratio**2, mask)
    return PPOLosses(masked_mean(policy, mask), masked_mean(value, mask), clip_fraction, approx_kl)


class KLController:
    """The KL penalty's coefficient: fixed, or adapted so the measured KL approaches ``target``."""

    def __init__(self, coef: float, target: float | None, horizon: int = KL_HORIZON) -> None:
        self.coef, self.target, self.horizon = coef, target, horizon

    def state_dict(self) -> dict[str, float]:
        return {"coef": self.coef}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.coef = float(state["coef"])

    def update(self, kl: float, n_samples: int) -> None:
        if self.target is None:
            return
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.coef *= 1.0 + error * n_samples / self.horizon


class RunningMoments:
    """Running mean and standard deviation of reward-model scores (for ppo_score_norm)."""

    def __init__(self) -> None:
        self.mean, self.var, self.count = 0.0, 1.0, 0

    def state_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "var": self.var, "count": self.count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.mean, self.var, self.count = float(state["mean"]), float(state["var"]), int(state["count"])

    def update(self, values: torch.Tensor) -> None:
        n = values.numel()
        batch_mean, batch_var = float(values.mean()), float(values.var(unbiased=False)) if n > 1 else 0.0
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.var = (self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total
        self.count = total

    @property
    def std(self) -> float:
        return math.sqrt(max(self.var, 1e-8))

    def normalize(self, values: torch.Tensor) -> torch.Tensor:
        return (values - self.mean) / self.std
