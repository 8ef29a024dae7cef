"""The method/optimizer/loss keys: LLaMA-Factory's names and defaults, help in both languages, clear refusals."""

from __future__ import annotations

import pytest

from tunelab.config import config_from_dict
from tunelab.config.fields import help_text
from tunelab.config.schema import FinetuningArgs, ModelArgs
from tunelab.config.schema_methods import MethodArgs
from tunelab.config.schema_train import split_csv
from tunelab.errors import ConfigError

# LLaMA-Factory's defaults for the keys it defines (hparams/finetuning_args.py)
LF_DEFAULTS = {
    "pissa_convert": False,
    "oft_rank": 0,
    "oft_block_size": 32,
    "module_dropout": 0.0,
    "galore_rank": 16,
    "galore_update_interval": 200,
    "galore_scale": 2.0,
    "galore_proj_type": "std",
    "apollo_rank": 16,
    "apollo_scale": 32.0,
    "apollo_proj": "random",
    "apollo_scale_type": "channel",
    "badam_mode": "layer",
    "badam_switch_mode": "ascending",
    "badam_switch_interval": 50,
    "badam_update_ratio": 0.05,
    "eaft_alpha": 1.0,
    "asft_alpha": 0.1,
}


def test_keys_take_llama_factory_defaults_and_are_documented_twice() -> None:
    args = FinetuningArgs()
    for key, default in LF_DEFAULTS.items():
        assert getattr(args, key) == default, key
    for name in MethodArgs.model_fields:
        assert help_text(FinetuningArgs, name, "en") and help_text(FinetuningArgs, name, "zh"), name
    assert config_from_dict(
        {"model_name_or_path": "tiny:llama", "galore_target": "q_proj, v_proj"}
    ).finetuning.galore_target == ["q_proj", "v_proj"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"shift_attn": True, "packing": True}, "shift_attn groups positions of one sequence"),
        ({"mixture_of_depths": "convert", "finetuning_type": "lora"}, "use finetuning_type: full"),
        ({"pure_bf16": True, "fp16": True}, "pure_bf16: true trains in bf16, but fp16: true"),
    ],
)
def test_unsupported_methods_say_why(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"model_name_or_path": "tiny:llama", **values})


def test_model_keys_default_off() -> None:
    args = ModelArgs(model_name_or_path="tiny:llama")
    assert args.shift_attn is False and args.mixture_of_depths is None


# The method part of LLaMA-Factory's examples/extras/*.yaml (model, data and output keys left out)
LF_EXAMPLES = {
    "galore/llama3_full_sft": "finetuning_type: full\nuse_galore: true\ngalore_layerwise: true\n"
    "galore_target: mlp,self_attn\ngalore_rank: 128\ngalore_scale: 2.0\npure_bf16: true",
    "apollo/llama3_full_sft": "finetuning_type: full\nuse_apollo: true\napollo_layerwise: true\n"
    "apollo_target: all\napollo_rank: 128\napollo_scale: 32.0\napollo_scale_type: channel\npure_bf16: true",
    "badam/llama3_full_sft": "finetuning_type: full\nuse_badam: true\nbadam_mode: layer\n"
    "badam_switch_mode: ascending\nbadam_switch_interval: 50\nbadam_verbose: 2\ngradient_accumulation_steps: 8",
    "muon/qwen2_full_sft": "finetuning_type: full\nuse_muon: true\nbf16: true",
    "eaft/qwen25_05b_eaft_full": "finetuning_type: full\nuse_eaft_loss: true\nbf16: true",
    "oft/llama3_oft_sft": "finetuning_type: oft\noft_block_size: 32\noft_target: all\nbf16: true",
    "pissa/llama3_lora_sft": "finetuning_type: lora\nlora_rank: 8\nlora_target: all\npissa_init: true\n"
    "pissa_iter: 16\npissa_convert: true\nbf16: true",
    "llama_pro/llama3_freeze_sft": "finetuning_type: freeze\nfreeze_trainable_layers: 8\n"
    "freeze_trainable_modules: all\nuse_llama_pro: true\nfp16: true",
}


@pytest.mark.parametrize("name", sorted(LF_EXAMPLES))
def test_llama_factory_method_examples_validate(name: str) -> None:
    import yaml

    values = yaml.safe_load(LF_EXAMPLES[name])
    config = config_from_dict({"model_name_or_path": "tiny:llama", "stage": "sft", **values})
    for key, value in values.items():  # every key kept its LLaMA-Factory value (lists split at commas)
        group = config.finetuning if key in FinetuningArgs.model_fields else config.training
        assert getattr(group, key) == (
            split_csv(value) if isinstance(getattr(group, key), list) else value
        ), key
