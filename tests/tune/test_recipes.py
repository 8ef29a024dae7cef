"""The advise rule table: each lookup returns the published value it cites."""

from __future__ import annotations

import pytest

from tunelab.tune import recipes


def test_lr_bands_by_task_and_method() -> None:
    assert (
        recipes.lr_range("classification", "full").low,
        recipes.lr_range("classification", "full").high,
    ) == (1e-5, 3e-5)
    assert (recipes.lr_range("dialogue", "full").low, recipes.lr_range("dialogue", "full").high) == (
        2e-5,
        5e-5,
    )
    assert (recipes.lr_range("code", "full").low, recipes.lr_range("code", "full").high) == (5e-5, 1e-4)
    lora = recipes.lr_range("instruction", "lora")
    assert (lora.low, lora.high, lora.ref_batch) == (1e-4, 2e-4, 16)  # QLoRA
    for task in recipes.TASKS:  # LoRA always sits above full fine-tuning; freeze uses the full bands
        assert recipes.lr_range(task, "lora").high > recipes.lr_range(task, "full").high
        assert recipes.lr_range(task, "freeze") == recipes.lr_range(task, "full")


@pytest.mark.parametrize(
    ("task", "warmup", "schedule"),
    [
        ("classification", 0.06, "linear"),
        ("dialogue", 0.08, "cosine"),
        ("code", 0.10, "linear"),
        ("instruction", 0.03, "cosine"),
    ],
)
def test_warmup_and_schedule_by_task(task: str, warmup: float, schedule: str) -> None:
    assert recipes.warmup_for(task) == warmup
    assert recipes.schedule_for(task) == schedule


def test_data_size_rules() -> None:
    assert [recipes.lora_rank_for(n) for n in (100, 9_999, 10_000, 10**6)] == [8, 8, 16, 16]
    assert [recipes.epochs_for(n) for n in (500, 5_000, 50_000, 500_000)] == [5, 3, 2, 1]
    assert [recipes.base_effective_batch(n) for n in (500, 5_000, 50_000, 500_000)] == [8, 16, 32, 64]
    assert recipes.lora_dropout_for(7e9) == 0.1 and recipes.lora_dropout_for(65e9) == 0.05
    assert recipes.weight_decay_for("lora") == 0.01 and recipes.weight_decay_for("full") == 0.1


def test_model_size_rules() -> None:
    assert recipes.position_in_band(0.5e9) == 0.0 and recipes.position_in_band(7e10) == 1.0
    assert 0 < recipes.position_in_band(7e9) < 1
    assert recipes.model_size_factor(7e9) == 1.0
    assert recipes.model_size_factor(1e3) == 10.0  # capped
    assert recipes.model_size_factor(135e6) == pytest.approx((1e9 / 135e6) ** 0.35)


def test_stage_implies_task() -> None:
    assert recipes.task_for_stage("sft") == "instruction"
    assert recipes.task_for_stage("dpo") == "preference"
    assert recipes.task_for_stage("cls") == "classification"
