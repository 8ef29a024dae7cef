"""load_tokenizer / load_model: precision, attention, RoPE scaling, quantization wiring, broken dirs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from tunelab.config.schema import ModelArgs
from tunelab.errors import ConfigError, ModelError, ResourceError
from tunelab.model.loader import (
    build_quantization_config,
    build_rope_parameters,
    load_model,
    load_tokenizer,
)


def _args(path: Path | str, **extra: object) -> ModelArgs:
    return ModelArgs(model_name_or_path=str(path), **extra)


def test_tokenizer_is_ready_for_training(tiny_model_dir: Path) -> None:
    tok = load_tokenizer(_args(tiny_model_dir))
    assert tok.pad_token == "<|endoftext|>" and tok.padding_side == "right"
    batch = tok(["a", "a longer sentence"], padding=True)
    assert batch["input_ids"][0][-1] == tok.pad_token_id


def test_missing_pad_token_falls_back_to_eos(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "nopad"
    shutil.copytree(tiny_model_dir, copy)
    config_file = copy / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["pad_token"] = None
    config_file.write_text(json.dumps(config))
    tok = load_tokenizer(_args(copy))
    assert tok.pad_token == tok.eos_token == "<|im_end|>"


def test_load_model_fp32_and_bf16(tiny_model_dir: Path) -> None:
    model = load_model(_args(tiny_model_dir), compute_dtype=torch.float32)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.config._attn_implementation == "sdpa" or torch.cuda.is_available()
    half = load_model(_args(tiny_model_dir, flash_attn="disabled"), compute_dtype=torch.bfloat16)
    assert {p.dtype for p in half.parameters()} == {torch.bfloat16}
    assert half.config._attn_implementation == "eager"
    # Same weights, only rounded.
    torch.testing.assert_close(
        half.model.embed_tokens.weight.float(), model.model.embed_tokens.weight, rtol=1e-2, atol=1e-3
    )


def test_tiny_name_resolves_through_cache_dir(tiny_qwen2_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "tiny").symlink_to(tiny_qwen2_dir.parent)  # <cache_dir>/tiny/<preset-key>, already built
    model = load_model(_args("tiny:qwen2", cache_dir=str(tmp_path)), compute_dtype=torch.float32)
    assert model.config.model_type == "qwen2" and model.name_or_path.startswith(str(tmp_path / "tiny"))


def test_gradient_checkpointing_is_enabled(tiny_model_dir: Path) -> None:
    model = load_model(_args(tiny_model_dir), compute_dtype=torch.float32, gradient_checkpointing=True)
    assert model.is_activation_checkpointing
    assert model.config.use_cache is False


def test_rope_scaling_stretches_context(tiny_model_dir: Path) -> None:
    model = load_model(
        _args(tiny_model_dir, rope_scaling="linear"), compute_dtype=torch.float32, model_max_length=3000
    )
    assert model.config.rope_parameters["rope_type"] == "linear"
    assert model.config.rope_parameters["factor"] == 3.0
    assert model.config.max_position_embeddings == 3072
    base = load_model(_args(tiny_model_dir), compute_dtype=torch.float32)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():  # scaled positions change the output: the setting reached the model
        assert not torch.allclose(model(input_ids=ids).logits, base(input_ids=ids).logits)


def test_rope_scaling_needs_a_target_length(tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="rope_scaling"):
        load_model(_args(tiny_model_dir, rope_scaling="linear"), compute_dtype=torch.float32)


def test_build_rope_parameters() -> None:
    assert build_rope_parameters({"rope_theta": 1e4, "rope_type": "default"}, 2048, "linear", 2048) is None
    params, new_max = build_rope_parameters({"rope_theta": 5e5}, 2048, "llama3", 5000)
    assert params == {
        "rope_theta": 5e5,
        "rope_type": "llama3",
        "factor": 3.0,
        "original_max_position_embeddings": 2048,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
    }
    assert new_max == 6144
    params, new_max = build_rope_parameters({}, 1024, "dynamic", 4096)
    assert params["factor"] == 4.0 and new_max == 1024
    params, _ = build_rope_parameters({}, 1024, "yarn", 4096)
    assert params["original_max_position_embeddings"] == 1024


def test_quantization_config_wiring() -> None:
    assert build_quantization_config(_args("x")) is None
    assert build_quantization_config(_args("x", quantization_bit=8)) == {"load_in_8bit": True}
    four = build_quantization_config(
        _args("x", quantization_bit=4, double_quantization=False), torch.bfloat16
    )
    assert four == {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": False,
        "bnb_4bit_compute_dtype": torch.bfloat16,
        "bnb_4bit_quant_storage": torch.bfloat16,
    }


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_quantization_on_cpu_is_a_resource_error(tiny_model_dir: Path) -> None:
    with pytest.raises(ResourceError) as err:
        load_model(_args(tiny_model_dir, quantization_bit=4), compute_dtype=torch.float32)
    assert "NVIDIA GPU" in err.value.hint and "pip install bitsandbytes" in err.value.hint


def test_config_without_weights_names_the_path(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "noweights"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelError) as err:
        load_model(_args(broken), compute_dtype=torch.float32)
    assert str(broken) in err.value.message


def test_corrupt_weights_name_the_path(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors" * 8)
    with pytest.raises(ModelError) as err:
        load_model(_args(broken), compute_dtype=torch.float32)
    assert str(broken) in err.value.message


def test_missing_tensors_are_an_error_not_random_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "partial"
    shutil.copytree(tiny_model_dir, broken)
    state = load_file(broken / "model.safetensors")
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError) as err:
        load_model(_args(broken), compute_dtype=torch.float32)
    assert "model.layers.1.mlp.up_proj.weight" in err.value.message and str(broken) in err.value.message


def test_broken_config_names_the_path(tiny_model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "badconfig"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelError) as err:
        load_model(_args(broken), compute_dtype=torch.float32)
    assert str(broken) in err.value.message


def test_mixture_of_depths_key_must_match_the_checkpoint(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="use mixture_of_depths: convert"):
        load_model(
            ModelArgs(model_name_or_path=str(tiny_model_dir), mixture_of_depths="load"),
            compute_dtype=torch.float32,
        )
    model = load_model(
        ModelArgs(model_name_or_path=str(tiny_model_dir), mixture_of_depths="convert"),
        compute_dtype=torch.float32,
    )
    model.save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="set mixture_of_depths: load"):
        load_model(ModelArgs(model_name_or_path=str(tmp_path)), compute_dtype=torch.float32)
    loaded = load_model(
        ModelArgs(model_name_or_path=str(tmp_path), mixture_of_depths="load"), compute_dtype=torch.float32
    )
    assert type(loaded.model.layers[1]).__name__ == "MoDLayer"
