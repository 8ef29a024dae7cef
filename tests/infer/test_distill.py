"""Sequence-level distillation: the teacher's answers become a registered sft dataset (local engine and API)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.config import config_from_dict
from tunelab.data.loader import load_dataset_records
from tunelab.infer.distill import distill_responses, prompts_of


def _config(teacher: Path, **extra: object):
    return config_from_dict(
        {
            "model_name_or_path": str(teacher),
            "stage": "kd",
            "teacher_model_name_or_path": str(teacher),
            "dataset": "identity_en",
            "dataset_dir": "builtin",
            "template": "chatml",
            "max_samples": 5,
            "max_new_tokens": 8,
            "do_sample": False,
            "compute_type": "fp32",
            **extra,
        }
    )


@pytest.fixture(scope="module")
def distilled(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("distill") / "teacher_answers.json"
    return distill_responses(_config(tiny_model_dir), out, batch_size=2)


def test_teacher_answers_become_a_registered_sft_dataset(
    distilled: Path, tiny_engine, tiny_model_dir: Path
) -> None:
    rows = json.loads(distilled.read_text(encoding="utf-8"))
    prompts = prompts_of(_config(tiny_model_dir))
    assert len(rows) == len(prompts) == 5
    expected = tiny_engine.generate(
        [tiny_engine.encode_chat(turns, system=system) for system, turns in prompts],
        max_new_tokens=8,
        do_sample=False,
    )
    assert [row["output"] for row in rows] == [reply.text for reply in expected]
    assert [row["instruction"] for row in rows] == [turns[-1]["content"] for _, turns in prompts]
    entry = json.loads((distilled.parent / "dataset_info.json").read_text())["teacher_answers"]
    assert entry["file_name"] == distilled.name and entry["formatting"] == "alpaca"
    assert entry["provenance"]["teacher"] == str(tiny_model_dir) and entry["provenance"]["n_records"] == 5
    # an ordinary sft run reads it by name from its folder
    records = load_dataset_records("teacher_answers", dataset_dir=str(distilled.parent), stage="sft")
    assert [r["messages"][-1]["content"] for r in records] == [row["output"] for row in rows]


def test_an_openai_compatible_teacher_gives_the_same_answers(
    distilled: Path, tiny_engine, tiny_model_dir: Path, tmp_path: Path, serve_app
) -> None:
    from tunelab.infer.api import create_app

    with serve_app(create_app(tiny_engine, model_id="teacher", api_key="k")) as url:
        out = distill_responses(
            _config(tiny_model_dir),
            tmp_path / "api.json",
            api_base=f"{url}/v1",
            api_model="teacher",
            api_key="k",
        )
    local = json.loads(distilled.read_text(encoding="utf-8"))
    remote = json.loads(out.read_text(encoding="utf-8"))
    assert [r["output"] for r in remote] == [r["output"] for r in local]
    provenance = json.loads((tmp_path / "dataset_info.json").read_text())["api"]["provenance"]
    assert provenance["api_base"] == f"{url}/v1" and provenance["teacher"] == "teacher"
