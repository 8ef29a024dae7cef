"""The distillation losses of stage kd, written as the papers write them.

With teacher distribution P and student distribution Q over the vocabulary (one response token):

- forward KL (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network"):
  KL(P || Q) = sum_v P(v) (log P(v) - log Q(v)), with P = softmax(z_t / T), Q = softmax(z_s / T),
  multiplied by T^2 so that the gradients keep their size as T changes;
- reverse KL: KL(Q || P) (mode-seeking; MiniLLM, GKD);
- generalized JSD (Agarwal et al. 2024, "On-Policy Distillation of Language Models", GKD):
  JSD_beta(P || Q) = beta KL(P || M) + (1 - beta) KL(Q || M), M = beta P + (1 - beta) Q.

``kd_topk``: both distributions are compared on the teacher's k most likely tokens, each renormalised
there. Renormalising the teacher's stored log-probs at temperature T gives exactly
softmax(z_t / T) restricted to those tokens, so a teacher cache of top-k log-probs (taken at T = 1)
serves every temperature, and k = vocabulary size is the full loss.

``chunked_kd_and_ce`` computes the student's logits chunk by chunk from its last hidden states (and
recomputes them in the backward pass), so only one chunk of vocabulary-sized logits is alive at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

__all__ = [
    "KDSums",
    "chunked_kd_and_ce",
    "divergence",
    "forward_kl",
    "generalized_jsd",
    "head_logits",
    "reverse_kl",
    "teacher_targets",
    "token_divergence",
]

# (start, end) -> teacher log-probs at T=1 of the response tokens start:end, and their vocabulary ids
# (None: the whole vocabulary, in order)
TeacherChunk = Callable[[int, int], tuple[torch.Tensor, torch.Tensor | None]]


def forward_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) over the last dimension, from log-probabilities."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def reverse_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(Q || P) over the last dimension, from log-probabilities."""
    return forward_kl(log_q, log_p)


def generalized_jsd(log_p: torch.Tensor, log_q: torch.Tensor, beta: float) -> torch.Tensor:
    """beta KL(P || M) + (1 - beta) KL(Q || M) with M = beta P + (1 - beta) Q (GKD, eq. 1)."""
    log_m = torch.logsumexp(torch.stack([log_p + math.log(beta), log_q + math.log(1 - beta)]), dim=0)
    return beta * forward_kl(log_p, log_m) + (1 - beta) * forward_kl(log_q, log_m)


def divergence(log_p: torch.Tensor, log_q: torch.Tensor, kind: str, beta: float = 0.5) -> torch.Tensor:
    """The divergence ``kind`` (forward_kl, reverse_kl, jsd) between teacher P and student Q."""
    if kind == "forward_kl":
        return forward_kl(log_p, log_q)
    if kind == "reverse_kl":
        return reverse_kl(log_p, log_q)
    if kind == "jsd":
        return generalized_jsd(log_p, log_q, beta)
    raise ValueError(f"unknown kd_loss {kind!r}")


def teacher_targets(
    teacher_logits: torch.Tensor, topk: int | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The teacher's log-probs at T = 1, and (with ``topk``) only its k most likely tokens with their ids."""
    log_probs = F.log_softmax(teacher_logits.float(), dim=-1)
    if topk is None or topk >= log_probs.shape[-1]:
        return log_probs, None
    values, ids = log_probs.topk(topk, dim=-1)
    return values, ids


def token_divergence(
    student_logits: torch.Tensor,
    teacher_log_probs: torch.Tensor,
    teacher_ids: torch.Tensor | None,
    *,
    kind: str,
    temperature: float = 1.0,
    beta: float = 0.5,
) -> torch.Tensor:
    """T^2 x divergence per token between the softened teacher and student distributions.

    ``teacher_ids`` (N, k) restricts both to the teacher's top-k tokens (each renormalised there);
    None compares the whole vocabulary of ``teacher_log_probs`` (N, V) with the student's first V logits.
    """
    if teacher_ids is not None:
        student = student_logits.gather(-1, teacher_ids)
    else:
        student = student_logits[..., : teacher_log_probs.shape[-1]]
    log_p = F.log_softmax(teacher_log_probs.float() / temperature, dim=-1)
    log_q = F.log_softmax(student.float() / temperature, dim=-1)
    return divergence(log_p, log_q, kind, beta) * temperature**2


def head_logits(head: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """fp32 logits of ``hidden`` through an output head whose weights may be stored in bf16/fp16."""
    return head(hidden.to(head.weight.dtype)).float()


@dataclass
class KDSums:
    """Sums over the response tokens of a batch (divide by the token count for means)."""

    kd: torch.Tensor
    ce: torch.Tensor
    agree: torch.Tensor  # tokens where the student's and the teacher's most likely token are the same
    n_tokens: int


def chunked_kd_and_ce(
    hidden: torch.Tensor,
    head: torch.nn.Module,
    labels: torch.Tensor,
    teacher: TeacherChunk,
    *,
    kind: str,
    temperature: float,
    beta: float,
    chunk_tokens: int,
) -> KDSums:
    """Summed KD loss, cross-entropy and top-1 agreement over response tokens, ``chunk_tokens`` at a time.

    ``hidden`` (N, H) are the student's last hidden states at the N response positions, ``labels`` (N,)
    the next tokens there; ``head`` maps hidden states to logits (the student's lm_head). Each chunk's
    logits are recomputed in the backward pass (activation checkpointing), so memory holds one chunk
    of (chunk_tokens x vocabulary) logits for the student and one for the teacher.
    """
    kd_sum = hidden.new_zeros((), dtype=torch.float32)
    ce_sum = hidden.new_zeros((), dtype=torch.float32)
    agree = hidden.new_zeros((), dtype=torch.float32)
    n = hidden.shape[0]

    def chunk_loss(
        h: torch.Tensor, y: torch.Tensor, t_log_probs: torch.Tensor, t_ids: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits = head_logits(head, h)
        ce = F.cross_entropy(logits, y, reduction="sum")
        kd = token_divergence(logits, t_log_probs, t_ids, kind=kind, temperature=temperature, beta=beta).sum()
        # top-k ids come sorted: the teacher's most likely token is the first
        teacher_top = t_log_probs.argmax(-1) if t_ids is None else t_ids[:, 0]
        same = (logits.argmax(-1) == teacher_top).float().sum()
        return kd, ce, same

    for start in range(0, n, chunk_tokens):
        end = min(start + chunk_tokens, n)
        t_log_probs, t_ids = teacher(start, end)
        args = (hidden[start:end], labels[start:end], t_log_probs, t_ids)
        if torch.is_grad_enabled() and hidden.requires_grad:
            kd, ce, same = checkpoint(chunk_loss, *args, use_reentrant=False)
        else:
            kd, ce, same = chunk_loss(*args)
        kd_sum, ce_sum, agree = kd_sum + kd, ce_sum + ce, agree + same.detach()
    return KDSums(kd=kd_sum, ce=ce_sum, agree=agree, n_tokens=n)
