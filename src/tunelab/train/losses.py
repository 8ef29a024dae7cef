"""Alternative SFT token losses: DFT, EAFT and ASFT, written as their papers write them.

With ``p_t`` the model's probability of the label token at position t, over the label tokens T:

- DFT, Dynamic Fine-Tuning (Wu et al., 2025): ``L = -1/|T| sum_t sg(p_t) log p_t``; the stop-gradient
  weight ``sg(p_t)`` removes the ``1/p_t`` blow-up that cross-entropy's gradient has on unlikely tokens.
- EAFT, Entropy-Adaptive Fine-Tuning: ``L = -1/|T| sum_t sg(w_t) log p_t`` with
  ``w_t = (H_t / ln K) ^ alpha``, ``H_t`` the entropy of the model's top-K (K = 20) distribution,
  renormalised. Confident (low-entropy) positions that disagree with the label are down-weighted, which
  limits forgetting. (LLaMA-Factory divides by 3.0 where the paper writes ln 20 = 2.996.)
- ASFT, Anchored SFT (Zhu et al., 2025): ``L = L_DFT + alpha * 1/|T| sum_t KL(q_t || p_t)``, with ``q_t``
  the reference (starting) model's next-token distribution: DFT plus a KL anchor against drift.

Labels are aligned with the inputs (as in the batch) and shifted here; ``-100`` marks ignored positions.
``num_items`` (the Trainer's token count over the whole accumulated batch) replaces ``|T|`` when given,
so gradient accumulation averages over the same tokens as the plain cross-entropy does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["EAFT_TOP_K", "asft_loss", "build_token_loss", "custom_token_loss", "dft_loss", "eaft_loss"]

EAFT_TOP_K = 20
IGNORE = -100


def _shifted(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits of the label positions [N, V], their labels [N], mask of the valid ones [N])."""
    logits = logits[..., :-1, :].float().reshape(-1, logits.shape[-1])
    labels = labels[..., 1:].reshape(-1).to(logits.device)
    return logits, labels, labels != IGNORE


def _reduce(per_token: torch.Tensor, valid: torch.Tensor, num_items: Any) -> torch.Tensor:
    total = (per_token * valid).sum()
    if num_items is not None:
        return total / (num_items.to(total.device) if torch.is_tensor(num_items) else num_items)
    return total / valid.sum().clamp(min=1)


def _token_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, labels.clamp(min=0), reduction="none")


def dft_loss(logits: torch.Tensor, labels: torch.Tensor, num_items: Any = None) -> torch.Tensor:
    """DFT: each label token's cross-entropy weighted by its detached probability."""
    logits, labels, valid = _shifted(logits, labels)
    nll = _token_nll(logits, labels)
    return _reduce(nll * torch.exp(-nll).detach(), valid, num_items)


def eaft_loss(
    logits: torch.Tensor, labels: torch.Tensor, num_items: Any = None, *, alpha: float = 1.0
) -> torch.Tensor:
    """EAFT: cross-entropy weighted by (top-K entropy / ln K) ^ alpha, detached."""
    logits, labels, valid = _shifted(logits, labels)
    nll = _token_nll(logits, labels)
    with torch.no_grad():
        top = torch.topk(logits, k=min(EAFT_TOP_K, logits.shape[-1]), dim=-1).values
        log_q = torch.log_softmax(top, dim=-1)
        entropy = -(log_q.exp() * log_q).sum(-1)
        weight = (entropy / math.log(EAFT_TOP_K)).pow(alpha)
    return _reduce(nll * weight, valid, num_items)


def asft_loss(
    logits: torch.Tensor,
    ref_logits: torch.Tensor,
    labels: torch.Tensor,
    num_items: Any = None,
    *,
    alpha: float = 0.1,
) -> torch.Tensor:
    """ASFT: the DFT loss plus ``alpha`` x the mean per-token KL(reference || model) over label tokens."""
    flat, flat_labels, valid = _shifted(logits, labels)
    ref = ref_logits[..., :-1, :].float().reshape(-1, ref_logits.shape[-1]).to(flat.device)
    log_p = torch.log_softmax(flat, dim=-1)
    log_q = torch.log_softmax(ref, dim=-1)
    kl = (log_q.exp() * (log_q - log_p)).sum(-1)
    return dft_loss(logits, labels, num_items) + alpha * _reduce(kl, valid, None)


def build_token_loss(finetuning: Any) -> Callable[..., torch.Tensor] | None:
    """The Trainer's ``compute_loss_func`` for use_dft_loss / use_eaft_loss, else None (plain CE).

    ASFT needs the reference model's logits of the same batch, which this hook does not see: see
    train/asft.py.
    """
    if finetuning.use_dft_loss:
        return lambda outputs, labels, num_items_in_batch=None: dft_loss(
            outputs.logits, labels, num_items_in_batch
        )
    if finetuning.use_eaft_loss:
        alpha = finetuning.eaft_alpha
        return lambda outputs, labels, num_items_in_batch=None: eaft_loss(
            outputs.logits, labels, num_items_in_batch, alpha=alpha
        )
    return None


def custom_token_loss(finetuning: Any) -> bool:
    """Whether the sft loss is DFT, EAFT or ASFT (whose eval_loss is then not a token NLL)."""
    return bool(finetuning.use_dft_loss or finetuning.use_eaft_loss or finetuning.use_asft_loss)
