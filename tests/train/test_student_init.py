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
