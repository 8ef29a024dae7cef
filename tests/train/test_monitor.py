"""The health monitor on real (tiny) runs, and the LR/weight mechanics it acts with."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback, get_cosine_schedule_with_warmup

from tunelab.config import config_from_dict, load_config
from tunelab.runs import RunDir
from tunelab.train import train
from tunelab.train.monitor import TrainableSnapshot, WeightProbe, scale_learning_rate

EXAMPLE = Path(__file__).parents[2] / "examples" / "sft_lora_tiny.yaml"


def tiny_config(model_dir: Path, out: Path, **overrides: Any):
    """A few steps of SFT LoRA on the tiny model (the shape tests/train/test_train.py uses)."""
    values = {
        "model_name_or_path": str(model_dir),
        "stage": "sft",
        "finetuning_type": "lora",
        "dataset": "instruct_en",
        "dataset_dir": "builtin",
        "template": "chatml",
        "cutoff_len": 128,
        "per_device_train_batch_size": 8,
        "learning_rate": 5e-3,
        "logging_steps": 2,
        "output_dir": str(out),
        "compute_type": "fp32",
        "disable_tqdm": True,
        "plot_loss": False,
        **overrides,
    }
    return config_from_dict(values)


def health_events(run: RunDir) -> list[dict[str, Any]]:
    return [e for e in run.read_events() if e["kind"] == "health"]


def train_rows(run: RunDir) -> list[dict[str, Any]]:
    return [r for r in run.read_log() if "loss" in r]


# mechanics ----------------------------------------------------------------------------------------
def _cosine(lr: float = 1e-3) -> tuple[torch.optim.Optimizer, Any]:
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([param], lr=lr)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, 5, 50)


def _advance(optimizer: torch.optim.Optimizer, scheduler: Any, steps: int) -> list[float]:
    lrs = []
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_halving_scales_the_rest_of_the_schedule_and_survives_resume() -> None:
    reference, halved = _cosine(), _cosine()
    _advance(*reference, 10)
    _advance(*halved, 10)
    old, new = scale_learning_rate(*halved, 0.5)
    assert new == pytest.approx(old / 2) and halved[1].get_last_lr()[0] == pytest.approx(new)
    # what a checkpoint holds, loaded into a fresh optimizer + scheduler as the Trainer does on resume
    resumed = _cosine()
    resumed[0].load_state_dict(halved[0].state_dict())
    resumed[1].load_state_dict(halved[1].state_dict())
    expected = [lr / 2 for lr in _advance(*reference, 20)]
    assert _advance(*halved, 20) == pytest.approx(expected)
    assert _advance(*resumed, 20) == pytest.approx(expected)


def test_halving_reaches_nested_and_plateau_schedulers() -> None:
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([param], lr=1.0)
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.5, total_iters=2)
    decay = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.1)
    scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, decay], milestones=[2])
    _advance(optimizer, scheduler, 3)
    scale_learning_rate(optimizer, scheduler, 0.5)
    assert decay.base_lrs == [0.5] and _advance(optimizer, scheduler, 6)[-1] == pytest.approx(0.5 * 0.1**2)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    before = optimizer.param_groups[0]["lr"]
    assert scale_learning_rate(optimizer, plateau, 0.5) == (before, before / 2)


def test_snapshot_restores_weights_and_moments_but_keeps_the_new_lr() -> None:
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.ones(1, 4)).sum().backward()
    optimizer.step()
    snapshot = TrainableSnapshot(model, optimizer, step=1)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    moments = optimizer.state_dict()["state"][0]["exp_avg"].clone()
    probe = WeightProbe(model)
    before = probe.sample()
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    model(torch.ones(1, 4)).sum().backward()
    optimizer.step()  # NaN everywhere now
    assert probe.sample() is not None and not bool(torch.isfinite(probe.sample()).all())
    optimizer.param_groups[0]["lr"] = 5e-3
    snapshot.restore(model, optimizer)
    snapshot.restore(model, optimizer)  # a second rollback to the same copy gets the same state
    for name, param in model.named_parameters():
        assert torch.equal(param, weights[name]), name
    assert torch.equal(optimizer.state_dict()["state"][0]["exp_avg"], moments)
    assert optimizer.param_groups[0]["lr"] == 5e-3
    assert torch.equal(probe.sample(), before)


def test_monitor_rolls_back_halves_lr_and_speaks_chinese(tmp_path: Path) -> None:
    from io import StringIO
    from types import SimpleNamespace

    from rich.console import Console
    from transformers import TrainerControl, TrainerState

    from tunelab.config.control import HealthArgs
    from tunelab.train.monitor import HealthMonitor

    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = get_cosine_schedule_with_warmup(optimizer, 0, 100)
    out = StringIO()
    run = RunDir(tmp_path)
    monitor = HealthMonitor(HealthArgs(), run, learning_rate=1e-3, lang="zh", console=Console(file=out))
    args, state, control = (
        SimpleNamespace(output_dir=str(tmp_path), max_grad_norm=1.0),
        TrainerState(),
        TrainerControl(),
    )
    kw = {"model": model, "optimizer": optimizer, "lr_scheduler": scheduler}
    monitor.on_train_begin(args, state, control, **kw)
    healthy = {n: p.detach().clone() for n, p in model.named_parameters()}
    state.global_step = 2
    monitor.on_log(args, state, control, logs={"loss": 1.0, "grad_norm": 0.5, "learning_rate": 1e-3}, **kw)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    state.global_step = 4
    monitor.on_log(args, state, control, logs={"loss": 1.0, "grad_norm": float("nan")}, **kw)
    [event] = run.read_events()
    assert event["rule"] == "nonfinite" and event["action"] == "rollback" and event["restored_step"] == 2
    assert all(torch.equal(p, healthy[n]) for n, p in model.named_parameters())
    assert optimizer.param_groups[0]["lr"] == pytest.approx(event["learning_rate"] / 2)
    assert scheduler.base_lrs == [pytest.approx(5e-4)] and monitor.interventions == 1
    assert not control.should_training_stop
    printed = out.getvalue()
    assert "健康检查" in printed and "NaN/Inf" in printed and "learning_rate=1e-4" in printed
    assert "Likely cause" in event["message"]  # events keep English
    # ... and the Chinese text, which the web UI's event list shows in Chinese
    from tunelab.webui.watch import events_html

    assert "可能原因" in event["message_zh"] and "可能原因" in events_html(run.path, "zh")
    assert "Likely cause" in events_html(run.path, "en")


# end to end -----------------------------------------------------------------------------------------
def test_divergent_learning_rate_stops_within_a_few_steps(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    result = train(
        tiny_config(tiny_model_dir, out, learning_rate=5.0, max_steps=40, logging_steps=2, save_steps=100)
    )
    run = RunDir(out)
    assert result.status == "stopped" and result.metrics["stopped_by"] == "health"
    assert run.read_metrics()["status"] == "stopped" and "diverging" in (result.stop_reason or "")
    [event] = health_events(run)
    assert event["rule"] == "update_ratio" and event["action"] == "stop" and event["step"] <= 6
    assert event["numbers"]["update_ratio"] > 1 and "learning_rate=" in event["message"]
    assert train_rows(run)[-1]["current_steps"] == event["step"]  # it stopped there
    checkpoint = Path(event["checkpoint"])
    assert checkpoint == out / f"checkpoint-{event['step']}" and run.latest_checkpoint() == checkpoint
    stderr = capsys.readouterr().err
    assert "diverging" in stderr and str(checkpoint) in stderr
    # the checkpoint loads, and holds the last healthy weights (step 0: LoRA B still zero), not garbage
    assert event["restored_step"] == 0
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), checkpoint)
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and all(torch.count_nonzero(p) == 0 for p in lora_b)


def test_tiny_learning_rate_reports_stagnation(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = tiny_config(
        tiny_model_dir,
        out,
        learning_rate=1e-9,
        lr_scheduler_type="constant",
        warmup_ratio=0.0,
        max_steps=10,
        logging_steps=2,
        save_steps=100,
        health={"window": 4},
    )
    assert train(config).status == "finished"  # a warning does not stop the run
    [event] = health_events(RunDir(out))
    assert event["rule"] == "stagnation" and event["action"] == "warn" and event["step"] == 8
    assert event["numbers"]["kind"] == "frozen_weights" and event["numbers"]["update_ratio"] < 1e-6
    assert "too low" in event["message"]


class _PoisonAt(TrainerCallback):
    """Turn one trainable weight tensor into NaN after ``step``, as an fp16 overflow would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if state.global_step == self.step:
            param = next(p for n, p in model.named_parameters() if "lora_A" in n)
            with torch.no_grad():
                param.fill_(float("nan"))


