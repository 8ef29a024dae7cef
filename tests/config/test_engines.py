"""The deepspeed / fsdp / fsdp_config keys: presets, paths and the errors made where the config is built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.config import load_config
from tunelab.config.engines import (
    DEEPSPEED_PRESETS,
    load_deepspeed_config,
    offload_note,
    shards_parameters,
    zero_stage,
)
from tunelab.errors import ConfigError

EXAMPLE = str(Path(__file__).parents[2] / "examples" / "sft_lora_tiny.yaml")


def config_error(*items: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(EXAMPLE, list(items))
    return caught.value.message


@pytest.mark.parametrize("name", list(DEEPSPEED_PRESETS))
def test_every_preset_is_shipped_and_leaves_the_run_values_to_hf(name: str) -> None:
    ds = load_deepspeed_config(name)
    assert zero_stage(ds) == {"z0": 0, "z2": 2, "z2_offload": 2, "z3": 3, "z3_offload": 3}[name]
    # batch sizes, accumulation, clipping and precision come from the tunelab config through HF's "auto"
    assert ds["train_micro_batch_size_per_gpu"] == ds["gradient_accumulation_steps"] == "auto"
    assert ds["gradient_clipping"] == ds["bf16"]["enabled"] == ds["fp16"]["enabled"] == "auto"
    assert (offload_note(ds) is not None) == name.endswith("_offload")
    if name.startswith("z3"):  # the run directory gets normal 16-bit weights, not only ZeRO shards
        assert ds["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True
    assert load_config(EXAMPLE, [f"deepspeed={name}"]).training.deepspeed == name


def test_offload_note_says_what_moves() -> None:
    en, zh = offload_note(load_deepspeed_config("z3_offload"))
    assert "12 bytes per parameter" in en and "16-bit parameters" in en and "CPU" in zh
    assert "16-bit parameters" not in offload_note(load_deepspeed_config("z2_offload"))[0]


def test_a_misspelt_preset_gets_a_suggestion() -> None:
    message = config_error("deepspeed=z3_ofload")
    assert "did you mean 'z3_offload'" in message and "z2_offload" in message


def test_a_json_path_is_read_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "ds.json"
    good.write_text(json.dumps({"zero_optimization": {"stage": 1}}))
    assert load_config(EXAMPLE, [f"deepspeed={good}"]).training.deepspeed == str(good)
    assert "no such file" in config_error(f"deepspeed={tmp_path / 'missing.json'}")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert "not readable JSON" in config_error(f"deepspeed={broken}")
    bad_stage = tmp_path / "stage5.json"
    bad_stage.write_text(json.dumps({"zero_optimization": {"stage": 5}}))
    assert "stages 0-3" in config_error(f"deepspeed={bad_stage}")


def test_deepspeed_and_fsdp_together_are_rejected() -> None:
    assert "choose one sharding engine" in config_error("deepspeed=z2", "fsdp=true")


def test_an_offload_preset_brings_its_optimizer() -> None:
    assert "optim=sgd would be ignored" in config_error("deepspeed=z2_offload", "optim=sgd")


def test_fsdp_options_and_config_keys_are_checked() -> None:
    assert load_config(EXAMPLE, ["fsdp=true"]).training.fsdp is True
    assert load_config(EXAMPLE, ["fsdp=full_shard auto_wrap"]).training.fsdp == "full_shard auto_wrap"
    assert "did you mean 'full_shard'" in config_error("fsdp=full_shrd")
    assert "did you mean 'state_dict_type'" in config_error("fsdp=true", 'fsdp_config={"state_dict_typ": 1}')
    assert "FULL_STATE_DICT" in config_error("fsdp=true", 'fsdp_config={"state_dict_type": "LOCAL"}')
    assert "set fsdp: true" in config_error('fsdp_config={"version": 2}')
    assert "FSDP1 strategy" in config_error("fsdp=hybrid_shard")
    # accelerate's YAML spelling (fsdp_ prefix) is accepted, as transformers accepts it
    cfg = load_config(
        EXAMPLE, ["fsdp=true", 'fsdp_config={"fsdp_version": 2, "fsdp_state_dict_type": "FULL_STATE_DICT"}']
    )
    assert cfg.training.fsdp_config == {"fsdp_version": 2, "fsdp_state_dict_type": "FULL_STATE_DICT"}


def test_8bit_quantization_cannot_be_sharded() -> None:
    message = config_error("quantization_bit=8", "fsdp=true")
    assert "quantization_bit: 4" in message
    assert "quantization_bit=8" in config_error("quantization_bit=8", "deepspeed=z3")
    # ZeRO-2 keeps every parameter whole on each rank: 8-bit weights are fine there
    assert load_config(EXAMPLE, ["quantization_bit=8", "deepspeed=z2"]).model.quantization_bit == 8


def test_which_engines_shard_the_parameters() -> None:
    assert shards_parameters(None, True) and shards_parameters("z3_offload", None)
    assert not shards_parameters("z2", None) and not shards_parameters(None, None)
