"""The search space: defaults built from the config, YAML forms, sampling, grids, trial configs."""

from __future__ import annotations

import random

import pytest
import yaml

from tunelab.config import config_from_dict, dump_config, load_config
from tunelab.config.schema_tune import ParamSpec
from tunelab.errors import ConfigError
from tunelab.tune.space import (
    apply_params,
    baseline_params,
    default_space,
    format_space,
    grid_points,
    param_kind,
    resolve_space,
    sample_params,
    short_label,
)


def cfg(**values):
    return config_from_dict({"model_name_or_path": "tiny:llama", **values})


def test_default_space_is_built_around_the_config() -> None:
    space = default_space(cfg(learning_rate=2e-4, lora_rank=12, max_steps=50))
    lr = space["learning_rate"]
    assert (lr.low, lr.high, lr.log) == (2e-5, 2e-3, True)
    assert space["lora_rank"].choices == [4, 8, 12, 16, 32]  # the config's own rank is a choice
    assert 2.0 in space["lora_alpha_ratio"].choices
    assert "num_train_epochs" not in space  # max_steps decides the length
    by_epochs = default_space(cfg(num_train_epochs=3, finetuning_type="full"))
    assert by_epochs["num_train_epochs"].choices == [1.5, 3.0, 6.0]
    assert "lora_rank" not in by_epochs


def test_space_yaml_forms_round_trip(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "model_name_or_path: tiny:llama\n"
        "tune:\n  space:\n    learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}\n    lora_rank: [8, 16]\n"
    )
    config = load_config(path)
    assert config.tune.space["lora_rank"].choices == [8, 16]
    dumped = yaml.safe_load(dump_config(config))
    assert dumped["tune"]["space"] == {
        "learning_rate": {"low": 1e-5, "high": 1e-3, "log": True},
        "lora_rank": [8, 16],
    }
    assert config_from_dict(config.to_flat()) == config


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"lerning_rate": [1e-4]}, "did you mean 'learning_rate'"),
        ({"learning_rate": {"low": 0, "high": 1, "log": True}}, "log=true needs low > 0"),
        ({"learning_rate": {"low": 1e-3, "high": 1e-4}}, "must be <= high"),
        ({"lora_rank": []}, "choices is empty"),
    ],
)
def test_bad_space_names_the_problem(space, message) -> None:
    with pytest.raises(ConfigError, match=message):
        cfg(tune={"space": space})


def test_text_keys_need_choices_not_ranges() -> None:
    with pytest.raises(ConfigError, match="lr_scheduler_type is not numeric"):
        resolve_space(cfg(tune={"space": {"lr_scheduler_type": {"low": 0, "high": 1}}}))


def test_param_kinds_follow_the_schema() -> None:
    assert param_kind("lora_rank") == "int"
    assert param_kind("learning_rate") == "float"
    assert param_kind("lora_alpha") == "float"  # float | None
    assert param_kind("lora_alpha_ratio") == "float"
    assert param_kind("lr_scheduler_type") == "categorical"


def test_grid_points() -> None:
    assert grid_points("learning_rate", ParamSpec(low=1e-5, high=1e-3, log=True)) == [1e-5, 1e-4, 1e-3]
    assert grid_points("lora_rank", ParamSpec(low=4, high=16, step=4)) == [4, 8, 12, 16]
    assert grid_points("warmup_ratio", ParamSpec(low=0.0, high=0.2)) == [0.0, 0.1, 0.2]
    assert grid_points("lora_rank", ParamSpec(choices=[8, 16])) == [8, 16]


def test_random_samples_stay_in_the_space_and_repeat_with_the_seed() -> None:
    space = default_space(cfg(learning_rate=1e-4, max_steps=10))
    draws = [sample_params(space, random.Random(7)) for _ in range(2)]
    assert draws[0] == draws[1]
    many = [sample_params(space, random.Random(i)) for i in range(200)]
    lrs = [d["learning_rate"] for d in many]
    assert all(1e-5 <= lr <= 1e-3 for lr in lrs)
    # log-uniform: about half the draws below the geometric middle (1e-4)
    assert 0.35 < sum(lr < 1e-4 for lr in lrs) / len(lrs) < 0.65
    assert {d["lora_rank"] for d in many} == {4, 8, 16, 32}


def test_baseline_uses_the_config_values_inside_the_space() -> None:
    config = cfg(learning_rate=3e-4, lora_rank=8, max_steps=10)
    space = {"learning_rate": ParamSpec(low=1e-5, high=1e-4), "lora_rank": ParamSpec(choices=[4, 8])}
    assert baseline_params(config, space) == {"lora_rank": 8}  # 3e-4 is outside the LR range


def test_apply_params_sets_alpha_from_the_ratio_and_validates() -> None:
    config = apply_params(cfg(), {"lora_rank": 16, "lora_alpha_ratio": 0.5, "learning_rate": 3e-4})
    assert (config.finetuning.lora_rank, config.finetuning.lora_alpha, config.training.learning_rate) == (
        16,
        8.0,
        3e-4,
    )
    with pytest.raises(ConfigError, match="lora_dropout"):
        apply_params(cfg(), {"lora_dropout": 1.5})


def test_labels_are_short_and_safe() -> None:
    label = short_label({"learning_rate": 0.00031234, "lora_rank": 16, "lr_scheduler_type": "cosine"})
    assert label == "lr0.000312-r16-cosine"
    assert "/" not in short_label({"model_name_or_path": "models/base"})


def test_format_space_is_yaml_for_the_tune_group() -> None:
    text = format_space(cfg(learning_rate=1e-4, max_steps=5))
    assert text.startswith("# default space")
    assert yaml.safe_load(text)["tune"]["space"]["learning_rate"] == {"low": 1e-5, "high": 1e-3, "log": True}