@pytest.fixture
def poison_at(monkeypatch: pytest.MonkeyPatch):
    """Make the LM stage's callbacks include a _PoisonAt(step)."""
    import tunelab.train.stages.lm as lm

    def install(step: int) -> None:
        original = lm.build_callbacks

        def build(*args: Any, **kw: Any):
            callbacks, stop = original(*args, **kw)
            return [*callbacks, _PoisonAt(step)], stop

        monkeypatch.setattr(lm, "build_callbacks", build)

    return install


@pytest.mark.parametrize("source", ["snapshot", "checkpoint"])
def test_nan_weights_roll_back_and_training_continues(
    tiny_model_dir: Path, tmp_path: Path, poison_at: Any, source: str
) -> None:
    poison_at(5)
    out = tmp_path / "run"
    # the checkpoint variant keeps no copy in memory, so it must reload checkpoint-4 from disk
    health = {"snapshot_max_params": 0} if source == "checkpoint" else {}
    config = tiny_config(
        tiny_model_dir,
        out,
        lr_scheduler_type="constant",
        warmup_ratio=0.0,
        max_steps=10,
        logging_steps=2,
        save_steps=4 if source == "checkpoint" else 100,
        health=health,
    )
    result = train(config)
    run = RunDir(out)
    [event] = health_events(run)
    assert event["rule"] == "nonfinite" and event["action"] == "rollback" and event["step"] == 6
    assert event["restored_step"] == 4
    assert event["source"] == ("snapshot" if source == "snapshot" else str(out / "checkpoint-4"))
    assert event["new_learning_rate"] == pytest.approx(event["learning_rate"] / 2)
    rows = train_rows(run)
    assert [r["current_steps"] for r in rows] == [2, 4, 6, 8, 10]  # the run went on to the end
    assert rows[1]["learning_rate"] == pytest.approx(5e-3) and rows[-1]["learning_rate"] == pytest.approx(
        2.5e-3
    )
    assert all(math.isfinite(r["grad_norm"]) for r in rows[3:])
    assert math.isfinite(result.metrics["eval_loss"] if "eval_loss" in result.metrics else rows[-1]["loss"])


