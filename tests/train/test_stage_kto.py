"""Stage kto: unpaired desirable/undesirable answers; the loss falls and the reward margin opens."""

from __future__ import annotations

import math
from pathlib import Path

from tunelab.runs import RunDir
from tunelab.train import train
from tunelab.train.stages.kto import add_kl_completions

KTO_METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "kl")


def test_kto_loss_falls_and_desirable_rewards_pull_ahead(
    tiny_model_dir: Path, tmp_path: Path, pref_config
) -> None:
    config = pref_config(
        tiny_model_dir,
        tmp_path / "kto",
        stage="kto",
        dataset="kto_polite_en",
        max_steps=12,
        kto_rejected_weight=1.3,  # ~60% of the answers are desirable
        val_size=0.1,
        eval_strategy="steps",
        eval_steps=12,
    )
    result = train(config)
    rows = [row for row in RunDir(result.run_dir).read_log() if "loss" in row]
    assert all(math.isfinite(row[key]) for row in rows for key in ("loss", *KTO_METRICS) if key in row)
    assert rows[0]["rewards/margins"] == 0.0  # before the first update the policy is its reference
    early, late = rows[:3], rows[-3:]
    assert sum(r["loss"] for r in late) < sum(r["loss"] for r in early)
    assert sum(r["rewards/margins"] for r in late) / len(late) > 0.05
    assert result.metrics["eval_rewards/margins"] > 0 and "eval_kl" in result.metrics
    assert result.metrics["data_n_desirable"] > 0


def test_kl_sample_pairs_each_prompt_with_another_response() -> None:
    from datasets import Dataset

    data = Dataset.from_dict({"prompt_ids": [[1], [2], [3]], "completion_ids": [[10], [20], [30]]})
    assert add_kl_completions(data)["KL_completion_ids"] == [[30], [10], [20]]
