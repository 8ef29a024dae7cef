"""The form is generated from the schema: widgets, labels and help texts cannot drift from it."""

from __future__ import annotations

import pytest

from tunelab.config import config_from_dict, help_text
from tunelab.errors import ConfigError
from tunelab.webui.forms import (
    config_keys,
    config_value,
    field_spec,
    flat_to_form,
    form_to_flat,
    optional_number,
    to_cli_line,
)
from tunelab.webui.i18n import FIELD_LABELS, field_label


def test_every_labelled_key_is_a_schema_key() -> None:
    keys = set(config_keys())
    assert sorted(k for k in FIELD_LABELS if k not in keys) == []


def test_field_spec_reads_kind_choices_range_and_help_from_the_schema() -> None:
    spec = field_spec("lr_scheduler_type")
    assert spec.kind == "choice" and "cosine" in spec.choices and spec.default == "cosine"
    rank = field_spec("lora_rank")
    assert rank.kind == "int" and rank.minimum == 0 and rank.exclusive_minimum
    quant = field_spec("quantization_bit")
    assert quant.optional and quant.choice_labels() == ["none", "4", "8"]
    from tunelab.config.control import HealthArgs

    assert field_spec("health.grad_norm_alarm").help("zh") == help_text(HealthArgs, "grad_norm_alarm", "zh")
    with pytest.raises(KeyError):
        field_spec("lora_rnak")


def test_widget_values_round_trip_to_the_same_config() -> None:
    flat = {
        "model_name_or_path": "tiny:llama",
        "dataset": ["identity_en", "instruct_en"],
        "learning_rate": 3e-4,
        "quantization_bit": None,
        "lora_target": ["q_proj", "v_proj"],
        "health": {"grad_norm_alarm": 5.0, "enabled": False},
        "template": "chatml",
    }
    keys = [
        "model_name_or_path",
        "dataset",
        "learning_rate",
        "quantization_bit",
        "lora_target",
        "health.grad_norm_alarm",
        "health.enabled",
        "template",
        "max_samples",
    ]
    shown = flat_to_form(keys, flat)
    assert shown[1] == "identity_en, instruct_en" and shown[3] == "none" and shown[8] == ""
    back = form_to_flat(keys, shown)
    assert back == {k: v for k, v in flat.items() if v is not None}
    config = config_from_dict(back)
    assert config.health.grad_norm_alarm == 5.0 and config.finetuning.lora_target == ["q_proj", "v_proj"]


def test_an_empty_number_box_means_unset_for_keys_that_exclude_zero() -> None:
    assert config_value(field_spec("max_samples"), 0) is None  # max_samples > 0: the box's 0 is "unset"
    assert config_value(field_spec("max_samples"), 64) == 64
    assert config_value(field_spec("warmup_steps"), 0) == 0  # 0 is a real warm-up length
    assert config_value(field_spec("dataset"), ["a", " ", "b"]) == ["a", "b"]
    assert config_value(field_spec("output_dir"), "  ") is None


def test_cli_line_is_what_the_terminal_would_run() -> None:
    line = to_cli_line(
        "train", {"model_name_or_path": "tiny:llama", "dataset": ["a", "b"], "health": {"enabled": False}}
    )
    assert line == "tunelab train model_name_or_path=tiny:llama dataset=a,b health.enabled=false"
    from tunelab.config import load_config

    config = load_config(None, line.split()[2:])
    assert config.data.dataset == ["a", "b"] and config.health.enabled is False


def test_labels_exist_in_both_languages() -> None:
    for key, (en, zh) in FIELD_LABELS.items():
        assert en and zh, key
    assert field_label("learning_rate", "zh") == "学习率"
    assert field_label("seed_not_labelled", "en") == "seed_not_labelled"


def test_number_boxes_step_by_a_fraction_of_their_magnitude() -> None:
    from tunelab.webui.forms import number_step

    assert number_step(field_spec("learning_rate")) == pytest.approx(1e-5)  # 1e-4 -> 1.1e-4, not 1
    assert number_step(field_spec("plateau_min_lr")) == pytest.approx(1e-6)  # default 0: still LR-sized
    assert number_step(field_spec("warmup_ratio")) == pytest.approx(0.01)
    assert number_step(field_spec("max_grad_norm")) == pytest.approx(0.1)
    assert number_step(field_spec("lora_rank")) == 1
    for key in config_keys():
        spec = field_spec(key)
        if spec.kind == "float" and isinstance(spec.default, float) and spec.default:
            assert number_step(spec) <= abs(spec.default) / 5, key


def test_unset_numbers_show_empty_and_stay_unset() -> None:
    from tunelab.webui.forms import UNSET_PLACEHOLDER, build_field

    # Gradio's number box draws None as 0, so optional numbers get a textbox that can be empty
    alpha = build_field("lora_alpha", "en", label="LoRA alpha")
    assert alpha.value == "" and alpha.placeholder == UNSET_PLACEHOLDER
    lr = build_field("learning_rate", "en", label="LR")
    assert lr.value == pytest.approx(1e-4) and lr.step == pytest.approx(1e-5)
    keys = ["lora_alpha", "max_samples", "learning_rate"]
    shown = flat_to_form(keys, {"learning_rate": 3e-4})
    assert shown == ["", "", 3e-4]
    assert form_to_flat(keys, shown) == {"learning_rate": 3e-4}
    assert form_to_flat(keys, ["32", " 64 ", 3e-4]) == {
        "lora_alpha": 32.0,
        "max_samples": 64,
        "learning_rate": 3e-4,
    }
    assert flat_to_form(keys, {"lora_alpha": 32.0, "max_samples": 64})[:2] == ["32.0", "64"]
    with pytest.raises(ConfigError, match="lora_alpha"):
        config_from_dict({"model_name_or_path": "tiny:llama", **form_to_flat(["lora_alpha"], ["sixteen"])})
    with pytest.raises(ConfigError, match="memory budget"):
        optional_number("lots", "memory budget (GB)")
    assert optional_number(" ", "memory budget (GB)") is None and optional_number("24", "x") == 24.0


def test_memory_budget_boxes_show_empty_for_this_machine(tmp_path) -> None:
    from tunelab.webui.app import create_app
    from tunelab.webui.forms import UNSET_PLACEHOLDER

    app = create_app(runs_dir=tmp_path / "runs", state_dir=tmp_path / "state")
    boxes = {b.elem_id: b for b in app.blocks.values() if getattr(b, "elem_id", None)}
    for elem_id in ("tl-tune-gpu-mem", "tl-tune-max-mem"):
        assert boxes[elem_id].value == "" and boxes[elem_id].placeholder == UNSET_PLACEHOLDER, elem_id
    unset = [b.elem_id for b in app.blocks.values() if type(b).__name__ == "Number" and b.value is None]
    assert unset == []  # a number box would draw them as 0
