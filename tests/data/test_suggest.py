"""Data of the wrong kind for a stage: the hint names only datasets that are here (dataset_dir or bundled)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.data.formats import to_records
from tunelab.data.registry import get_dataset_attr
from tunelab.data.suggest import datasets_for_stage, suggest_datasets
from tunelab.errors import DataError

SFT_ROWS = [{"instruction": "hi", "output": "hello"}]


def _dataset_dir(tmp_path: Path, entries: dict[str, dict], files: dict[str, list[dict]]) -> Path:
    tmp_path.mkdir(parents=True)
    (tmp_path / "dataset_info.json").write_text(json.dumps(entries), encoding="utf-8")
    for name, rows in files.items():
        (tmp_path / name).write_text(json.dumps(rows), encoding="utf-8")
    return tmp_path


def test_dpo_on_bundled_sft_data_suggests_the_bundled_preference_datasets() -> None:
    attr = get_dataset_attr("identity_en", "builtin")
    with pytest.raises(DataError, match="not pairwise data") as err:
        to_records(SFT_ROWS, attr, "dpo", "identity_en", attr.path)
    assert "pref_polite_en" in err.value.hint and "pref_polite_sharegpt" in err.value.hint
    assert "_demo" not in err.value.hint  # LLaMA-Factory's dpo_en_demo is not shipped here
    for name in datasets_for_stage("dpo", "builtin"):
        assert get_dataset_attr(name, "builtin").ranking  # every suggestion is preference data
    assert datasets_for_stage("kto", "builtin") == ["kto_polite_en"]


def test_a_users_dataset_dir_is_searched_first_then_the_bundled_data(tmp_path: Path) -> None:
    pref = {"file_name": "p.json", "ranking": True, "columns": {"prompt": "instruction"}}
    folder = _dataset_dir(
        tmp_path / "mine",
        {"sft": {"file_name": "s.json"}, "pref": pref, "missing": {**pref, "file_name": "gone.json"}},
        {"s.json": SFT_ROWS, "p.json": []},
    )
    assert suggest_datasets("dpo", folder) == "pick a preference dataset: pref"  # not the missing file's
    only_sft = _dataset_dir(tmp_path / "sft-only", {"sft": {"file_name": "s.json"}}, {"s.json": SFT_ROWS})
    attr = get_dataset_attr("sft", only_sft)
    with pytest.raises(DataError) as err:
        to_records(SFT_ROWS, attr, "rm", "sft", attr.path)
    assert f"{only_sft} has no preference dataset" in err.value.hint
    assert "dataset_dir=builtin" in err.value.hint and "pref_polite_en" in err.value.hint
    with pytest.raises(DataError) as err:
        to_records(SFT_ROWS, attr, "kto", "sft", attr.path)
    assert "kto_polite_en" in err.value.hint and "kto_en_demo" not in err.value.hint
