"""Path fields stay inside the allowed folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.errors import ConfigError
from tunelab.webui.paths import PathGuard, default_roots


def test_paths_outside_the_roots_are_refused(tmp_path: Path) -> None:
    guard = PathGuard([tmp_path])
    assert guard.check(tmp_path / "runs" / "a", "output_dir") == (tmp_path / "runs" / "a").resolve()
    with pytest.raises(ConfigError, match="output_dir=/etc/passwd"):
        guard.check("/etc/passwd", "output_dir")
    with pytest.raises(ConfigError):
        guard.check(tmp_path / ".." / "escape", "output_dir")  # .. is resolved before the check


def test_config_paths_are_checked_but_model_and_dataset_names_pass(tmp_path: Path) -> None:
    guard = PathGuard([tmp_path])
    guard.check_config(
        {"model_name_or_path": "tiny:llama", "dataset": ["identity_en"], "dataset_dir": "builtin"}
    )
    guard.check_config({"model_name_or_path": "smollm2", "adapter_name_or_path": [str(tmp_path / "run")]})
    for bad in (
        {"model_name_or_path": "/root/model"},
        {"model_name_or_path": "tiny:llama", "adapter_name_or_path": ["/opt/x"]},
        {"model_name_or_path": "tiny:llama", "dataset": ["/etc/data.json"]},
        {"model_name_or_path": "tiny:llama", "dataset_dir": "/etc"},
        {"model_name_or_path": "tiny:llama", "export_dir": "/usr/lib/x"},
    ):
        with pytest.raises(ConfigError):
            guard.check_config(bad)


def test_default_roots_hold_cwd_runs_builtin_data_and_cache(tmp_path: Path) -> None:
    roots = default_roots(tmp_path / "runs")
    assert Path.cwd().resolve() in roots and (tmp_path / "runs").resolve() in roots
    assert any(r.name == "data" and "tunelab" in str(r) for r in roots)
    assert any(r.name == "tunelab" and ".cache" in str(r) for r in roots)
