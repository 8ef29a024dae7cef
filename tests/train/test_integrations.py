"""report_to: missing packages are a ResourceError naming the pip install; present ones reach the Trainer.

wandb and mlflow are never started here (they could reach the network); tensorboard runs for real
when it is installed.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import torch

from tunelab.config import config_from_dict
from tunelab.errors import ConfigError, ResourceError
from tunelab.train import integrations
from tunelab.train.builders import build_training_arguments
from tunelab.train.integrations import resolve_report_to


def _pretend_installed(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make find_spec report ``modules`` as installed and every other integration as missing."""
    known = {m for mods, _ in integrations.INTEGRATION_PACKAGES.values() for m in mods}

    def fake(name: str, *args: Any) -> object | None:
        if name in known:
            return object() if name in modules else None
        return find_spec(name, *args)

    monkeypatch.setattr(integrations, "find_spec", fake)


def test_none_means_no_integration() -> None:
    assert resolve_report_to(["none"]) == []
    assert resolve_report_to([]) == []


@pytest.mark.parametrize("name", ["tensorboard", "wandb", "mlflow"])
def test_missing_package_is_a_resource_error(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _pretend_installed(monkeypatch)
    with pytest.raises(ResourceError, match=f"{name} is not installed") as info:
        resolve_report_to([name])
    assert f"pip install {name}" in info.value.hint


def test_all_missing_packages_in_one_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_installed(monkeypatch, "mlflow")
    with pytest.raises(ResourceError) as info:
        resolve_report_to(["wandb", "mlflow", "tensorboard"])
    assert "pip install wandb tensorboard" in info.value.hint


def test_tensorboardx_is_enough_for_tensorboard(monkeypatch: pytest.MonkeyPatch) -> None:
    _pretend_installed(monkeypatch, "tensorboardX")
    assert resolve_report_to(["tensorboard"]) == ["tensorboard"]


def test_unknown_integration_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown integration comet"):
        resolve_report_to(["comet"])


def test_installed_integrations_reach_training_arguments(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only the arguments are built: no Trainer, so wandb/mlflow never start."""
    _pretend_installed(monkeypatch, "wandb", "mlflow")
    config = config_from_dict({"model_name_or_path": "tiny:llama", "report_to": "wandb,mlflow"})
    args = build_training_arguments(config, tmp_path, torch.float32)
    assert args.report_to == ["wandb", "mlflow"]

    config = config_from_dict({"model_name_or_path": "tiny:llama", "report_to": "wandb,tensorboard"})
    with pytest.raises(ResourceError, match="tensorboard is not installed"):
        build_training_arguments(config, tmp_path, torch.float32)


@pytest.mark.skipif(
    find_spec("tensorboard") is None and find_spec("tensorboardX") is None, reason="tensorboard not installed"
)
def test_tensorboard_writes_event_files(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tunelab.train import train

    out = tmp_path / "run"
    config = config_from_dict(
        {
            "model_name_or_path": str(tiny_model_dir),
            "dataset": "instruct_en",
            "dataset_dir": "builtin",
            "template": "chatml",
            "cutoff_len": 64,
            "max_steps": 3,
            "logging_steps": 1,
            "save_steps": 100,
            "compute_type": "fp32",
            "disable_tqdm": True,
            "report_to": "tensorboard",
            "output_dir": str(out),
        }
    )
    train(config)
    assert list(out.glob("runs/*/events.out.tfevents.*"))
