"""Stage kd's evaluation metrics over several processes: ratios of sums, each sample counted once."""

from __future__ import annotations

import math

import pytest

from tunelab.train.kd_metrics import kd_eval_metrics, merge_sample_sums


def test_metrics_are_token_weighted_over_all_ranks_and_a_repeated_sample_counts_once() -> None:
    # (kd, ce, agree, n tokens, teacher nll) per sample; rank 1 has far fewer tokens, and its last
    # batch was filled up with sample 0 again (accelerate's even_batches)
    rank0 = {0: (2.0, 4.0, 1.0, 2, 1.0), 1: (30.0, 20.0, 9.0, 10, 5.0)}
    rank1 = {2: (0.5, 3.0, 1.0, 1, 2.0), 0: (2.0, 4.0, 1.0, 2, 1.0)}
    totals = merge_sample_sums([rank0, rank1])
    assert totals == {"kd": 32.5, "ce": 27.0, "agree": 11.0, "n": 13.0, "teacher_nll": 8.0}
    metrics = kd_eval_metrics(totals)
    assert metrics["kd_loss"] == pytest.approx(32.5 / 13)
    assert metrics["ce_loss"] == pytest.approx(27.0 / 13)
    assert metrics["top1_agreement"] == pytest.approx(11 / 13)
    assert metrics["teacher_ce_loss"] == pytest.approx(8 / 13)
    assert metrics["perplexity"] == pytest.approx(math.exp(27 / 13))
    assert metrics["teacher_perplexity"] == pytest.approx(math.exp(8 / 13))
    # what averaging the per-rank averages would have said (rank 1 weighed like rank 0): not this
    per_rank_mean = (32 / 12 + 2.5 / 3) / 2
    assert abs(metrics["kd_loss"] - per_rank_mean) > 0.5


def test_one_process_is_the_plain_ratio_and_no_tokens_give_no_metrics() -> None:
    totals = merge_sample_sums([{0: (1.0, 2.0, 3.0, 4, 0.0), 1: (1.0, 2.0, 1.0, 4, 8.0)}])
    assert kd_eval_metrics(totals)["top1_agreement"] == pytest.approx(0.5)
    assert kd_eval_metrics(totals)["teacher_ce_loss"] == pytest.approx(1.0)
    assert kd_eval_metrics(merge_sample_sums([{}, {}])) == {}
