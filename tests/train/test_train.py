"""End-to-end training on tiny models: the run directory contract, falling loss, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tunelab.config import config_from_dict, load_config
from tunelab.errors import ConfigError
from tunelab.runs import RunDir
from tunelab.train import STAGES, train
from tunelab.train.run import resolve_resume

LOG_FIELDS = {
    "current_steps",
    "total_steps",
    "loss",
    "learning_rate",
    "grad_norm",
    "epoch",
    "percentage",
    "elapsed_time",
    "remaining_time",
    "tokens_per_second",
}


def tiny_config(model_dir: Path, out: Path, **overrides: Any):
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
        "max_steps": 30,
        "warmup_ratio": 0.1,
        "logging_steps": 5,
        "save_steps": 15,
        "output_dir": str(out),
        "compute_type": "fp32",
        "disable_tqdm": True,
    }
    values.update(overrides)
    return config_from_dict(values)


def first_last_loss(run: RunDir) -> tuple[float, float]:
    losses = [row["loss"] for row in run.read_log() if "loss" in row]
    assert len(losses) >= 4
    return sum(losses[:2]) / 2, sum(losses[-2:]) / 2


def test_stage_table_matches_schema() -> None:
    from typing import get_args

    from tunelab.config.schema import FinetuningArgs

    assert set(STAGES) <= set(get_args(FinetuningArgs.model_fields["stage"].annotation))


def test_sft_lora_writes_the_run_directory(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = tiny_config(tiny_model_dir, out, val_size=0.1, eval_strategy="steps", eval_steps=15)
    result = train(config)
    assert result.status == "finished"
    run = RunDir(out)
    for name in (
        "config.yaml",
        "trainer_log.jsonl",
        "metrics.json",
        "README.md",
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "plots/loss.png",
        "plots/lr.png",
        "plots/grad_norm.png",
    ):
        assert (out / name).is_file(), name
    assert [p.name for p in run.checkpoints()] == ["checkpoint-15", "checkpoint-30"]
    train_rows = [r for r in run.read_log() if "loss" in r]
    assert [r["current_steps"] for r in train_rows] == [5, 10, 15, 20, 25, 30]
    assert LOG_FIELDS <= set(train_rows[1])
    assert any("eval_loss" in r for r in run.read_log())
    first, last = first_last_loss(run)
    assert last < first - 0.3, (first, last)
    metrics = run.read_metrics()
    assert metrics["global_step"] == 30 and metrics["eval_loss"] < 20 and metrics["tokens_per_second"] > 0
    assert 0 < metrics["trainable_params"] < metrics["total_params"]
    # the resolved config reproduces the run: it loads back into the same config
    again = load_config(out / "config.yaml")
    assert again == config
    assert yaml.safe_load((out / "config.yaml").read_text())["output_dir"] == str(out)


def test_lora_changes_only_adapter_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    train(tiny_config(tiny_model_dir, tmp_path / "run", max_steps=10, save_steps=10))
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path / "run")
    base_state = base.state_dict()
    for name, param in tuned.named_parameters():
        if "lora_B" in name:
            assert param.abs().sum() > 0, f"{name} never trained"
        elif "lora_" not in name:
            clean = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert base_state[clean].equal(param), f"frozen {clean} changed"


def test_pt_full_loss_falls(tiny_qwen2_dir: Path, tmp_path: Path) -> None:
    config = tiny_config(
        tiny_qwen2_dir,
        tmp_path / "pt",
        stage="pt",
        finetuning_type="full",
        dataset="pretrain_text,pretrain_jsonl",
        template=None,
        learning_rate=2e-3,
    )
    result = train(config)
    first, last = first_last_loss(RunDir(result.run_dir))
    assert last < first - 0.3, (first, last)
    assert (result.run_dir / "model.safetensors").is_file()


def test_refuses_to_overwrite_finished_run(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = tiny_config(tiny_model_dir, tmp_path / "run", max_steps=5, save_steps=5)
    train(config)
    with pytest.raises(ConfigError, match="already holds a finished run"):
        resolve_resume(config, RunDir(tmp_path / "run"))
    with pytest.raises(ConfigError, match="no checkpoint there"):
        resolve_resume(
            config.model_copy(
                update={
                    "training": config.training.model_copy(update={"resume_from_checkpoint": str(tmp_path)})
                }
            ),
            RunDir(tmp_path / "run"),
        )


def _wait_for(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_ctrl_c_saves_checkpoint_and_resume_finishes(tiny_model_dir: Path, tmp_path: Path) -> None:
    """SIGINT mid-run -> exit 130 with a checkpoint; resume=auto continues to the same final state."""
    out = tmp_path / "run"
    overrides = [
        f"model_name_or_path={tiny_model_dir}",
        "dataset=instruct_en",
        "dataset_dir=builtin",
        "template=chatml",
        "cutoff_len=128",
        "per_device_train_batch_size=8",
        "max_steps=400",
        "logging_steps=2",
        "save_steps=1000",
        f"output_dir={out}",
        "compute_type=fp32",
        "learning_rate=5e-3",
        "disable_tqdm=true",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tunelab", "train", *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        _wait_for(lambda: len(RunDir(out).read_log()) >= 2, 120)
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, output
    run = RunDir(out)
    checkpoint = run.latest_checkpoint()
    assert checkpoint is not None and "resume_from_checkpoint=auto" in output
    stopped_at = int(checkpoint.name.split("-")[1])
    assert 0 < stopped_at < 400
    assert run.read_events()[-1]["kind"] == "interrupted"

    config = load_config(out / "config.yaml", ["resume_from_checkpoint=auto", "max_steps=400"])
    result = train(config)
    assert result.status == "finished" and result.metrics["global_step"] == 400
    steps = [r["current_steps"] for r in run.read_log() if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 400  # no duplicated rows after the resume point
    kinds = [e["kind"] for e in run.read_events()]
    assert kinds.index("resume") > kinds.index("interrupted")
    state = json.loads((run.latest_checkpoint() / "trainer_state.json").read_text())
    assert state["global_step"] == 400
