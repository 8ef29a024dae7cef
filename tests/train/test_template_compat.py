"""LLaMA-Factory compatibility: an sft config with ``template: <name>`` runs for every template name.

A real model of a family has its format's special tokens in the vocabulary; the tiny model does not,
so one shared copy gets them all (added as special tokens, embeddings resized), like a model of each
family would have them. The plain tiny model with a format it lacks the tokens for must instead be
refused before training, naming the token.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from tunelab.config import RunConfig, config_from_dict
from tunelab.data.pipeline import prepare_data
from tunelab.data.template import TEMPLATES
from tunelab.errors import ConfigError
from tunelab.runs import RunDir
from tunelab.train import train

# One of each kind of format, run in the default suite; all names run in the slow test.
REPRESENTATIVE = [
    "qwen3_nothink",
    "qwen3",
    "qwen3_5",
    "llama3",
    "gemma3",
    "chatglm3",
    "glm4",
    "gpt",
    "fewshot",
]


@pytest.fixture(scope="session")
def all_tokens_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny llama with every named template's special tokens (and a BOS) in its vocabulary."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokens = {"<s>", "<think>", "</think>"}
    for template in TEMPLATES.values():
        tokens.update(template.required_tokens, template.stop_words)
    tokenizer.add_tokens(sorted(tokens), special_tokens=True)
    tokenizer.bos_token = "<s>"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.resize_token_embeddings(len(tokenizer))
    out = tmp_path_factory.mktemp("all-template-tokens")
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def all_tokens_tokenizer(all_tokens_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(all_tokens_model_dir)


def _config(model_dir: Path, out: Path, template: str) -> RunConfig:
    return config_from_dict(
        {
            "model_name_or_path": str(model_dir),
            "stage": "sft",
            "finetuning_type": "lora",
            "dataset": "chat_sharegpt",  # multi-turn conversations with system prompts
            "dataset_dir": "builtin",
            "template": template,
            "max_samples": 8,
            "cutoff_len": 96,
            "per_device_train_batch_size": 4,
            "max_steps": 2,
            "logging_steps": 1,
            "save_steps": 1000,
            "output_dir": str(out),
            "compute_type": "fp32",
            "disable_tqdm": True,
            "plot_loss": False,
        }
    )


def _run_two_steps(model_dir: Path, out: Path, template: str) -> None:
    assert train(_config(model_dir, out, template)).status == "finished"
    run = RunDir(out)
    assert run.read_metrics()["global_step"] == 2
    assert all(math.isfinite(row["loss"]) for row in run.read_log() if "loss" in row)


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_every_template_prepares_the_training_data(
    all_tokens_model_dir: Path, all_tokens_tokenizer: Any, tmp_path: Path, template: str
) -> None:
    # The template-specific part of a run, for every name in the default suite: the multi-turn records
    # become sequences whose labels mask the prompts and keep the responses.
    config = _config(all_tokens_model_dir, tmp_path / "run", template)
    prepared = prepare_data(config, all_tokens_tokenizer)
    assert prepared.stats.n_train == 8 and prepared.template.name == template
    for labels in prepared.train["labels"]:
        assert -100 in labels and any(label != -100 for label in labels)


@pytest.mark.parametrize("template", REPRESENTATIVE)
def test_sft_runs_with_template(all_tokens_model_dir: Path, tmp_path: Path, template: str) -> None:
    _run_two_steps(all_tokens_model_dir, tmp_path / "run", template)


@pytest.mark.slow
@pytest.mark.ci
@pytest.mark.parametrize("template", sorted(set(TEMPLATES) - set(REPRESENTATIVE)))
def test_sft_runs_with_every_template(all_tokens_model_dir: Path, tmp_path: Path, template: str) -> None:
    _run_two_steps(all_tokens_model_dir, tmp_path / "run", template)


def test_a_format_the_tokenizer_lacks_tokens_for_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs '<start_of_turn>' to be one token"):
        _run_two_steps(tiny_model_dir, tmp_path / "run", "gemma3")
