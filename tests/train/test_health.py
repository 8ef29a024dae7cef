"""Health rules on synthetic histories: each fires on a history built to trigger it, none on a healthy run."""

from __future__ import annotations

import math
import random

import pytest

from tunelab.config.control import HealthArgs
from tunelab.train.health import (
    EvalPoint,
    Finding,
    HealthHistory,
    LogPoint,
    check_grad_norm,
    check_nonfinite,
    check_oscillation,
    check_overfitting,
    check_spike,
    check_stagnation,
    check_update_ratio,
    decide,
)
from tunelab.train.messages import HEALTH_TEXTS, describe_action, describe_health, format_lr, suggest_lr

# trainer_log.jsonl of `tunelab train examples/sft_lora_tiny.yaml` (step, loss, grad_norm, lr) and its
# evaluations: a real healthy run, the history no rule may fire on.
EXAMPLE_RUN = [
    (5, 7.679, 5.975, 1.33e-3),
    (10, 6.569, 3.503, 1.98e-3),
    (15, 6.324, 3.495, 1.85e-3),
    (20, 5.983, 1.309, 1.62e-3),
    (25, 5.831, 1.560, 1.31e-3),
    (30, 5.582, 1.940, 9.65e-4),
    (35, 5.722, 1.483, 6.25e-4),
    (40, 5.353, 1.353, 3.31e-4),
    (45, 5.648, 1.609, 1.17e-4),
    (50, 5.638, 2.055, 9.73e-6),
]
EXAMPLE_EVALS = {20: 5.864, 40: 5.590}


def feed(
    history: HealthHistory, points: list[LogPoint], evals: dict[int, float] | None = None
) -> list[Finding]:
    found: list[Finding] = []
    for point in points:
        found += history.add_train(point)
        if evals and point.step in evals:
            found += history.add_eval(point.step, evals[point.step])
    return found


def synthetic_healthy_run(n: int = 200, seed: int = 0) -> tuple[list[LogPoint], dict[int, float]]:
    """Loss decaying towards a floor with batch noise, moderate gradients, normal update sizes."""
    rng = random.Random(seed)
    points = []
    for i in range(1, n + 1):
        loss = 1.2 + 2.0 * math.exp(-i / 40) + rng.gauss(0, 0.03)
        lr = 2e-4 * min(1.0, i / 10) * (0.5 + 0.5 * math.cos(math.pi * i / n))
        points.append(LogPoint(i * 10, loss, abs(rng.gauss(1.5, 0.4)), lr, 2e-3 * (lr / 2e-4) + 1e-5, True))
    evals = {i * 10: 1.3 + 2.0 * math.exp(-i / 40) for i in range(20, n + 1, 20)}
    return points, evals


def test_no_rule_fires_on_healthy_runs() -> None:
    real = [LogPoint(s, loss, g, lr) for s, loss, g, lr in EXAMPLE_RUN]
    assert feed(HealthHistory(HealthArgs()), real, EXAMPLE_EVALS) == []
    points, evals = synthetic_healthy_run()
    assert feed(HealthHistory(HealthArgs()), points, evals) == []


def test_nonfinite_loss_gradient_and_weights() -> None:
    assert check_nonfinite(LogPoint(1, float("nan"), 1.0)) is not None
    assert check_nonfinite(LogPoint(1, 2.0, float("inf"))) is not None  # weights unknown: counts
    assert check_nonfinite(LogPoint(1, 2.0, 1.0, weights_finite=False)) is not None
    # fp16 loss scaling: an infinite gradient norm with intact weights is a skipped step, not a problem
    assert check_nonfinite(LogPoint(1, 2.0, float("inf"), weights_finite=True)) is None
    assert check_nonfinite(LogPoint(1, 2.0, 1.0, weights_finite=True)) is None
    found = HealthHistory(HealthArgs()).add_train(LogPoint(7, float("inf"), float("nan"), 1e-4))
    assert [f.rule for f in found] == ["nonfinite"] and found[0].step == 7


def test_update_ratio_flags_divergence() -> None:
    assert check_update_ratio(LogPoint(5, 8.0, update_ratio=17.0), alarm=1.0) == {
        "update_ratio": 17.0,
        "alarm": 1.0,
    }
    assert check_update_ratio(LogPoint(5, 8.0, update_ratio=0.03), alarm=1.0) is None
    assert check_update_ratio(LogPoint(5, 8.0), alarm=1.0) is None


