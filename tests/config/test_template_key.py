"""The ``template`` key is checked when the config is built, before any model loads, with LLaMA-Factory's names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import load_config
from tunelab.config.template_catalog import TEMPLATE_NAMES
from tunelab.errors import ConfigError

# Template names LLaMA-Factory configs of current text models use.
LLAMA_FACTORY_NAMES = [
    "qwen", "qwen3", "qwen3_nothink", "qwen3_5", "qwen3_5_nothink", "llama3", "llama4", "gemma", "gemma2",
    "gemma3", "mistral", "ministral", "mistral_small", "phi", "phi4", "deepseek", "deepseek3", "deepseekr1",
    "glm4", "glm4_moe", "chatglm3", "yi", "baichuan2", "intern2", "gpt", "gpt_oss", "empty", "default",
    "alpaca", "vicuna", "fewshot",
]  # fmt: skip


def _config_file(tmp_path: Path, template: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(
        f"model_name_or_path: tiny:llama\nstage: sft\ndataset: instruct_en\ntemplate: {template}\n"
    )
    return path


@pytest.mark.parametrize("name", LLAMA_FACTORY_NAMES)
def test_llama_factory_template_names_are_accepted(tmp_path: Path, name: str) -> None:
    assert load_config(_config_file(tmp_path, name)).data.template == name


@pytest.mark.parametrize(
    ("name", "suggested"),
    [("qwen4", "'qwen' or 'qwen3'"), ("qwen3-nothink", "'qwen3_nothink'"), ("llama3.1", "'llama3'"),
     ("gpt-oss", "'gpt'"), ("internlm3", "'intern2'"), ("gemma_3", "'gemma3'")],
)  # fmt: skip
def test_unknown_template_names_the_key_and_real_near_misses(
    tmp_path: Path, name: str, suggested: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_config_file(tmp_path, name))
    assert f"template={name!r}" in str(err.value) and f"did you mean {suggested}?" in str(err.value)


def test_a_name_with_no_near_miss_lists_every_template(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(_config_file(tmp_path, "zzz"))
    assert "did you mean" not in str(err.value) and "known templates: default, empty" in str(err.value)


def test_print_config_refuses_an_unknown_template() -> None:
    result = CliRunner().invoke(
        app, ["train", "model_name_or_path=tiny:llama", "template=qwen4", "--print-config"]
    )
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "template='qwen4'" in output and "did you mean 'qwen' or 'qwen3'?" in output


def test_enable_thinking_is_a_data_key(tmp_path: Path) -> None:
    path = _config_file(tmp_path, "qwen3")
    path.write_text(path.read_text() + "enable_thinking: false\n")
    assert load_config(path).data.enable_thinking is False


def test_template_names_are_checked_without_torch() -> None:
    code = (
        "import sys; from tunelab.config import config_from_dict; import tunelab.data.template; "
        "config_from_dict({'model_name_or_path': 'tiny:llama', 'template': 'qwen3_nothink'}); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert "tokenizer" in TEMPLATE_NAMES
