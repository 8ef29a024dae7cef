"""advise turns a data check into notes: clean when duplicates pass 3%, warn about eval leaks."""

from __future__ import annotations

import json

from tunelab.config import load_config
from tunelab.tune.advise_data import data_quality_notes


def _config(tmp_path, rows, *extra):
    (tmp_path / "d.json").write_text(json.dumps(rows))
    return load_config(
        None, ["model_name_or_path=tiny:llama", f"dataset={tmp_path / 'd.json'}", "template=chatml", *extra]
    )


def _row(i):
    return {"instruction": f"Question number {i} about topic {i * 7}?", "input": "", "output": f"Answer {i}."}


def test_duplicates_above_three_percent_recommend_cleaning(tmp_path):
    rows = [_row(i) for i in range(30)] + [_row(0), _row(1)]  # 2 of 32 = 6%
    notes = data_quality_notes(_config(tmp_path, rows, "val_size=0"))
    assert len(notes) == 1 and "tunelab data clean" in notes[0][0] and "清洗" in notes[0][1]


def test_clean_data_gets_no_notes_and_leaks_get_one(tmp_path):
    assert data_quality_notes(_config(tmp_path, [_row(i) for i in range(40)], "val_size=0")) == []
    (tmp_path / "eval.json").write_text(json.dumps([_row(3)]))
    notes = data_quality_notes(
        _config(tmp_path, [_row(i) for i in range(40)], f"eval_dataset={tmp_path / 'eval.json'}")
    )
    assert len(notes) == 1 and "also appear in the training split" in notes[0][0]
