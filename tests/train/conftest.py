"""Fixtures of the preference-stage tests (rm, dpo, kto, ppo): a config factory and one trained reward model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tunelab.config import RunConfig, config_from_dict


def _pref_config(model_dir: Path, out: Path, **overrides: Any) -> RunConfig:
    """A small, fast preference run on the tiny model and the bundled polite/rude data."""
    values: dict[str, Any] = {
        "model_name_or_path": str(model_dir),
        "stage": "dpo",
        "finetuning_type": "lora",
        "lora_rank": 8,
        "dataset": "pref_polite_en",
        "dataset_dir": "builtin",
        "template": "chatml",
        "cutoff_len": 64,
        "per_device_train_batch_size": 8,
        "learning_rate": 5e-3,
        "lr_scheduler_type": "constant",
        "max_steps": 8,
        "logging_steps": 1,
        "save_steps": 1000,
        "output_dir": str(out),
        "compute_type": "fp32",
        "disable_tqdm": True,
        "plot_loss": False,
    }
    values.update(overrides)
    return config_from_dict(values)


@pytest.fixture(scope="session")
def pref_config() -> Callable[..., RunConfig]:
    """``pref_config(model_dir, out, **overrides)``: see :func:`_pref_config`."""
    return _pref_config


@pytest.fixture(scope="session")
def rm_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A LoRA reward model trained once per session on pref_polite_en (used by the rm and ppo tests)."""
    from tunelab.train import train

    out = tmp_path_factory.mktemp("rm") / "run"
    config = _pref_config(
        tiny_model_dir,
        out,
        stage="rm",
        max_steps=16,
        val_size=0.3,
        eval_strategy="steps",
        eval_steps=16,
        learning_rate=3e-3,
        save_steps=8,
    )
    return train(config)
