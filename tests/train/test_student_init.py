"""Student initialisation from the teacher's own layers (DistilBERT style)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunelab.config import config_from_dict
from tunelab.errors import ConfigError
from tunelab.train.student_init import init_student


@pytest.fixture(scope="module")
def four_layer_teacher(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny llama with 4 random layers instead of 2 (same tokenizer)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("teacher4")
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.num_hidden_layers = 4
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[0]] * 4
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def _config(teacher: Path, spec: str):
    return config_from_dict(
        {
            "model_name_or_path": str(teacher),
            "stage": "kd",
            "teacher_model_name_or_path": str(teacher),
            "kd_student_init": spec,
        }
    )


@pytest.mark.parametrize(("spec", "kept"), [("every_other_layer", [0, 2]), ("first_n:3", [0, 1, 2])])
def test_student_layers_are_the_chosen_teacher_layers(
    four_layer_teacher: Path, tmp_path: Path, spec: str, kept: list[int]
) -> None:
    from transformers import AutoModelForCausalLM

    out = init_student(_config(four_layer_teacher, spec), tmp_path / "student")
    teacher = AutoModelForCausalLM.from_pretrained(four_layer_teacher).state_dict()
    student_model = AutoModelForCausalLM.from_pretrained(out)
    student = student_model.state_dict()
    assert student_model.config.num_hidden_layers == len(kept)
    for new, old in enumerate(kept):
        names = [k for k in student if k.startswith(f"model.layers.{new}.")]
        assert names
        for name in names:
            source = name.replace(f"model.layers.{new}.", f"model.layers.{old}.", 1)
            assert torch.equal(student[name], teacher[source]), name
    for name in ("model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"):
        assert torch.equal(student[name], teacher[name])
    record = json.loads((out / "student_init.json").read_text())
    assert record["kept_layers"] == kept and record["source_layers"] == 4
    assert (out / "tokenizer.json").is_file()
    # the student generates with a KV cache (layer indices renumbered)
    ids = torch.tensor([[1, 2, 3]])
    generated = student_model.generate(ids, max_new_tokens=3, do_sample=False)
    assert generated.shape == (1, 6)


def test_a_student_as_deep_as_the_teacher_is_refused(four_layer_teacher: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="between 1 and 3"):
        init_student(_config(four_layer_teacher, "first_n:4"), tmp_path / "s")
    with pytest.raises(ConfigError, match="every_other_layer or first_n"):
        _config(four_layer_teacher, "half")


# ---- kd_student_init in `tunelab train`: the student is built into the run directory -------------------
_KD_RUN = {
    "stage": "kd",
    "finetuning_type": "lora",
    "lora_dropout": 0.0,
    "dataset": "instruct_en",
    "dataset_dir": "builtin",
    "template": "chatml",
    "cutoff_len": 64,
    "max_samples": 32,
    "per_device_train_batch_size": 4,
    "learning_rate": 5e-3,
    "max_steps": 2,
    "logging_steps": 1,
    "save_steps": 2,
    "compute_type": "fp32",
    "disable_tqdm": True,
    "plot_loss": False,
    "kd_student_init": "every_other_layer",
}


def _kd_run_values(teacher: Path, out: Path, **overrides: object) -> dict[str, object]:
    values = {**_KD_RUN, "model_name_or_path": str(teacher), "teacher_model_name_or_path": str(teacher)}
    return {**values, "output_dir": str(out), **overrides}


def test_train_builds_the_student_from_the_teacher_and_a_resume_reuses_it(
    four_layer_teacher: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file
    from transformers import AutoConfig

    from tunelab.config import load_config
    from tunelab.infer.engine import load_engine
    from tunelab.infer.source import resolve_config
    from tunelab.runs import RunDir
    from tunelab.train import train

    out = tmp_path / "run"
    result = train(config_from_dict(_kd_run_values(four_layer_teacher, out)))
    assert result.status == "finished"
    student = out / "student_init"
    assert AutoConfig.from_pretrained(student).num_hidden_layers == 2
    assert json.loads((student / "student_init.json").read_text())["kept_layers"] == [0, 2]
    assert not (out / "student_init.partial").exists()
    # the run's config names the student as its base, so eval / chat / export / resume load it
    run_config = load_config(out / "config.yaml")
    assert run_config.model.model_name_or_path == str(student)
    rows = [r for r in RunDir(out).read_log() if "loss" in r]
    assert [r["current_steps"] for r in rows] == [1, 2] and all(r["kd_loss"] > 0 for r in rows)
    adapter = load_file(out / "adapter_model.safetensors")
    assert {int(k.split("layers.")[1].split(".")[0]) for k in adapter if "layers." in k} == {
        0,
        1,
    }  # the student's 2 layers
    built = (student / "model.safetensors").stat().st_mtime_ns
    assert load_engine(resolve_config(run=out)).model.config.num_hidden_layers == 2  # chat/eval/export

    resumed = train(load_config(out / "config.yaml", ["resume_from_checkpoint=auto", "max_steps=3"]))
    assert resumed.status == "finished"
    assert (student / "model.safetensors").stat().st_mtime_ns == built
    said = [e["message"] for e in RunDir(out).read_events() if e["kind"] == "student_init"]
    assert len(said) == 2 and said[0].startswith("built the student") and said[1].startswith("reusing")
    assert [r["current_steps"] for r in RunDir(out).read_log() if "loss" in r] == [1, 2, 3]


def test_train_refuses_a_student_init_it_cannot_honour_before_loading_weights(
    four_layer_teacher: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from tunelab.train import train

    other = _kd_run_values(four_layer_teacher, tmp_path / "a", model_name_or_path=str(tiny_model_dir))
    with pytest.raises(ConfigError, match="would not be trained") as info:
        train(config_from_dict(other))
    assert f"model_name_or_path={four_layer_teacher}" in info.value.hint
    too_deep = _kd_run_values(four_layer_teacher, tmp_path / "b", kd_student_init="first_n:4")
    with pytest.raises(ConfigError, match="between 1 and 3"):
        train(config_from_dict(too_deep))
    assert not any((tmp_path / "b").glob("student_init*"))
    with pytest.raises(ConfigError, match="set teacher_model_name_or_path"):
        config_from_dict({**_KD_RUN, "model_name_or_path": "tiny:llama", "kd_teacher_cache": "cache"})


@pytest.mark.slow
@pytest.mark.ci
def test_under_two_processes_rank_0_alone_builds_the_student(
    four_layer_teacher: Path, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from tunelab.runs import RunDir

    out = tmp_path / "run"
    values = _kd_run_values(four_layer_teacher, out, ddp_timeout=120)
    command = [sys.executable, "-m", "tunelab", "train", *(f"{k}={v}" for k, v in values.items())]
    proc = subprocess.run(
        [*command, "--nproc-per-node", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = RunDir(out)
    events = [e for e in run.read_events() if e["kind"] == "student_init"]
    assert len(events) == 1 and events[0]["kept_layers"] == [0, 2]
    assert " ".join(proc.stderr.split()).count("built the student") == 1
    assert sorted(p.name for p in out.glob("student_init*")) == ["student_init"]
    assert [r["current_steps"] for r in run.read_log() if "loss" in r] == [1, 2]
    assert run.read_metrics()["world_size"] == 2
