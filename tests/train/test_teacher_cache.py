"""The offline teacher: a cache of top-k log-probs trains like the live teacher and refuses another setup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tunelab.errors import ConfigError
from tunelab.runs import RunDir
from tunelab.train import train
from tunelab.train.teacher_cache import MANIFEST, write_teacher_cache

from .test_stage_kd import kd_config


@pytest.fixture(scope="module")
def cache_setup(tiny_model_dir: Path, tiny_qwen2_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cache")
    config = kd_config(
        tiny_model_dir, tiny_qwen2_dir, root / "unused", max_samples=40, val_size=0.25, kd_topk=8
    )
    cache = write_teacher_cache(config, root / "teacher")
    return config, cache, root


def test_training_from_the_cache_matches_the_live_teacher(cache_setup) -> None:
    config, cache, root = cache_setup
    eval_every = {"eval_strategy": "steps", "eval_steps": 6, "max_steps": 6}
    from tunelab.config import config_from_dict

    flat = {
        **config.to_flat(),
        "output_dir": str(root / "cached"),
        "kd_teacher_cache": str(cache),
        **eval_every,
    }
    flat_live = {**config.to_flat(), "output_dir": str(root / "live"), **eval_every}
    cached = train(config_from_dict(flat))
    live = train(config_from_dict(flat_live))
    cached_rows = [r for r in RunDir(cached.run_dir).read_log() if "loss" in r]
    live_rows = [r for r in RunDir(live.run_dir).read_log() if "loss" in r]
    for a, b in zip(cached_rows, live_rows, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4) and a["kd_loss"] == pytest.approx(
            b["kd_loss"], rel=1e-4
        )
    for key in ("eval_kd_loss", "eval_top1_agreement", "eval_teacher_perplexity"):
        assert cached.metrics[key] == pytest.approx(live.metrics[key], rel=1e-4), key


def test_the_cache_refuses_a_config_it_was_not_made_for(cache_setup) -> None:
    from tunelab.config import config_from_dict

    config, cache, root = cache_setup
    base = {**config.to_flat(), "kd_teacher_cache": str(cache)}
    with pytest.raises(ConfigError, match="cutoff_len"):
        train(config_from_dict({**base, "cutoff_len": 64, "output_dir": str(root / "r1")}))
    with pytest.raises(ConfigError, match="train split differs"):
        train(config_from_dict({**base, "max_samples": 30, "output_dir": str(root / "r2")}))
    with pytest.raises(ConfigError, match="kd_topk"):
        train(config_from_dict({**base, "kd_topk": 16, "output_dir": str(root / "r3")}))


def test_an_interrupted_cache_is_refused_then_resumed(cache_setup, tmp_path: Path) -> None:
    import shutil

    config, cache, root = cache_setup
    copy = tmp_path / "teacher"
    shutil.copytree(cache, copy)
    before = load_file(copy / "train-00000.safetensors")
    (copy / "train-00000.safetensors").unlink()
    manifest = json.loads((copy / MANIFEST).read_text())
    manifest.pop("complete")
    (copy / MANIFEST).write_text(json.dumps(manifest))
    from tunelab.config import config_from_dict

    with pytest.raises(ConfigError, match="unfinished"):
        train(
            config_from_dict(
                {**config.to_flat(), "kd_teacher_cache": str(copy), "output_dir": str(tmp_path / "r")}
            )
        )
    write_teacher_cache(config, copy)  # resumes: only the missing shard is computed
    after = load_file(copy / "train-00000.safetensors")
    assert before.keys() == after.keys() and all(before[k].equal(after[k]) for k in before)
    with pytest.raises(ConfigError, match="other settings"):
        write_teacher_cache(config, copy, topk=4)