def test_grad_norm_needs_consecutive_log_steps() -> None:
    assert check_grad_norm([1.0, 12.0, 15.0, 40.0], alarm=10, consecutive=3) is not None
    assert check_grad_norm([12.0, 15.0, 2.0, 40.0], alarm=10, consecutive=3) is None
    assert check_grad_norm([12.0, None, 40.0], alarm=10, consecutive=3) is None
    history = HealthHistory(HealthArgs())
    rules = [[f.rule for f in history.add_train(LogPoint(s, 3.0, 20.0))] for s in (1, 2, 3)]
    assert rules == [[], [], ["grad_norm"]]


def test_spike_against_recent_average() -> None:
    found = check_spike([2.0, 1.9, 1.85, 1.8, 7.0], factor=3, window=10)
    assert found is not None and found["ratio"] == pytest.approx(7.0 / 1.8875)
    assert check_spike([2.0, 1.9, 1.85, 1.8, 4.0], factor=3, window=10) is None
    assert check_spike([2.0, 9.0], factor=3, window=10) is None  # too little history


def losses_to_points(losses: list[float], update_ratio: float | None = None) -> list[LogPoint]:
    return [LogPoint(i, y, 1.0, 1e-4, update_ratio) for i, y in enumerate(losses, start=1)]


def test_oscillation_against_trend() -> None:
    def check(losses: list[float], update_ratio: float | None = None) -> dict | None:
        points = losses_to_points(losses, update_ratio)
        return check_oscillation(points, window=10, ratio=0.5, min_spread=0.05, min_update_ratio=1e-6)

    bouncing = [2.0 + (0.8 if i % 2 else -0.8) for i in range(10)]
    found = check(bouncing)
    assert found is not None and found["spread"] > 0.5 and found["trend_from"] == pytest.approx(2.0, abs=0.3)
    assert check(bouncing, update_ratio=1e-9) is None  # frozen weights: batch noise, not the LR
    falling_noisily = [3.0 - 0.2 * i + (0.05 if i % 2 else -0.05) for i in range(10)]
    assert check(falling_noisily) is None
    converged = [1.2 + (0.01 if i % 2 else -0.01) for i in range(10)]  # flat trend, tiny batch noise
    assert check(converged) is None


def test_stagnation_flat_loss_and_frozen_weights() -> None:
    flat = [LogPoint(i, 2.302585, 0.0, 1e-4) for i in range(1, 11)]
    found = check_stagnation(flat, window=10, rel_change=1e-4, min_update_ratio=1e-6, peak_lr=1e-4)
    assert found is not None and found["kind"] == "flat_loss"
    noisy = [2.3 + (0.02 if i % 2 else -0.02) for i in range(10)]
    frozen = [LogPoint(i, y, 1.0, 1e-9, 2e-9) for i, y in enumerate(noisy)]
    found = check_stagnation(frozen, window=10, rel_change=1e-4, min_update_ratio=1e-6, peak_lr=1e-9)
    assert found is not None and found["kind"] == "frozen_weights"
    moving = [LogPoint(i, y, 1.0, 1e-4, 1e-3) for i, y in enumerate(noisy)]
    assert check_stagnation(moving, window=10, rel_change=1e-4, min_update_ratio=1e-6, peak_lr=1e-4) is None
    # tiny updates while the schedule holds the LR low (warm-up, end of decay) are intended
    decayed = [LogPoint(i, y, 1.0, 1e-7, 1e-9) for i, y in enumerate(noisy)]
    assert check_stagnation(decayed, window=10, rel_change=1e-4, min_update_ratio=1e-6, peak_lr=1e-4) is None


def test_overfitting_needs_rising_eval_and_falling_train() -> None:
    rising = [
        EvalPoint(10, 2.0, 2.5),
        EvalPoint(20, 2.1, 2.0),
        EvalPoint(30, 2.2, 1.6),
        EvalPoint(40, 2.4, 1.2),
    ]
    found = check_overfitting(rising, n=3)
    assert found is not None and found["eval_losses"] == [2.0, 2.1, 2.2, 2.4]
    assert check_overfitting(rising, n=4) is None  # not enough evaluations yet
    both_rising = [EvalPoint(e.step, e.eval_loss, 3.0 - e.train_loss) for e in rising]
    assert check_overfitting(both_rising, n=3) is None  # train loss rising too: not overfitting
    dip = [*rising[:2], EvalPoint(30, 2.05, 1.6), rising[3]]
    assert check_overfitting(dip, n=3) is None

    history = HealthHistory(HealthArgs(overfit_evals=2))
    found = feed(
        history,
        [LogPoint(s, loss) for s, loss in [(5, 2.5), (10, 2.3), (15, 1.9), (20, 1.7), (25, 1.4), (30, 1.2)]],
        {10: 2.0, 20: 2.1, 30: 2.3},
    )
    assert [(f.rule, f.step) for f in found] == [("overfitting", 30)]
    assert found[0].numbers["train_first"] == pytest.approx(2.4)
    assert found[0].numbers["train_last"] == pytest.approx(1.3)


