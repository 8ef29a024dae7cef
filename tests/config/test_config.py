"""Config: LLaMA-Factory key compatibility, overrides, and errors that name the key and the fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from tunelab.config import RunConfig, all_keys, dump_config, help_text, load_config
from tunelab.config.control import NESTED_GROUP_TYPES
from tunelab.config.schema import GROUP_TYPES
from tunelab.errors import ConfigError

# LLaMA-Factory's examples/train_lora/llama3_lora_sft.yaml, as users bring it (model and dataset changed).
LLAMAFACTORY_YAML = """\
### model
model_name_or_path: tiny:llama
trust_remote_code: true

### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all

### dataset
dataset: identity,alpaca_en_demo
template: llama3
cutoff_len: 2048
max_samples: 1000
overwrite_cache: true
preprocessing_num_workers: 16
dataloader_num_workers: 4

### output
output_dir: saves/llama3-8b/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null

### eval
val_size: 0.1
per_device_eval_batch_size: 1
eval_strategy: steps
eval_steps: 500
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_llamafactory_yaml_loads_unchanged(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, LLAMAFACTORY_YAML))
    assert cfg.data.dataset == ["identity", "alpaca_en_demo"]
    assert cfg.training.learning_rate == pytest.approx(1e-4)
    assert cfg.training.gradient_accumulation_steps == 8
    assert cfg.finetuning.lora_target == ["all"]
    assert cfg.compute_type == "bf16"
    assert cfg.output.report_to == ["none"]
    assert cfg.data.val_size == pytest.approx(0.1)


def test_overrides_win_and_are_typed(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, LLAMAFACTORY_YAML), ["learning_rate=5e-5", "lora_rank=16", "output_dir=2024"]
    )
    assert cfg.training.learning_rate == pytest.approx(5e-5)
    assert cfg.finetuning.lora_rank == 16
    assert cfg.finetuning.effective_lora_alpha == 32  # alpha defaults to 2 x rank
    assert cfg.output.output_dir == "2024"  # a number typed for a text key stays text


def test_unknown_key_names_line_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, "model_name_or_path: tiny:llama\nlora_rnak: 16\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path} line 2" in message
    assert "did you mean 'lora_rank'" in message


def test_out_of_range_names_key_value_and_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "model_name_or_path: x\nlora_alpha: -2\n"))
    assert "line 2" in str(info.value) and "lora_alpha=-2" in str(info.value)
    assert "> 0" in info.value.hint


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, ["model_name_or_path=x", "lora_dropout=1.5", "stage=foo", "val_size=2.5"])
    message = str(info.value)
    assert "lora_dropout=1.5" in message and "stage='foo'" in message and "val_size" in message


def test_cross_group_rules() -> None:
    with pytest.raises(ConfigError, match="quantization_bit=4 needs finetuning_type: lora"):
        load_config(None, ["model_name_or_path=x", "quantization_bit=4", "finetuning_type=full"])
    with pytest.raises(ConfigError, match="bf16 and fp16"):
        load_config(None, ["model_name_or_path=x", "bf16=true", "fp16=true"])


def test_model_is_required_and_bad_override_form() -> None:
    with pytest.raises(ConfigError, match="model_name_or_path is required"):
        load_config(None, ["lora_rank=8"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["lora_rank"])


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 2"):
        load_config(write(tmp_path, "model_name_or_path: x\n  bad: [\n"))


def test_dump_round_trips(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, LLAMAFACTORY_YAML), ["lora_rank=4"])
    text = dump_config(cfg)
    again = load_config(write(tmp_path, text))
    assert again == cfg
    flat = yaml.safe_load(text)
    assert set(flat) == set(all_keys())  # every default filled


def test_every_field_has_english_and_chinese_help() -> None:
    for model in [*GROUP_TYPES.values(), *NESTED_GROUP_TYPES.values()]:
        for name in model.model_fields:
            en, zh = help_text(model, name, "en"), help_text(model, name, "zh")
            assert en and zh and en != zh, name
            assert any("\u4e00" <= ch <= "\u9fff" for ch in zh), name


def test_keys_are_unique_across_groups() -> None:
    names = [n for m in GROUP_TYPES.values() for n in m.model_fields]
    assert len(names) == len(set(names))
    assert isinstance(RunConfig.from_flat({"model_name_or_path": "x"}), RunConfig)


def test_nested_groups_from_yaml_and_dotted_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "model_name_or_path: x\nhealth:\n  grad_norm_alarm: 5\n  spike_action: stop\n")
    overrides = ["health.grad_norm_consecutive=2", "early_stopping.enabled=true", "eval_strategy=steps"]
    cfg = load_config(path, [*overrides, "val_size=0.1"])
    assert cfg.health.grad_norm_alarm == 5 and cfg.health.spike_action == "stop"  # YAML kept
    assert cfg.health.grad_norm_consecutive == 2 and cfg.early_stopping.enabled
    assert load_config(write(tmp_path, dump_config(cfg))) == cfg


def test_nested_unknown_key_and_bad_value_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "model_name_or_path: x\nhealth:\n  grad_norm_alrm: 5\n"))
    assert "line 2" in str(info.value) and "did you mean 'health.grad_norm_alarm'" in str(info.value)
    with pytest.raises(ConfigError, match="early_stopping.metric='loss'"):
        load_config(None, ["model_name_or_path=x", "early_stopping.metric=loss"])
    with pytest.raises(ConfigError, match="health.spike_action='explode'"):
        load_config(None, ["model_name_or_path=x", "health.spike_action=explode"])


def test_yaml_bare_no_is_the_string_no(tmp_path) -> None:
    """YAML 1.1 reads `no` as false; `eval_strategy: no` (file or override) must still mean "no"."""
    from tunelab.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("model_name_or_path: tiny:llama\ndataset: instruct_en\neval_strategy: no\n")
    assert load_config(str(path), []).training.eval_strategy == "no"
    assert load_config(str(path), ["eval_strategy=steps", "val_size=0.1"]).training.eval_strategy == "steps"
    assert load_config(str(path), ["eval_strategy=no"]).training.eval_strategy == "no"
