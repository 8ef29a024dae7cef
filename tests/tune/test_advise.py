"""`tunelab advise`: reasons in both languages, a YAML that loads and trains, the memory ladder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import load_config
from tunelab.errors import ConfigError
from tunelab.tune.advise import advise

runner = CliRunner()


def _config_file(tmp_path: Path, model: str, **extra: object) -> Path:
    values = {
        "model_name_or_path": model,
        "dataset": "instruct_en",
        "dataset_dir": "builtin",
        "template": "chatml",
        "output_dir": str(tmp_path / "run"),
        **extra,
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def test_advice_yaml_loads_and_trains(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _config_file(tmp_path, str(tiny_model_dir))
    out = tmp_path / "advised.yaml"
    result = runner.invoke(app, ["advise", str(cfg), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "learning_rate" in result.stdout and "QLoRA" in result.stdout  # the rule's source is named
    text = out.read_text(encoding="utf-8")
    assert "# " in text.splitlines()[0] and "cutoff_len:" in text and "  # " in text  # reasons as comments
    advised = load_config(out)
    assert advised.data.cutoff_len % 64 == 0 and advised.data.cutoff_len <= 128  # instruct_en is short
    assert advised.finetuning.lora_alpha == 2 * advised.finetuning.lora_rank
    assert advised.training.max_grad_norm == 1.0 and advised.early_stopping.enabled
    t = advised.training
    assert t.per_device_train_batch_size * t.gradient_accumulation_steps == 8  # 150 records -> effective 8
    from tunelab.train import train

    short = load_config(out, ["max_steps=4", "eval_steps=2", "save_steps=2", "logging_steps=1"])
    run = train(short)
    assert run.status in ("finished", "early_stopped") and "eval_loss" in run.metrics


def test_advice_in_chinese(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = _config_file(tmp_path, str(tiny_model_dir))
    result = runner.invoke(
        app, ["advise", str(cfg), "--lang", "zh", "--task", "code"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "推荐配置" in result.stdout and "预热" in result.stdout and "平方根规则" in result.stdout
    assert "linear" in result.stdout  # code: linear decay


def test_memory_ladder_for_a_large_model_on_a_24gb_gpu(tmp_path: Path) -> None:
    config = load_config(_config_file(tmp_path, "not-here", finetuning_type="full", cutoff_len=2048))
    advice = advise(config, model_config="llama3-8b", gpu_mem=24)
    values = advice.updates()
    # full fine-tuning of 8B needs >100 GB for weights, gradients and Adam states: switched to LoRA
    assert values["finetuning_type"] == "lora" and values["learning_rate"] <= 2e-4
    assert advice.fits and advice.peak <= 24 * 2**30
    assert advice.ladder[0].en.startswith("micro-batch") and not advice.ladder[0].fits
    assert advice.ladder[1].en == "gradient checkpointing"
    big = advise(
        load_config(_config_file(tmp_path, "not-here", cutoff_len=2048)),
        model_config="llama2-70b",
        gpu_mem=48,
    )
    steps = [step.en for step in big.ladder]
    assert any("4-bit" in step for step in steps) and big.updates()["quantization_bit"] == 4
    assert [s.peak for s in big.ladder] == sorted(
        (s.peak for s in big.ladder), reverse=True
    )  # each fix helps


def test_unknown_task_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--task"):
        advise(load_config(_config_file(tmp_path, "x")), task="poetry", model_config="llama2-7b")


@pytest.mark.parametrize(
    ("extra", "adds_val_size"),
    [({}, True), ({"val_size": 0.2}, False), ({"eval_dataset": "identity_heldout"}, False)],
)
def test_an_existing_validation_split_is_kept(tmp_path: Path, extra: dict, adds_val_size: bool) -> None:
    """advise adds a 10% split only where the config holds nothing out; it never replaces the user's split."""
    config = load_config(_config_file(tmp_path, "not-here", **extra))
    values = advise(config, model_config="llama2-7b").updates()
    assert ("val_size" in values) is adds_val_size
    assert values["eval_strategy"] == "steps" and values["early_stopping"]["enabled"]
