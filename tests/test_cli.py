"""The command layer: fast start without torch, errors as message + hint, both languages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.cli_text import TEXTS

runner = CliRunner()


def test_help_does_not_import_torch() -> None:
    code = "import sys; from tunelab.cli import app; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run(
        [sys.executable, "-m", "tunelab", "--help"], capture_output=True, text=True, check=True
    )
    assert "train" in out.stdout


def test_help_in_chinese() -> None:
    env = {**os.environ, "TUNELAB_LANG": "zh", "COLUMNS": "200"}
    out = subprocess.run(
        [sys.executable, "-m", "tunelab", "train", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "按 YAML 配置训练模型" in out.stdout


def test_every_cli_text_has_both_languages() -> None:
    for key, texts in TEXTS.items():
        assert set(texts) == {"en", "zh"} and all(texts.values()), key


def test_print_config_fills_defaults() -> None:
    result = runner.invoke(app, ["train", "model_name_or_path=tiny:llama", "lora_rank=4", "--print-config"])
    assert result.exit_code == 0, result.output
    assert "lora_rank: 4" in result.stdout and "learning_rate:" in result.stdout


def test_config_error_is_message_and_hint_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model_name_or_path: tiny:llama\nlearnig_rate: 1e-4\n")
    result = runner.invoke(app, ["train", str(cfg)])
    assert result.exit_code == 2
    assert "did you mean 'learning_rate'" in result.output and "Traceback" not in result.output


def test_help_keys_lists_every_key() -> None:
    from tunelab.config.control import NESTED_GROUP_TYPES
    from tunelab.config.run_config import all_keys, nested_keys

    result = runner.invoke(app, ["train", "--help-keys"])
    assert result.exit_code == 0
    for key in [k for k in all_keys() if k not in NESTED_GROUP_TYPES] + nested_keys():
        assert f"  {key} (" in result.stdout


@pytest.mark.parametrize("command", [["version"], ["--help"], ["data", "--help"]])
def test_commands_answer(command: list[str]) -> None:
    assert runner.invoke(app, command).exit_code == 0


def test_train_stops_a_divergent_run_with_exit_code_3(tiny_model_dir, tmp_path) -> None:
    """The issue's acceptance check: the shipped example at learning_rate=5 stops by itself."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).parents[1] / "examples" / "sft_lora_tiny.yaml"
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tunelab",
            "train",
            str(example),
            "learning_rate=5",
            f"model_name_or_path={tiny_model_dir}",
            f"output_dir={out}",
            "plot_loss=false",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "stopped by the health monitor" in proc.stderr and "learning rate 5 far too high" in proc.stderr
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    stop = [e for e in events if e["kind"] == "health" and e["action"] == "stop"]
    assert stop and stop[0]["step"] <= 10
    assert (Path(stop[0]["checkpoint"]) / "adapter_model.safetensors").is_file()


def test_errors_in_chinese_when_the_cli_speaks_chinese(tmp_path: Path) -> None:
    """The web UI starts jobs with TUNELAB_LANG=zh: their output names the problem in Chinese."""
    config = tmp_path / "bad.yaml"
    config.write_text("model_name_or_path: tiny:llama\nlearning_rat: 1.0e-4\n", encoding="utf-8")
    zh = runner.invoke(app, ["train", str(config), "--print-config"], env={"TUNELAB_LANG": "zh"})
    assert zh.exit_code == 2 and "未知的配置键 'learning_rat'" in zh.output and "learning_rate" in zh.output
    en = runner.invoke(app, ["train", str(config), "--print-config"], env={"TUNELAB_LANG": "en", "LANG": "C"})
    assert en.exit_code == 2 and "unknown key 'learning_rat'" in en.output
