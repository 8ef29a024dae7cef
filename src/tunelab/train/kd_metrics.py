"""Stage kd's evaluation metrics from per-sample sums, whatever the number of processes.

Each metric is a ratio of sums over the response tokens of the evaluation split (KD loss per token,
cross-entropy per token, agreement per token), so several processes must add their sums before
dividing: an average of per-rank averages weighs a rank with few tokens like one with many.
Sums are kept per evaluated sample because under several processes the last evaluation batch is
filled up with samples from the start of the split (accelerate's ``even_batches``, which keeps the
ranks stepping together); counting each sample once makes the 2-process figures those of 1 process.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

__all__ = ["SAMPLE_FIELDS", "kd_eval_metrics", "merge_sample_sums"]

# what each evaluated sample contributes: summed KD loss, summed student cross-entropy, tokens where
# student and teacher agree on the most likely token, response tokens, summed teacher cross-entropy
SAMPLE_FIELDS = ("kd", "ce", "agree", "n", "teacher_nll")


def merge_sample_sums(per_rank: Sequence[Mapping[Hashable, Sequence[float]]]) -> dict[str, float]:
    """Totals of the per-sample sums every rank recorded ({sample key: SAMPLE_FIELDS values}), each sample once."""
    unique: dict[Hashable, Sequence[float]] = {}
    for samples in per_rank:
        for key, values in samples.items():
            unique.setdefault(key, values)  # a repeated sample has the same values: the first copy counts
    totals = dict.fromkeys(SAMPLE_FIELDS, 0.0)
    for values in unique.values():
        for name, value in zip(SAMPLE_FIELDS, values):
            totals[name] += float(value)
    return totals


def kd_eval_metrics(totals: Mapping[str, float]) -> dict[str, float]:
    """Per-token means of ``totals`` (from :func:`merge_sample_sums`), and both perplexities; {} without tokens."""
    n = totals["n"]
    if n <= 0:
        return {}
    means = {
        "kd_loss": totals["kd"] / n,
        "ce_loss": totals["ce"] / n,
        "top1_agreement": totals["agree"] / n,
        "teacher_ce_loss": totals["teacher_nll"] / n,
    }
    means["perplexity"] = math.exp(min(means["ce_loss"], 50.0))
    means["teacher_perplexity"] = math.exp(min(means["teacher_ce_loss"], 50.0))
    return means
