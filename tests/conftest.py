"""Shared fixtures: tiny offline models built once per test session into a private cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One intra-op thread per process, set before torch is imported (subprocesses inherit it): many tests
# run several processes at once (web UI server + CLI job, API server + client, two tune workers), and
# OpenMP threads spinning against each other on a 2-core machine made steps up to 10x slower, while the
# tiny models gain nothing from a second thread. Set OMP_NUM_THREADS to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session-private cache root, so tests never read or write the user's ~/.cache."""
    return tmp_path_factory.mktemp("tiny-cache")


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_cache_dir: Path) -> Path:
    """Directory of the tiny llama model + tokenizer (save_pretrained layout)."""
    from tunelab.model.tiny import build_tiny

    return build_tiny("llama", tiny_cache_dir)


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tiny_cache_dir: Path) -> Path:
    """Directory of the tiny qwen2 model + tokenizer."""
    from tunelab.model.tiny import build_tiny

    return build_tiny("qwen2", tiny_cache_dir)


@pytest.fixture(scope="session")
def tiny_bert_dir(tiny_cache_dir: Path) -> Path:
    """Directory of the tiny BERT-style encoder (masked-LM checkpoint + WordPiece tokenizer), for cls."""
    from tunelab.model.tiny import build_tiny

    return build_tiny("bert", tiny_cache_dir)


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path):
    """The tiny llama model's tokenizer (ChatML chat template, pad <|endoftext|>, eos <|im_end|>)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir: Path):
    """A ChatEngine on the tiny llama model (fp32, chatml, greedy), shared by the eval and inference tests.

    Greedy (do_sample=false) because the tests compare two ways of producing the same answer;
    LLaMA-Factory's default, which tunelab follows, samples.
    """
    from tunelab.infer.engine import chat_engine

    overrides = ["compute_type=fp32", "do_sample=false"]
    return chat_engine(model=str(tiny_model_dir), template="chatml", overrides=overrides)


def _tiny_sft_config(model_dir: Path, out: Path, **overrides: object):
    """A 2-step sft run on the tiny model and bundled instruct_en data; ``overrides`` add or replace keys."""
    from tunelab.config import config_from_dict

    values: dict[str, object] = {
        "model_name_or_path": str(model_dir),
        "dataset": "instruct_en",
        "dataset_dir": "builtin",
        "template": "chatml",
        "cutoff_len": 32,
        "max_samples": 8,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-2,
        "max_steps": 2,
        "save_steps": 100,
        "output_dir": str(out),
        "compute_type": "fp32",
        "disable_tqdm": True,
        "plot_loss": False,
    }
    values.update(overrides)
    return config_from_dict(values)


@pytest.fixture(scope="session")
def tiny_sft_config():
    """``tiny_sft_config(model_dir, out, **overrides)``: see :func:`_tiny_sft_config`."""
    return _tiny_sft_config
