"""tunelab data clean: cleaned copies in the input's format that re-load and train, removed.jsonl with reasons."""

from __future__ import annotations

import csv
import json

import pytest

from tunelab.errors import ConfigError
from tunelab.quality import check_data
from tunelab.quality.clean import clean_data, parse_drop


def _removed(out):
    return [json.loads(line) for line in (out / "removed.jsonl").read_text().splitlines()]


def test_clean_sft_keeps_first_of_each_cluster_and_says_why(make_config, tmp_path, data_dir):
    out = tmp_path / "clean"
    result = clean_data(make_config("sft"), out, drop=parse_drop("exact,near,empty,malformed,conflicts"))
    removed = {(r["index"], r["reason"]) for r in _removed(out)}
    assert removed == {(2, "exact"), (4, "near"), (5, "conflicts"), (6, "empty"), (7, "malformed")}
    assert next(r for r in _removed(out) if r["index"] == 2)["kept"]["index"] == 0
    rows = json.loads((out / "sft.json").read_text())
    original = json.loads((data_dir / "sft.json").read_text())
    assert rows == [original[i] for i in (0, 1, 3, 8, 9)]  # order kept, rows untouched
    assert result.kept == {"sft": 5}
    registry = json.loads((out / "dataset_info.json").read_text())
    assert registry["sft"] == {"file_name": "sft.json"}
    assert check_data(make_config("sft", "sft", f"dataset_dir={out}"), tokens=False).n_problems == 0


def test_clean_is_deterministic(make_config, tmp_path):
    for name in ("a", "b"):
        clean_data(make_config("sft"), tmp_path / name)
    for file in ("sft.json", "removed.jsonl", "dataset_info.json"):
        assert (tmp_path / "a" / file).read_text() == (tmp_path / "b" / file).read_text()


def test_leak_removes_the_training_copy_and_keeps_the_eval_record(make_config, tmp_path):
    out = tmp_path / "clean"
    clean_data(make_config("sft", "sft", "eval_dataset=sft_eval"), out, drop=["contaminated"])
    leaks = [r for r in _removed(out) if r["reason"] == "contaminated"]
    assert sorted(r["index"] for r in leaks) == [3, 4, 9] and {r["dataset"] for r in leaks} == {"sft"}
    assert len(json.loads((out / "sft_eval.json").read_text())) == 3


@pytest.mark.parametrize(
    ("dataset", "stage", "file", "extra", "n_kept"),
    [
        ("chat", "sft", "chat.jsonl", (), 2),
        ("dpo", "dpo", "dpo.json", (), 2),
        ("kto", "kto", "kto.json", (), 3),
        ("text", "pt", "text.txt", (), 2),
        ("cls", "cls", "cls.csv", ("model_name_or_path=tiny:bert", "val_size=0", "test_size=0"), 4),
    ],
)
def test_clean_writes_each_format_back(make_config, tmp_path, dataset, stage, file, extra, n_kept):
    out = tmp_path / "clean"
    result = clean_data(make_config(dataset, stage, *extra), out)
    assert result.kept == {dataset: n_kept}
    assert (out / file).is_file()
    if file.endswith(".csv"):
        with (out / file).open() as handle:
            assert list(csv.DictReader(handle))[0] == {"text": "great film", "label": "pos"}
    again = check_data(make_config(dataset, stage, f"dataset_dir={out}", *extra), tokens=False)
    assert again.counts["exact"] == again.counts["chosen_eq_rejected"] == 0


def test_cleaned_data_trains(make_config, tmp_path, tiny_model_dir):
    from tunelab.config import load_config
    from tunelab.train import train

    out = tmp_path / "clean"
    clean_data(make_config("sft"), out)
    config = load_config(
        None,
        [
            f"model_name_or_path={tiny_model_dir}",
            "dataset=sft",
            f"dataset_dir={out}",
            "template=chatml",
            "max_steps=2",
            "per_device_train_batch_size=2",
            f"output_dir={tmp_path / 'run'}",
            "report_to=none",
        ],
    )
    result = train(config)
    assert result.metrics["train_loss"] > 0


def test_unknown_drop_kind_is_named():
    with pytest.raises(ConfigError, match="dupes"):
        parse_drop("exact,dupes")
    assert "too_long" in parse_drop("all")


@pytest.mark.parametrize("dataset", ["sft", "chat", "text"])
def test_streaming_clean_matches_the_in_memory_clean(make_config, tmp_path, dataset):
    from tunelab.quality.stream_clean import stream_clean

    stage = "pt" if dataset == "text" else "sft"
    drop = ["malformed", "empty", "exact", "near", "conflicts"] if stage == "sft" else ["exact", "near"]
    config = make_config(dataset, stage, "val_size=0")
    clean_data(config, tmp_path / "memory", drop=drop)
    counts = stream_clean(config, tmp_path / "stream", drop=drop)
    name = {"sft": "sft.json", "chat": "chat.jsonl", "text": "text.txt"}[dataset]
    memory, stream = (tmp_path / d / name for d in ("memory", "stream"))
    if name.endswith(".json"):
        assert json.loads(stream.read_text()) == json.loads(memory.read_text())
    else:
        assert stream.read_text() == memory.read_text()
    assert {(r["index"], r["reason"]) for r in _removed(tmp_path / "stream")} == {
        (r["index"], r["reason"]) for r in _removed(tmp_path / "memory")
    }
    assert sum(counts["removed"].values()) == len(_removed(tmp_path / "memory"))


def test_streaming_clean_drops_leaks_of_an_eval_dataset(make_config, tmp_path):
    from tunelab.quality.stream_clean import stream_clean

    counts = stream_clean(
        make_config("sft", "sft", "eval_dataset=sft_eval"), tmp_path / "s", drop=["contaminated"]
    )
    assert counts["removed"] == {"contaminated": 3}
    assert sorted(r["index"] for r in _removed(tmp_path / "s")) == [3, 4, 9]
    with pytest.raises(ConfigError, match="too_long"):
        stream_clean(make_config("sft"), tmp_path / "t", drop=["too_long"])
