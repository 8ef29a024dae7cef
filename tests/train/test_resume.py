"""Resume: a run killed at any moment continues from its last complete checkpoint as if never stopped."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from tunelab.config import config_from_dict, load_config
from tunelab.errors import ConfigError
from tunelab.runs import RunDir
from tunelab.runs.summary import summarize_run
from tunelab.train import train
from tunelab.train.run import resolve_resume

# LoRA dropout > 0 makes every step draw random numbers, so only restored RNG state reproduces it;
# 150 records at batch 8 are 19 steps per epoch, so 40 steps cross two epoch boundaries.
RUN = {
    "stage": "sft",
    "finetuning_type": "lora",
    "lora_dropout": 0.1,
    "dataset": "instruct_en",
    "dataset_dir": "builtin",
    "template": "chatml",
    "cutoff_len": 128,
    "per_device_train_batch_size": 8,
    "learning_rate": 5e-3,
    "lr_scheduler_type": "cosine",
    "warmup_ratio": 0.1,
    "max_steps": 40,
    "logging_steps": 1,
    "save_steps": 5,
    "compute_type": "fp32",
    "disable_tqdm": True,
}


def _config(model_dir: Path, out: Path, **overrides: Any):
    return config_from_dict(
        {**RUN, "model_name_or_path": str(model_dir), "output_dir": str(out), **overrides}
    )


def _losses(run: RunDir) -> list[tuple[int, float, float]]:
    return [(r["current_steps"], r["loss"], r["grad_norm"]) for r in run.read_log() if "loss" in r]


def _wait_for(predicate: Any, proc: subprocess.Popen, stderr: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            tail = stderr.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise AssertionError(f"training exited ({proc.returncode}) before the kill point:\n{tail}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting for a checkpoint")


def test_sigkill_then_resume_matches_uninterrupted_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    """SIGKILL mid-run (plus a torn checkpoint and a torn log line), resume=auto: same losses, same weights."""
    reference = train(_config(tiny_model_dir, tmp_path / "ref"))
    assert reference.status == "finished"
    ref_log = _losses(RunDir(reference.run_dir))
    assert [step for step, _, _ in ref_log] == list(range(1, 41))

    out = tmp_path / "killed"
    run = RunDir(out)
    overrides = [f"{k}={v}" for k, v in RUN.items()]
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w", encoding="utf-8") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tunelab", "train", f"model_name_or_path={tiny_model_dir}"]
            + [f"output_dir={out}", *overrides],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            # past the first epoch boundary (step 19), so the data order of epoch 2 must be restored too
            _wait_for(lambda: any(p.name == "checkpoint-20" for p in run.checkpoints()), proc, stderr, 300)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not run.is_finished()
    killed_at = int(run.latest_checkpoint().name.split("-")[1])  # type: ignore[union-attr]
    assert 20 <= killed_at < 40
    # the killed process ran the same steps as the in-process reference, bit for bit
    assert _losses(run)[:killed_at] == ref_log[:killed_at]

    # what a kill in the middle of a save / a log append leaves behind
    torn = out / f"checkpoint-{killed_at + 5}"
    torn.mkdir(exist_ok=True)
    (torn / "trainer_state.json").write_text('{"global_step": ', encoding="utf-8")
    with run.log_path.open("a", encoding="utf-8") as handle:
        handle.write('{"current_steps": 99, "loss": 1.')
    assert run.latest_checkpoint() == out / f"checkpoint-{killed_at}"

    config = load_config(out / "config.yaml", ["resume_from_checkpoint=auto"])
    result = train(config)
    assert result.status == "finished"

    resume = [e for e in run.read_events() if e["kind"] == "resume"]
    assert len(resume) == 1 and resume[0]["step"] == killed_at
    assert torn.name in resume[0]["message"]  # the torn folder was noticed and removed
    log = _losses(run)
    steps = [step for step, _, _ in log]
    assert steps == list(range(1, 41))  # rows after the checkpoint rewritten once, torn line gone
    assert log == ref_log  # loss and grad_norm at every step, bitwise (CPU fp32)
    assert run.read_metrics()["global_step"] == 40
    assert run.read_metrics()["train_loss"] == pytest.approx(reference.metrics["train_loss"], rel=1e-9)
    ref_weights = load_file(reference.run_dir / "adapter_model.safetensors")
    weights = load_file(out / "adapter_model.safetensors")
    assert ref_weights.keys() == weights.keys()
    assert all(ref_weights[k].equal(weights[k]) for k in ref_weights)


def test_resumed_lora_run_keeps_training(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Resuming a finished LoRA run with a larger max_steps trains on (no jump to evaluation)."""
    out = tmp_path / "run"
    first = train(_config(tiny_model_dir, out, max_steps=10, save_steps=10, lora_dropout=0.0))
    assert first.metrics["global_step"] == 10
    before = load_file(out / "checkpoint-10" / "adapter_model.safetensors")

    result = train(_config(tiny_model_dir, out, max_steps=16, save_steps=10, resume_from_checkpoint="auto"))
    assert result.status == "finished" and result.metrics["global_step"] == 16
    run = RunDir(out)
    assert [step for step, _, _ in _losses(run)] == list(range(1, 17))
    state = json.loads((run.latest_checkpoint() / "trainer_state.json").read_text())  # type: ignore[operator]
    assert state["global_step"] == 16
    after = load_file(out / "adapter_model.safetensors")
    assert any(not before[k].equal(after[k]) for k in before if "lora_B" in k), "adapter did not train on"


