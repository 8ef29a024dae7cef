"""LLaMA-Factory compatibility: configs written in its style (tests/config/lf_configs) and its errors.

The fast tests check what a migrating user reads (one pass, places, meanings, no opposite
suggestions); the run tests train each workflow key and the v1 layout for 2 steps on a tiny model.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tunelab.cli import app
from tunelab.config import config_from_dict, dump_config, load_config
from tunelab.config.foreign_keys import LF_FIELDS
from tunelab.config.lf_compat import translate
from tunelab.config.lf_defaults import DEFAULT_REASONS, LF_DEFAULTS
from tunelab.config.lf_table import render_lf_keys
from tunelab.config.run_config import KEY_TO_GROUP
from tunelab.config.schema import GROUP_TYPES
from tunelab.config.validate import check_config, suggest_key
from tunelab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
LF_CONFIGS = Path(__file__).parent / "lf_configs"
runner = CliRunner()


def lf_config(name: str, tmp_path: Path, model: str = "tiny:llama", **extra: str) -> Path:
    """Copy lf_configs/<name>.yaml (and its data files) into tmp_path with MODEL/OUTPUT filled in."""
    for data in ("v1_sft_demo.yaml", "identity.json"):
        shutil.copy(LF_CONFIGS / data, tmp_path / data)
    text = (LF_CONFIGS / f"{name}.yaml").read_text(encoding="utf-8")
    for key, value in {"MODEL": model, "OUTPUT": str(tmp_path / "out"), **extra}.items():
        text = text.replace(key, value)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path | None, overrides: list[str] = ()) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return info.value.message


# --- errors a migrating user reads --------------------------------------------------------------
def test_every_problem_is_reported_once_in_one_pass_with_its_line(tmp_path: Path) -> None:
    message = problems(lf_config("unsupported_mixed", tmp_path), ["lora_alpha=0", "bogus_key=1"])
    assert message.startswith("8 problems in")
    for line, text in [
        (4, "'upcast_layernorm' is a LLaMA-Factory option for keeping layer norms in fp32"),
        (5, "unknown key 'lora_rnak'"),
        (6, "unknown key 'enable_tqdm'"),
        (7, "'image_max_pixels' is a LLaMA-Factory option"),
        (8, "learning_rate=-1"),  # invalid values come in the same pass as the unknown keys
        (9, "lora_dropout=1.5"),
    ]:
        assert f"line {line}: {text}" in message
    assert "command line: unknown key 'bogus_key'" in message
    assert "command line: lora_alpha=0" in message
    assert message.count("upcast_layernorm") == 1


def test_unsupported_keys_say_what_they_do_and_the_alternative() -> None:
    for key, owner, alternative in [
        ("upcast_layernorm", "LLaMA-Factory", "compute_type: fp32"),
        ("use_cpu", "transformers TrainingArguments", "CUDA_VISIBLE_DEVICES"),
    ]:
        message = problems(None, ["model_name_or_path=x", f"{key}=true"])
        assert f"'{key}' is a {owner} option for" in message
        assert "tunelab does not support it (yet); alternatives:" in message and alternative in message
        assert "did you mean" not in message


def test_near_misses_are_suggested_but_never_an_opposite() -> None:
    assert suggest_key("lora_rnak") == "lora_rank"
    assert suggest_key("learning_rat") == "learning_rate"
    assert suggest_key("enable_tqdm") is None  # disable_tqdm is the opposite
    assert suggest_key("use_tqdm") is None
    assert suggest_key("do_not_train") is None
    message = problems(None, ["model_name_or_path=x", "enable_tqdm=true"])
    assert "disable_tqdm" not in message


def test_a_bad_override_is_blamed_on_the_command_line_not_the_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model_name_or_path: x\nlora_rank: 8\n", encoding="utf-8")
    message = problems(path, ["lora_rank=-3"])
    assert "command line: lora_rank=-3" in message and "line 2" not in message


def test_multimodal_keys_and_templates_say_text_only() -> None:
    for item in ("video_fps=2", "freeze_vision_tower=true", "media_dir=data", "template=qwen2_vl"):
        message = problems(None, ["model_name_or_path=x", item])
        assert "text-only" in message, item


def test_cross_group_rules_refuse_before_any_model_loads() -> None:
    message = problems(None, ["model_name_or_path=does-not-exist", "load_best_model_at_end=true"])
    assert "load_best_model_at_end=true needs evaluations" in message
    message = problems(None, ["model_name_or_path=x", "lr_scheduler_type=polynomial", "lr_end=1"])
    assert "lr_end=1" in message
    message = problems(
        None, ["model_name_or_path=x", "finetuning_type=full", "use_dora=true", "adapter_name_or_path=a"]
    )
    assert "use_dora only applies to LoRA" in message and "adapter_name_or_path is set" in message
    assert "no test split" in problems(None, ["model_name_or_path=x", "eval_split=test"])
    assert "do_predict=true generates" in problems(
        None, ["model_name_or_path=x", "do_predict=true", "val_size=0.1"]
    )


def test_check_exit_codes_and_output(tmp_path: Path) -> None:
    ok = runner.invoke(app, ["check", str(ROOT / "examples" / "sft_lora_tiny.yaml")])
    assert ok.exit_code == 0 and "valid" in ok.output
    bad = runner.invoke(app, ["check", str(lf_config("unsupported_mixed", tmp_path)), "bogus=1"])
    assert bad.exit_code == 1
    assert "7 problems" in bad.output and "command line: unknown key 'bogus'" in bad.output
    assert runner.invoke(app, ["check", str(tmp_path / "missing.yaml")]).exit_code == 1
    printed = runner.invoke(app, ["train", str(lf_config("unsupported_mixed", tmp_path)), "--print-config"])
    assert printed.exit_code == 2 and "upcast_layernorm" in printed.output


# --- keys LLaMA-Factory spells differently, defaults, the key table -------------------------------
def test_mapped_keys_mean_what_they_mean_in_llama_factory() -> None:
    base = {"model_name_or_path": "x"}
    assert (
        config_from_dict({**base, "disable_gradient_checkpointing": True}).training.gradient_checkpointing
        is False
    )
    assert config_from_dict({**base, "disable_gradient_checkpointing": False}).training.gradient_checkpointing
    assert config_from_dict({**base, "neat_packing": True}).data.packing
    assert config_from_dict({**base, "batch_size": 3}).training.per_device_eval_batch_size == 3
    assert (
        config_from_dict({**base, "quantization_method": "bitsandbytes"}).model.quantization_method == "bnb"
    )
    stop = config_from_dict({**base, "early_stopping_steps": 2, "eval_strategy": "steps", "val_size": 0.1})
    assert stop.early_stopping.enabled and stop.early_stopping.patience == 2
    predict = config_from_dict({**base, "do_predict": True, "predict_with_generate": True, "val_size": 0.1})
    assert predict.training.do_train is False  # LF's predict configs carry no do_train
    assert config_from_dict(base).training.do_train is True


def test_defaults_follow_llama_factory_or_have_a_listed_reason() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for key, lf_default in LF_DEFAULTS.items():
        assert key in KEY_TO_GROUP, key
        ours = GROUP_TYPES[KEY_TO_GROUP[key]].model_fields[key].default
        # do_train's default is resolved from do_eval/do_predict (listed with its reason)
        assert (ours != lf_default or key == "do_train") == (key in DEFAULT_REASONS), key
        if key in DEFAULT_REASONS:
            assert f"| `{key}` |" in readme, f"README lacks the reason for {key}"


def test_print_config_marks_values_that_differ_from_llama_factory(tmp_path: Path) -> None:
    cfg = config_from_dict({"model_name_or_path": "x", "optim": "adamw_torch"})
    text = dump_config(cfg)
    assert "plot_loss: true  # LLaMA-Factory default: false" in text
    assert "\noptim: adamw_torch\n" in text  # set by the user: not marked
    assert "lora_dropout: 0.0\n" in text and "cutoff_len: 2048\n" in text  # LF's defaults
    assert "do_sample: true\n" in text and "max_new_tokens: 1024\n" in text
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_config(path) == cfg  # the comments do not change what the file means


def test_every_llama_factory_key_is_in_the_published_table() -> None:
    assert (ROOT / "docs" / "lf_keys.md").read_text(encoding="utf-8") == render_lf_keys(), (
        "docs/lf_keys.md is stale: python -m tunelab.config.lf_table > docs/lf_keys.md"
    )


def test_no_supported_key_is_listed_as_unsupported() -> None:
    """When a key gains support (another branch adds it), its 'not supported' entry must go."""
    from tunelab.config.foreign_keys import HF_UNSUPPORTED, LF_UNSUPPORTED, MULTIMODAL

    stale = set(KEY_TO_GROUP) & (set(LF_UNSUPPORTED) | set(HF_UNSUPPORTED) | set(MULTIMODAL))
    assert not stale, f"remove from config/foreign_keys.py: {sorted(stale)}"


def test_training_keys_match_the_installed_transformers() -> None:
    from transformers import Seq2SeqTrainingArguments

    installed = {f.name for f in dataclasses.fields(Seq2SeqTrainingArguments) if f.init}
    assert installed <= set(LF_FIELDS["training"]), sorted(installed - set(LF_FIELDS["training"]))


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_yaml_validates(example: Path) -> None:
    assert load_config(example).model.model_name_or_path


def test_v1_layout_maps_onto_the_flat_schema(tmp_path: Path) -> None:
    cfg = load_config(lf_config("v1_lora_sft", tmp_path))
    assert cfg.model.model_name_or_path == "tiny:llama" and cfg.finetuning.finetuning_type == "lora"
    assert (cfg.finetuning.lora_rank, cfg.finetuning.lora_alpha, cfg.finetuning.lora_dropout) == (8, 16, 0.05)
    assert (cfg.training.per_device_train_batch_size, cfg.training.gradient_accumulation_steps) == (2, 2)
    assert cfg.data.dataset == [str(tmp_path / "identity.json")] and cfg.data.max_samples == 16
    assert cfg.generation.max_new_tokens == 8


def test_v1_parts_that_cannot_be_mapped_are_named(tmp_path: Path) -> None:
    path = lf_config("v1_lora_sft", tmp_path)
    text = path.read_text(encoding="utf-8").replace("name: auto", "name: liger")
    path.write_text(text + "init_config:\n  name: init_on_meta\nmodel_class: vlm\n", encoding="utf-8")
    message = problems(path)
    assert "kernel_config: liger" in message and "init_config" in message and "model_class: vlm" in message
    path = lf_config("v1_dist_deepspeed", tmp_path)
    assert "dcp_path" in problems(path, ["dist_config={name: fsdp2, dcp_path: /x}"])


def test_v1_dist_config_maps_to_the_hf_keys(tmp_path: Path) -> None:
    """dist_config -> deepspeed / fsdp + fsdp_config, which the scale-out keys then validate."""
    values = yaml.safe_load(lf_config("v1_dist_deepspeed", tmp_path).read_text(encoding="utf-8"))
    mapped = translate(values, base_dir=tmp_path)
    assert mapped.values["deepspeed"] == "examples/deepspeed/ds_z3_config.json"
    assert mapped.origin["deepspeed"] == "dist_config"  # problems are blamed on the dist_config line
    fsdp = translate({**values, "dist_config": {"name": "fsdp2", "dcp_path": None}}, base_dir=tmp_path)
    assert fsdp.values["fsdp"] == "full_shard auto_wrap" and fsdp.values["fsdp_config"] == {"version": 2}
    report = check_config(values, source="v1.yaml", lines={"dist_config": 3}, base_dir=tmp_path)
    if "deepspeed" not in KEY_TO_GROUP:  # until the scale-out keys exist: the unknown-key path names it
        assert any(
            where == "v1.yaml line 3" and "'deepspeed'" in message for where, message, _ in report.rows
        )


# --- each workflow key and the v1 layout, 2 steps on a tiny model --------------------------------
def test_train_then_eval_and_predict_and_reuse_tokenized_data(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tunelab.train import train

    tokenized = tmp_path / "tokenized"
    cfg = load_config(lf_config("workflow_sft_lora", tmp_path, str(tiny_model_dir), TOKENIZED=str(tokenized)))
    assert cfg.training.gradient_checkpointing is False and cfg.output.run_name == "lf-workflow"
    result = train(cfg)
    out = result.run_dir
    assert result.status == "finished" and (tokenized / "train").is_dir()
    lines = (out / "eval" / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 6 and {"prompt", "label", "predict"} <= set(json.loads(lines[0]))
    measured = json.loads((out / "eval" / "metrics.json").read_text(encoding="utf-8"))
    assert {"eval_loss", "predict_bleu-4", "predict_rouge-l"} <= set(measured)
    assert "after_eval_loss" in result.metrics
    events = (out / "events.jsonl").read_text()
    assert "tokenized datasets saved to" in events and "after_training" in events

    again = cfg.model_copy(
        update={"training": cfg.training.model_copy(update={"do_eval": False, "do_predict": False})}
    )
    second = train(again)
    assert "tokenized datasets loaded from" in (second.run_dir / "events.jsonl").read_text()


def test_predict_config_without_do_train_only_predicts(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tunelab.train import train

    result = train(load_config(lf_config("predict_only", tmp_path, str(tiny_model_dir))))
    assert (result.run_dir / "generated_predictions.jsonl").is_file()
    assert not (result.run_dir / "trainer_log.jsonl").exists()


def test_eval_layout_runs_tunelab_eval(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", str(lf_config("eval_mc", tmp_path, str(tiny_model_dir)))])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["mc_n"] == 50 and 0 <= metrics["mc_accuracy"] <= 100


def test_v1_layout_trains(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tunelab.train import train

    result = train(load_config(lf_config("v1_lora_sft", tmp_path, str(tiny_model_dir))))
    assert result.status == "finished" and result.metrics["global_step"] == 2


def test_v1_config_without_peft_config_trains_the_whole_model(tmp_path: Path) -> None:
    """v1's peft_config defaults to None (full training); our flat default (lora) must not leak in."""
    path = lf_config("v1_lora_sft", tmp_path)
    values = yaml.safe_load(path.read_text(encoding="utf-8"))
    del values["peft_config"]
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    assert load_config(path).finetuning.finetuning_type == "full"
    assert load_config(path, ["finetuning_type=freeze"]).finetuning.finetuning_type == "freeze"


def test_check_reads_inference_and_merge_configs_as_such(tmp_path: Path) -> None:
    """LLaMA-Factory's inference/ and merge_lora/ configs have no dataset: not a training config."""
    chat = tmp_path / "chat.yaml"
    chat.write_text("model_name_or_path: tiny:llama\ntemplate: chatml\ninfer_backend: huggingface\n")
    merge = tmp_path / "merge.yaml"
    merge.write_text(f"model_name_or_path: tiny:llama\nexport_dir: {tmp_path / 'm'}\nexport_size: 5\n")
    for path in (chat, merge):
        result = runner.invoke(app, ["check", str(path)])
        assert result.exit_code == 0 and "valid for any" in result.output, result.output
    trained = runner.invoke(app, ["check", str(chat), "--for", "train"])  # asked for: still refused
    # rich wraps at the terminal's width, which the temporary path's length moves: compare words
    assert trained.exit_code == 1 and "training needs a dataset" in " ".join(trained.output.split())
