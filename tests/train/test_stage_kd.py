"""Stage kd on tiny models: the run directory, what trains, kd_alpha=0 is sft, resume after SIGKILL."""

from __future__ import annotations

import os
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
from tunelab.train import train

KD = {
    "stage": "kd",
    "finetuning_type": "lora",
    "lora_dropout": 0.0,
    "dataset": "instruct_en",
    "dataset_dir": "builtin",
    "template": "chatml",
    "cutoff_len": 128,
    "max_samples": 64,
    "per_device_train_batch_size": 8,
    "learning_rate": 5e-3,
    "max_steps": 12,
    "logging_steps": 2,
    "save_steps": 4,
    "compute_type": "fp32",
    "disable_tqdm": True,
    "kd_temperature": 2.0,
}


def kd_config(student: Path, teacher: Path, out: Path, **overrides: Any):
    values = {**KD, "model_name_or_path": str(student), "teacher_model_name_or_path": str(teacher)}
    return config_from_dict({**values, "output_dir": str(out), **overrides})


def _rows(run: RunDir, key: str = "loss") -> list[dict[str, Any]]:
    return [row for row in run.read_log() if key in row]


def test_kd_run_logs_both_losses_and_trains_only_the_adapter(
    tiny_model_dir: Path, tiny_qwen2_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "kd"
    config = kd_config(
        tiny_model_dir,
        tiny_qwen2_dir,
        out,
        kd_alpha=1.0,
        kd_topk=16,
        val_size=0.2,
        eval_strategy="steps",
        eval_steps=6,
    )
    result = train(config)
    assert result.status == "finished"
    rows = _rows(RunDir(out))
    assert {"kd_loss", "ce_loss", "top1_agreement"} <= set(rows[0])
    # kd_alpha=1: the optimised loss is the KD loss alone, and it falls
    assert rows[0]["loss"] == pytest.approx(rows[0]["kd_loss"], rel=1e-4)
    assert rows[-1]["kd_loss"] < rows[0]["kd_loss"]
    metrics = result.metrics
    for key in (
        "eval_kd_loss",
        "eval_ce_loss",
        "eval_perplexity",
        "eval_teacher_perplexity",
        "eval_top1_agreement",
    ):
        assert key in metrics, key
    assert 0 <= metrics["eval_top1_agreement"] <= 1 and metrics["teacher"] == str(tiny_qwen2_dir)
    adapter = load_file(out / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert any(t.abs().sum() > 0 for name, t in adapter.items() if "lora_B" in name)


def test_kd_alpha_zero_trains_exactly_what_sft_trains(
    tiny_model_dir: Path, tiny_qwen2_dir: Path, tmp_path: Path
) -> None:
    kd = train(kd_config(tiny_model_dir, tiny_qwen2_dir, tmp_path / "kd", kd_alpha=0.0, max_steps=6))
    sft = train(kd_config(tiny_model_dir, tiny_qwen2_dir, tmp_path / "sft", stage="sft", max_steps=6))
    kd_rows, sft_rows = _rows(RunDir(kd.run_dir)), _rows(RunDir(sft.run_dir))
    assert len(kd_rows) == len(sft_rows) == 3
    for a, b in zip(kd_rows, sft_rows):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
        assert a["ce_loss"] == pytest.approx(a["loss"], rel=1e-5)
    kd_w, sft_w = (
        load_file(kd.run_dir / "adapter_model.safetensors"),
        load_file(sft.run_dir / "adapter_model.safetensors"),
    )
    assert all((kd_w[k] - sft_w[k]).abs().max() < 1e-4 for k in sft_w)


def test_kd_needs_a_teacher_and_refuses_packing(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="needs a teacher"):
        config_from_dict({"model_name_or_path": str(tiny_model_dir), "stage": "kd"})
    with pytest.raises(ConfigError, match="packing"):
        config_from_dict(
            {
                "model_name_or_path": "tiny:llama",
                "stage": "kd",
                "teacher_model_name_or_path": "x",
                "packing": True,
            }
        )


def test_sigkill_then_resume_matches_uninterrupted_kd_run(
    tiny_model_dir: Path, tiny_qwen2_dir: Path, tmp_path: Path
) -> None:
    """The kd stage resumes like every stage: same losses and weights as a run never stopped."""
    overrides = {"max_steps": 24, "logging_steps": 1, "lora_dropout": 0.1}
    reference = train(kd_config(tiny_model_dir, tiny_qwen2_dir, tmp_path / "ref", **overrides))
    ref_log = [(r["current_steps"], r["loss"], r["kd_loss"]) for r in _rows(RunDir(reference.run_dir))]

    out = tmp_path / "killed"
    run = RunDir(out)
    args = {
        **KD,
        **overrides,
        "model_name_or_path": tiny_model_dir,
        "teacher_model_name_or_path": tiny_qwen2_dir,
    }
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w", encoding="utf-8") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tunelab",
                "train",
                *(f"{k}={v}" for k, v in args.items()),
                f"output_dir={out}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            deadline = time.monotonic() + 300
            while not any(p.name == "checkpoint-8" for p in run.checkpoints()):
                assert proc.poll() is None, stderr.read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint-8"
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            proc.kill()
    killed_at = int(run.latest_checkpoint().name.split("-")[1])  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL and 8 <= killed_at < 24

    result = train(load_config(out / "config.yaml", ["resume_from_checkpoint=auto"]))
    assert result.status == "finished"
    log = [(r["current_steps"], r["loss"], r["kd_loss"]) for r in _rows(run)]
    assert log == ref_log
    ref_weights, weights = (
        load_file(reference.run_dir / "adapter_model.safetensors"),
        load_file(out / "adapter_model.safetensors"),
    )
    assert all(ref_weights[k].equal(weights[k]) for k in ref_weights)


def test_the_example_config_trains(tiny_cache_dir: Path, tmp_path: Path) -> None:
    """examples/kd_lora_tiny.yaml as shipped (shortened): tiny teacher and student built from the cache."""
    example = Path(__file__).parents[2] / "examples" / "kd_lora_tiny.yaml"
    overrides = [
        f"cache_dir={tiny_cache_dir}",
        f"output_dir={tmp_path / 'run'}",
        "max_steps=4",
        "eval_steps=2",
    ]
    result = train(load_config(example, [*overrides, "save_steps=2", "logging_steps=2", "disable_tqdm=true"]))
    assert result.status == "finished" and "eval_top1_agreement" in result.metrics