def test_train_loss_after_a_resume_is_the_whole_runs(tiny_model_dir: Path, tmp_path: Path) -> None:
    """metrics.json train_loss of a resumed run equals the uninterrupted run's (all steps, not the resumed ones)."""
    short = {"max_steps": 12, "save_steps": 6, "logging_steps": 2}
    reference = train(_config(tiny_model_dir, tmp_path / "ref", **short))
    assert reference.status == "finished"

    # what a kill between step 6 and 12 leaves: checkpoint-6 and the log so far, no final outputs
    out = tmp_path / "resumed"
    shutil.copytree(reference.run_dir, out)
    shutil.rmtree(out / "checkpoint-12")
    (out / "metrics.json").unlink()
    result = train(_config(tiny_model_dir, out, **short, resume_from_checkpoint="auto"))
    assert result.status == "finished"
    assert [e["step"] for e in RunDir(out).read_events() if e["kind"] == "resume"] == [6]

    whole = reference.metrics["train_loss"]
    resumed_steps_only = sum(loss for step, loss, _ in _losses(RunDir(out)) if step > 6) / 3  # 3 logs of 2
    assert abs(resumed_steps_only - whole) > 1e-3  # the figure this test guards against differs
    assert result.metrics["train_loss"] == pytest.approx(whole, rel=1e-9)
    assert RunDir(out).read_metrics()["train_loss"] == pytest.approx(whole, rel=1e-9)
    assert summarize_run(out).train_loss == pytest.approx(whole, rel=1e-9)  # runs table / compare / web UI


def test_weights_only_checkpoint_is_refused(tmp_path: Path) -> None:
    """A save_only_model checkpoint has no optimizer/RNG state: resuming from it would not be exact."""
    out = tmp_path / "run"
    ckpt = out / "checkpoint-5"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": 5}), encoding="utf-8")
    (ckpt / "adapter_model.safetensors").write_bytes(b"")
    config = config_from_dict(
        {"model_name_or_path": "tiny:llama", "output_dir": str(out), "resume_from_checkpoint": "auto"}
    )
    with pytest.raises(ConfigError, match="weights only") as info:
        resolve_resume(config, RunDir(out))
    assert "adapter_name_or_path" in info.value.hint

    (ckpt / "rng_state.pth").write_bytes(b"")
    assert resolve_resume(config, RunDir(out)) == ckpt


def test_event_after_torn_line_is_kept(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.write_event("start", "first")
    with run.events_path.open("a", encoding="utf-8") as handle:
        handle.write('{"kind": "health", "mess')  # the writer was killed mid-line
    run.write_event("resume", "resuming from checkpoint-5")
    assert [e["kind"] for e in run.read_events()] == ["start", "resume"]
