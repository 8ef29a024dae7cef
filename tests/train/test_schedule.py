"""Learning-rate schedules: closed-form curves with warm-up, step decay, reduce-on-plateau, resume."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerControl, TrainerState

from tunelab.config import config_from_dict
from tunelab.config.schema import TrainingArgs
from tunelab.errors import ConfigError
from tunelab.runs import RunDir
from tunelab.train import train
from tunelab.train.schedule import (
    PlateauCallback,
    WarmupPlateauLR,
    build_scheduler,
    resolve_step_size,
    resolve_warmup_steps,
)

LR = 1e-2
N = 100


def _optimizer(lr: float = LR, n_groups: int = 1, ratio: float = 16.0) -> torch.optim.Optimizer:
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": lr * ratio**i} for i in range(n_groups)]
    return torch.optim.SGD(groups, lr=lr)


def _curve(scheduler: Any, n_steps: int = N) -> list[float]:
    """The learning rate each of ``n_steps`` optimizer steps uses (index = steps already taken)."""
    rates = [scheduler.get_last_lr()[0]]
    for _ in range(n_steps - 1):
        scheduler.optimizer.step()
        scheduler.step()
        rates.append(scheduler.get_last_lr()[0])
    return rates


def _warm(s: int, w: int, after: Callable[[int], float]) -> float:
    return LR * s / w if s < w else LR * after(s)


W = 10
P = lambda s: (s - W) / (N - W)  # noqa: E731  progress after warm-up
CASES: dict[str, tuple[dict[str, Any], Callable[[int], float]]] = {
    "constant": ({}, lambda s: _warm(s, W, lambda _: 1.0)),
    "constant_with_warmup": ({}, lambda s: _warm(s, W, lambda _: 1.0)),
    "linear": ({}, lambda s: _warm(s, W, lambda s: 1 - P(s))),
    "cosine": ({}, lambda s: _warm(s, W, lambda s: 0.5 * (1 + math.cos(math.pi * P(s))))),
    "cosine_with_restarts": (
        {"num_cycles": 2},
        lambda s: _warm(s, W, lambda s: 0.5 * (1 + math.cos(math.pi * ((2 * P(s)) % 1.0)))),
    ),
    "polynomial": (
        {"lr_power": 2.0, "lr_end": 1e-4},
        lambda s: _warm(s, W, lambda s: ((LR - 1e-4) * (1 - P(s)) ** 2 + 1e-4) / LR),
    ),
    "inverse_sqrt": ({}, lambda s: _warm(s, W, lambda s: math.sqrt(W / s))),
    # default step_size: ceil((100 - 10) / 3) = 30
    "step": ({"step_gamma": 0.5}, lambda s: _warm(s, W, lambda s: 0.5 ** ((s - W) // 30))),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_schedule_matches_closed_form(kind: str) -> None:
    extra, expected = CASES[kind]
    training = TrainingArgs(lr_scheduler_type=kind, learning_rate=LR, warmup_steps=W, **extra)
    rates = _curve(build_scheduler(_optimizer(), training, N))
    for s in (0, 1, 5, 9, 10, 11, 29, 39, 40, 54, 55, 69, 70, 77, 99):
        assert rates[s] == pytest.approx(expected(s), rel=1e-9, abs=1e-12), (kind, s)
    assert rates[0] == 0.0 and max(rates) == pytest.approx(LR)


def test_warmup_from_ratio_rounds_up_and_steps_win() -> None:
    assert resolve_warmup_steps(TrainingArgs(warmup_ratio=0.101), 100) == 11
    assert resolve_warmup_steps(TrainingArgs(warmup_ratio=0.1, warmup_steps=3), 100) == 3
    assert resolve_warmup_steps(TrainingArgs(), 100) == 0
    training = TrainingArgs(lr_scheduler_type="linear", learning_rate=LR, warmup_ratio=0.101)
    rates = _curve(build_scheduler(_optimizer(), training, N))
    assert rates[10] == pytest.approx(LR * 10 / 11) and rates[11] == pytest.approx(LR)


def test_step_schedule_sizes() -> None:
    assert resolve_step_size(TrainingArgs(warmup_steps=10), 100) == 30
    assert resolve_step_size(TrainingArgs(warmup_steps=9), 100) == 31  # rounded up: three levels at most
    assert resolve_step_size(TrainingArgs(step_size=7), 100) == 7
    training = TrainingArgs(lr_scheduler_type="step", learning_rate=LR, step_size=20, step_gamma=0.1)
    rates = _curve(build_scheduler(_optimizer(), training, N))  # no warm-up: starts at the peak
    assert rates[0] == rates[19] == pytest.approx(LR)
    assert rates[20] == rates[39] == pytest.approx(LR * 0.1)
    assert rates[99] == pytest.approx(LR * 1e-4)


def test_schedules_scale_every_group() -> None:
    """LoRA+ groups (different base rates) follow the same curve, each from its own rate."""
    training = TrainingArgs(lr_scheduler_type="cosine", learning_rate=LR, warmup_steps=W)
    scheduler = build_scheduler(_optimizer(n_groups=2), training, N)
    for _ in range(30):
        scheduler.optimizer.step()
        scheduler.step()
    low, high = scheduler.get_last_lr()
    assert high == pytest.approx(16 * low) and low == pytest.approx(CASES["cosine"][1](30))


def test_schedule_config_errors() -> None:
    with pytest.raises(ConfigError, match="lr_end"):
        build_scheduler(
            _optimizer(), TrainingArgs(lr_scheduler_type="polynomial", lr_end=LR, learning_rate=LR), N
        )
    with pytest.raises(ConfigError, match="eval_strategy"):
        build_scheduler(_optimizer(), TrainingArgs(lr_scheduler_type="reduce_lr_on_plateau"), N)


# reduce_lr_on_plateau ------------------------------------------------------------------------
def _plateau(optimizer: torch.optim.Optimizer | None = None, **overrides: Any) -> WarmupPlateauLR:
    values = dict(
        lr_scheduler_type="reduce_lr_on_plateau",
        learning_rate=LR,
        warmup_steps=4,
        eval_strategy="steps",
        plateau_factor=0.5,
        plateau_patience=1,
        plateau_min_lr=1e-3,
    )
    values.update(overrides)
    scheduler = build_scheduler(optimizer or _optimizer(), TrainingArgs(**values), N)
    assert isinstance(scheduler, WarmupPlateauLR)
    return scheduler


def _advance(scheduler: WarmupPlateauLR, n: int) -> None:
    for _ in range(n):
        scheduler.optimizer.step()
        scheduler.step()


def test_plateau_warms_up_then_reduces_after_patience() -> None:
    scheduler = _plateau()
    _advance(scheduler, 2)
    assert scheduler.report(5.0) is None  # during warm-up: ignored
    assert scheduler.get_last_lr()[0] == pytest.approx(LR * 2 / 4)
    _advance(scheduler, 2)
    assert scheduler.get_last_lr()[0] == pytest.approx(LR)
    assert scheduler.report(1.0) is None  # first evaluation after warm-up: the best so far
    assert scheduler.report(1.1) is None  # 1 without improvement: within patience 1
    reduction = scheduler.report(1.2)  # 2 in a row: reduce
    assert reduction is not None
    assert (reduction.old_lr, reduction.new_lr, reduction.best, reduction.n_bad) == pytest.approx(
        (LR, LR / 2, 1.0, 2)
    )
    # the optimizer sees the new rate at once, and stepping keeps it
    assert scheduler.optimizer.param_groups[0]["lr"] == pytest.approx(LR / 2)
    assert scheduler.get_last_lr()[0] == pytest.approx(LR / 2)
    _advance(scheduler, 3)
    assert scheduler.get_last_lr()[0] == pytest.approx(LR / 2)
    assert scheduler.report(0.9) is None  # improvement resets the count
    assert scheduler.report(0.95) is None
    assert scheduler.report(0.95).new_lr == pytest.approx(LR / 4)  # type: ignore[union-attr]
    for expected in (LR / 8, 1e-3):  # 1.25e-3, then the floor plateau_min_lr
        scheduler.report(0.95)
        assert scheduler.report(0.95).new_lr == pytest.approx(expected)  # type: ignore[union-attr]
    scheduler.report(0.95)
    assert scheduler.report(0.95) is None  # at the floor: nothing left to reduce
    assert scheduler.get_last_lr()[0] == pytest.approx(1e-3)


def test_plateau_patience_zero_and_higher_is_better() -> None:
    scheduler = _plateau(
        warmup_steps=0, plateau_patience=0, metric_for_best_model="eval_accuracy", plateau_min_lr=0.0
    )
    assert scheduler.report(0.5) is None
    assert scheduler.report(0.6) is None  # higher is better for accuracy
    assert scheduler.report(0.55) is not None  # first drop reduces at once with patience 0
    assert scheduler.get_last_lr()[0] == pytest.approx(LR / 2)


def test_plateau_floor_is_per_group() -> None:
    scheduler = _plateau(_optimizer(n_groups=2), warmup_steps=0, plateau_patience=0, plateau_min_lr=4e-3)
    scheduler.report(1.0)
    for _ in range(5):
        scheduler.report(2.0)
    low, high = scheduler.get_last_lr()
    assert low == pytest.approx(4e-3)  # floored
    assert high == pytest.approx(16 * LR * 0.5**5)  # the LoRA+ group kept reducing


def test_plateau_state_survives_a_checkpoint(tmp_path: Path) -> None:
    scheduler = _plateau(warmup_steps=0, plateau_patience=0)
    _advance(scheduler, 3)
    scheduler.report(1.0)
    scheduler.report(1.5)
    torch.save(scheduler.state_dict(), tmp_path / "scheduler.pt")  # as the Trainer does
    optimizer = _optimizer()
    optimizer.load_state_dict(scheduler.optimizer.state_dict())
    restored = _plateau(optimizer, warmup_steps=0, plateau_patience=0)
    restored.load_state_dict(torch.load(tmp_path / "scheduler.pt", weights_only=True))
    _advance(restored, 1)
    assert restored.get_last_lr()[0] == pytest.approx(LR / 2)
    assert (restored.best, restored.n_bad, restored.last_epoch) == (1.0, 0, 4)
    assert restored.report(1.2) is not None  # the best value came back too
    assert restored.get_last_lr()[0] == pytest.approx(LR / 4)


def test_plateau_callback_reports_and_records_events(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    scheduler = _plateau(warmup_steps=0, plateau_patience=0)
    callback = PlateauCallback("loss", run)  # "loss" means eval_loss, as in transformers
    control = TrainerControl()
    for step, value in ((5, 2.0), (10, 2.5), (15, 1.0)):
        state = TrainerState(global_step=step, max_steps=20)
        callback.on_evaluate(None, state, control, metrics={"eval_loss": value}, lr_scheduler=scheduler)  # type: ignore[arg-type]
    # the evaluation at the last step changes nothing: no step would use the rate
    callback.on_evaluate(
        None,  # type: ignore[arg-type]
        TrainerState(global_step=20, max_steps=20),
        control,
        metrics={"eval_loss": 9.0},
        lr_scheduler=scheduler,
    )
    events = run.read_events()
    assert [(e["kind"], e["step"]) for e in events] == [("lr_reduced", 10)]
    assert events[0]["old_lr"] == pytest.approx(LR) and events[0]["new_lr"] == pytest.approx(LR / 2)
    assert events[0]["metric"] == "eval_loss" and events[0]["best"] == 2.0
    assert scheduler.get_last_lr()[0] == pytest.approx(LR / 2)
    with pytest.raises(ConfigError, match="metric_for_best_model=eval_bleu"):
        PlateauCallback("bleu").on_evaluate(
            None,  # type: ignore[arg-type]
            TrainerState(global_step=1, max_steps=20),
            control,
            metrics={"eval_loss": 1.0},
            lr_scheduler=scheduler,
        )


# end to end ----------------------------------------------------------------------------------
def _config(model_dir: Path, out: Path, **overrides: Any):
    values = {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "finetuning_type": "lora",
        "dataset": "instruct_en",
        "dataset_dir": "builtin",
        "template": "chatml",
        "cutoff_len": 64,
        "per_device_train_batch_size": 4,
        "learning_rate": 5e-3,
        "max_steps": 16,
        "logging_steps": 1,
        "save_steps": 100,
        "output_dir": str(out),
        "compute_type": "fp32",
        "disable_tqdm": True,
        "health": {"enabled": False},  # its interventions would change the curves under test
    }
    values.update(overrides)
    return config_from_dict(values)


def _logged_rates(run: RunDir) -> dict[int, float]:
    return {row["current_steps"]: row["learning_rate"] for row in run.read_log() if "learning_rate" in row}


def test_train_with_step_schedule(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = _config(
        tiny_model_dir, tmp_path / "run", lr_scheduler_type="step", warmup_steps=4, step_gamma=0.5
    )
    train(config)
    run = RunDir(tmp_path / "run")
    rates = _logged_rates(run)
    assert sorted(rates) == list(range(1, 17))
    # the row of step k shows the rate step k used (k - 1 steps taken): warm-up 4, then 4 steps per level
    for step, rate in rates.items():
        s = step - 1
        expected = 5e-3 * s / 4 if s < 4 else 5e-3 * 0.5 ** ((s - 4) // 4)
        assert rate == pytest.approx(expected), step
    assert (run.plots_dir / "lr.png").is_file()


# Higher-is-better eval_loss makes every falling evaluation a "no improvement", so reductions are
# predictable without depending on how the tiny model's loss happens to move.
PLATEAU = dict(
    lr_scheduler_type="reduce_lr_on_plateau",
    warmup_steps=4,
    val_size=0.1,
    eval_strategy="steps",
    eval_steps=4,
    greater_is_better=True,
    plateau_patience=0,
    plateau_factor=0.5,
)


def _check_plateau_curve(run: RunDir) -> list[dict[str, Any]]:
    """Each logged rate is the peak halved once per lr_reduced event before it; returns the events."""
    events = run.read_events()
    resumes = [i for i, e in enumerate(events) if e["kind"] == "resume"]
    if resumes:  # a resumed run replays the steps after its checkpoint: keep the events that count
        cut, step = resumes[-1], events[resumes[-1]]["step"]
        events = [e for e in events[:cut] if e.get("step", 0) <= step] + events[cut:]
    events = [e for e in events if e["kind"] == "lr_reduced"]
    for step, rate in _logged_rates(run).items():
        n_before = sum(1 for e in events if e["step"] < step)
        expected = 5e-3 * min(1.0, (step - 1) / 4) * 0.5**n_before
        assert rate == pytest.approx(expected), (step, events)
    return events


def test_train_with_plateau_schedule_and_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(_config(tiny_model_dir, out, save_steps=8, **PLATEAU))
    run = RunDir(out)
    events = _check_plateau_curve(run)
    # evaluations at 4 (first after warm-up: the reference), 8 and 12; the one at the last step is skipped
    assert {e["step"] for e in events} <= {8, 12} and 8 in {e["step"] for e in events}
    assert (run.plots_dir / "lr.png").is_file()
    first_log = _logged_rates(run)
    assert first_log[9] == pytest.approx(5e-3 / 2)

    state = torch.load(out / "checkpoint-8" / "scheduler.pt", weights_only=True)
    assert state["scale"] == 0.5  # the checkpoint holds the reduced rate...
    train(
        _config(
            tiny_model_dir, out, save_steps=8, resume_from_checkpoint=str(out / "checkpoint-8"), **PLATEAU
        )
    )
    resumed = _logged_rates(run)
    assert resumed[9] == pytest.approx(5e-3 / 2)  # ...and the resumed run continues from it
    assert _check_plateau_curve(run)