def test_off_switches_a_rule_off_and_quiet_waits_for_fresh_evidence() -> None:
    off = HealthHistory(HealthArgs(grad_norm_action="off", nonfinite_action="off"))
    assert feed(off, [LogPoint(s, float("nan"), 50.0) for s in range(1, 6)]) == []
    history = HealthHistory(HealthArgs())
    for step in (1, 2, 3):
        found = history.add_train(LogPoint(step, 3.0, 20.0))
    assert [f.rule for f in found] == ["grad_norm"]
    history.quiet(["grad_norm"], 3)
    assert history.add_train(LogPoint(4, 3.0, 20.0)) == []  # one fresh point is not three in a row
    assert history.add_train(LogPoint(5, 3.0, 20.0)) == []
    assert [f.rule for f in history.add_train(LogPoint(6, 3.0, 20.0))] == ["grad_norm"]


def test_decide_takes_the_most_severe_action_and_escalates() -> None:
    actions = HealthArgs().rule_actions()
    nan, spike = Finding("nonfinite", 5), Finding("spike", 5)
    decision = decide([spike, nan], actions, interventions=0, max_interventions=3)
    assert decision is not None and decision.action == "rollback" and decision.finding is nan
    assert decision.others == (spike,) and not decision.escalated
    spent = decide([nan], actions, interventions=3, max_interventions=3)
    assert spent is not None and spent.action == "stop" and spent.escalated
    assert decide([spike], {**actions, "spike": "off"}, interventions=0, max_interventions=3) is None


def test_messages_name_cause_fix_and_action_in_both_languages() -> None:
    samples = {
        "nonfinite": {"loss": float("nan"), "grad_norm": float("nan"), "weights_finite": False},
        "update_ratio": {"update_ratio": 17.0, "alarm": 1.0},
        "grad_norm": {"grad_norms": [12.0, 15.0, 40.0], "alarm": 10.0, "consecutive": 3, "max_grad_norm": 0},
        "spike": {"loss": 7.0, "average": 1.9, "ratio": 3.7, "factor": 3.0},
        "oscillation": {"spread": 0.8, "drop": 0.1, "trend_from": 2.1, "trend_to": 2.0, "window": 10},
        "stagnation": {
            "kind": "frozen_weights",
            "update_ratio": 2e-9,
            "first": 2.3,
            "last": 2.3,
            "window": 10,
        },
        "overfitting": {"eval_losses": [2.0, 2.1, 2.2], "train_first": 2.4, "train_last": 1.3, "evals": 2},
    }
    assert set(samples) == set(HEALTH_TEXTS)
    for rule, numbers in samples.items():
        en = describe_health(rule, 30, numbers, learning_rate=2e-4)
        zh = describe_health(rule, 30, numbers, learning_rate=2e-4, lang="zh")
        if rule != "overfitting":  # the only cause that is not the learning rate itself
            assert "2e-4" in en and "2e-4" in zh, rule
        assert "30" in en and "30" in zh, rule
        assert f"learning_rate={format_lr(suggest_lr(rule, numbers, 2e-4))}" in en, rule
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh) and en != zh, rule
    assert "max_grad_norm=0" in describe_health("grad_norm", 3, samples["grad_norm"], learning_rate=1e-4)
    # a diverging run's suggestion comes from the measured update size, not a fixed factor
    assert suggest_lr("update_ratio", {"update_ratio": 17.0}, 5.0) == 3e-3
    assert suggest_lr("stagnation", {"kind": "frozen_weights", "update_ratio": 1.2e-8}, 1e-9) == 8e-4
    assert suggest_lr("stagnation", {"kind": "flat_loss"}, 1e-9) == 1e-8
    assert "1e-4..5e-4" in describe_health("grad_norm", 3, samples["grad_norm"], learning_rate=5.0)
    assert describe_action("halve_lr", old=2e-4, new=1e-4) == "Action: learning rate halved, 2e-4 -> 1e-4."
    stop = describe_action("stop", "zh", checkpoint="runs/x/checkpoint-5", restored=0)
    assert "runs/x/checkpoint-5" in stop and "第 0 步" in stop
    escalated = describe_action("stop", checkpoint="c", escalated=True, n=3, limit=3)
    assert "max_interventions=3" in escalated


def test_format_lr() -> None:
    assert [format_lr(x) for x in (2e-4, 2.5e-3, 5e-3, 5.0, 0.5, 1e-9, 0.0)] == [
        "2e-4",
        "2.5e-3",
        "5e-3",
        "5",
        "0.5",
        "1e-9",
        "0",
    ]