def test_overfitting_stops_the_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = tiny_config(
        tiny_model_dir,
        out,
        finetuning_type="full",
        max_samples=16,
        val_size=8,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        warmup_ratio=0.0,
        max_steps=20,
        logging_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        save_steps=100,
        health={"overfit_evals": 2},
    )
    train(config)
    run = RunDir(out)
    [event] = health_events(run)
    assert event["rule"] == "overfitting" and event["action"] == "stop"
    evals = [
        r["eval_loss"] for r in run.read_log() if "eval_loss" in r and r["current_steps"] <= event["step"]
    ]
    assert evals[-3] < evals[-2] < evals[-1] and event["numbers"]["eval_losses"] == pytest.approx(evals[-3:])
    assert event["numbers"]["train_last"] < event["numbers"]["train_first"]
    assert train_rows(run)[-1]["current_steps"] == event["step"] < 20
    assert (out / f"checkpoint-{event['step']}" / "model.safetensors").is_file()


def test_healthy_example_run_writes_no_health_events(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    overrides = [f"model_name_or_path={tiny_model_dir}", f"output_dir={out}", "max_steps=15", "eval_steps=15"]
    config = load_config(EXAMPLE, [*overrides, "plot_loss=false", "disable_tqdm=true", "compute_type=fp32"])
    assert config.health.enabled
    assert train(config).status == "finished"
    assert len(train_rows(RunDir(out))) == 3 and health_events(RunDir(out)) == []
