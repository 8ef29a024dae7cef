"""Classification data: label mapping, the 70/15/15 split, csv/json inputs, wrong data, bundled sets."""

from __future__ import annotations

import csv
import json
import re
import runpy
from collections import Counter
from pathlib import Path

import pytest

import tunelab
from tunelab.config import config_from_dict
from tunelab.data.classification import (
    LabelMap,
    balanced_class_weights,
    class_counts,
    load_classification_records,
    tokenize_classification,
)
from tunelab.data.loader import load_dataset_records, load_records
from tunelab.errors import DataError

DATA_DIR = Path(tunelab.__file__).parent / "resources" / "data"
ROWS = [{"text": f"text number {i}", "label": ["neg", "pos", "neutral"][i % 3]} for i in range(100)]


def write_csv(path: Path, rows: list[dict[str, str]], fields: tuple[str, ...] = ("text", "label")) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    return path


def cls_data_args(dataset: str, dataset_dir: str = "data", **extra: object):
    return config_from_dict(
        {
            "model_name_or_path": "tiny:llama",
            "stage": "cls",
            "dataset": dataset,
            "dataset_dir": dataset_dir,
            **extra,
        }
    ).data


# ------------------------------------------------------------------ label map


def test_label_map_is_sorted_numbers_numerically_and_round_trips(tmp_path: Path) -> None:
    numbers = LabelMap.from_labels(["10", "2", "1", "2", None])
    assert numbers.labels == ("1", "2", "10")
    words = LabelMap.from_labels(["pos", "neg", "neutral", "neg"])
    assert words.id2label == {0: "neg", 1: "neutral", 2: "pos"}
    assert words.label2id == {"neg": 0, "neutral": 1, "pos": 2}
    words.save(tmp_path)
    assert LabelMap.load(tmp_path) == words
    saved = json.loads((tmp_path / "labels.json").read_text(encoding="utf-8"))
    assert saved["id2label"] == {"0": "neg", "1": "neutral", "2": "pos"}
    with pytest.raises(DataError, match="not one of the model's classes"):
        words.encode("angry")


def test_label_map_from_config_json_and_errors(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"id2label": {"1": "b", "0": "a"}}), encoding="utf-8")
    assert LabelMap.load(tmp_path).labels == ("a", "b")
    (tmp_path / "config.json").write_text(json.dumps({"id2label": {"0": "LABEL_0", "1": "LABEL_1"}}))
    with pytest.raises(DataError, match="holds no class labels"):
        LabelMap.load(tmp_path)  # transformers' placeholder names are no classes
    with pytest.raises(DataError, match="at least 2 classes"):
        LabelMap.from_labels(["only", "only"])


def test_balanced_class_weights_match_scikit_learn() -> None:
    import numpy as np
    from sklearn.utils.class_weight import compute_class_weight

    ids = [0] * 6 + [1] * 3 + [2]
    counts = class_counts(ids, 4)
    assert counts == [6, 3, 1, 0]
    expected = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=np.array(ids))
    assert balanced_class_weights(counts) == pytest.approx([*expected, 0.0])


# ------------------------------------------------------------------ splits and inputs


def test_one_file_splits_70_15_15_seeded_and_disjoint(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", ROWS)
    data_args = cls_data_args(str(path))
    assert (data_args.val_size, data_args.test_size) == (0.15, 0.15)
    splits = load_records(data_args, "cls", seed=1)
    assert (len(splits.train), len(splits.eval), len(splits.test)) == (70, 15, 15)
    sources = [set(part["source"]) for part in (splits.train, splits.eval, splits.test)]
    assert len(set.union(*sources)) == 100
    again = load_records(data_args, "cls", seed=1)
    assert again.test["source"] == splits.test["source"]
    assert load_records(data_args, "cls", seed=2).test["source"] != splits.test["source"]


def test_splits_are_stratified_by_label(tmp_path: Path) -> None:
    """A skewed label mix (80 / 15 / 5) keeps its shares in every split; the rare class is never
    missing from eval or test by chance."""
    rows = [{"text": f"row {i}", "label": "a" if i < 80 else "b" if i < 95 else "c"} for i in range(100)]
    data_args = cls_data_args(str(write_csv(tmp_path / "skewed.csv", rows)))
    for seed in range(5):
        splits = load_records(data_args, "cls", seed=seed)
        for part, n in ((splits.train, 70), (splits.eval, 15), (splits.test, 15)):
            counts = Counter(part["label"])
            assert len(part) == n and set(counts) == {"a", "b", "c"}
            for label, share in (("a", 0.80), ("b", 0.15), ("c", 0.05)):
                assert abs(counts[label] - share * n) <= 1, (seed, label, counts)
    single = [*rows[:99], {"text": "the only one", "label": "d"}]  # a one-record class: plain split
    split = load_records(cls_data_args(str(write_csv(tmp_path / "one.csv", single))), "cls", seed=0)
    assert len(split.train) + len(split.eval) + len(split.test) == 100


def test_explicit_sizes_and_eval_dataset_win_over_the_default(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", ROWS)
    splits = load_records(cls_data_args(str(path), val_size=10, test_size=0), "cls", seed=0)
    assert (len(splits.train), len(splits.eval), splits.test) == (90, 10, None)
    held = write_csv(tmp_path / "held.csv", ROWS[:7])
    with_eval = cls_data_args(str(path), eval_dataset=str(held))
    assert (with_eval.val_size, with_eval.test_size) == (0.0, 0.0)
    splits = load_records(with_eval, "cls", seed=0)
    assert (len(splits.train), len(splits.eval), splits.test) == (100, 7, None)


def test_csv_json_jsonl_and_registered_columns_give_the_same_records(tmp_path: Path) -> None:
    rows = ROWS[:12]
    write_csv(tmp_path / "d.csv", rows)
    (tmp_path / "d.json").write_text(json.dumps(rows), encoding="utf-8")
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    renamed = [{"sentence": r["text"], "category": r["label"], "id": i} for i, r in enumerate(rows)]
    write_csv(tmp_path / "renamed.csv", renamed, ("id", "sentence", "category"))
    (tmp_path / "dataset_info.json").write_text(
        json.dumps(
            {"mine": {"file_name": "renamed.csv", "columns": {"prompt": "sentence", "label": "category"}}}
        ),
        encoding="utf-8",
    )
    expected = [(r["text"], r["label"]) for r in rows]
    for name in ("d.csv", "d.json", "d.jsonl", str(tmp_path / "d.csv"), "mine"):
        records = load_dataset_records(name, dataset_dir=str(tmp_path), stage="cls")
        assert list(zip(records["text"], records["label"])) == expected, name


def test_numeric_json_labels_become_class_names(tmp_path: Path) -> None:
    path = tmp_path / "n.json"
    path.write_text(json.dumps([{"text": f"t{i}", "label": i % 2} for i in range(20)]), encoding="utf-8")
    splits, label_map = load_classification_records(cls_data_args(str(path)), seed=0)
    assert label_map.labels == ("0", "1")


@pytest.mark.parametrize(
    ("rows", "missing"),
    [
        ([{"text": "a sentence"}], "'label'"),  # pre-training text
        ([{"instruction": "q", "input": "", "output": "a"}], "'text', 'label'"),  # sft data
    ],
)
def test_data_without_a_label_column_names_the_column_and_the_stage(
    tmp_path: Path, rows: list[dict[str, str]], missing: str
) -> None:
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_classification_records(cls_data_args(str(path), val_size=0, test_size=0), seed=0)
    message = str(caught.value)
    assert f"has no column {missing}" in message and "stage cls expects a text and a label column" in message


def test_tokenized_rows_carry_label_ids_and_respect_cutoff(tiny_tokenizer) -> None:
    from tunelab.data.loader import records_to_dataset
    from tunelab.data.records import new_record

    records = records_to_dataset(
        [new_record(text="a short one", label="b"), new_record(text="word " * 50, label="a")]
    )
    rows, report = tokenize_classification(records, tiny_tokenizer, LabelMap(("a", "b")), cutoff_len=8)
    assert rows["labels"] == [1, 0]
    assert len(rows["input_ids"][1]) == 8 and report.n_cut == 1 and report.lengths[1] > 8
    assert len(rows["attention_mask"][0]) == len(rows["input_ids"][0])


# ------------------------------------------------------------------ bundled classification sets


def test_topics_file_is_what_its_script_writes(tmp_path: Path) -> None:
    script = runpy.run_path(str(DATA_DIR / "make_topics.py"))
    assert script["render"](script["build_rows"]()) == (DATA_DIR / "topics_synthetic.csv").read_text(
        encoding="utf-8"
    )
    stale = tmp_path / "stale.csv"
    stale.write_text("text,label\n", encoding="utf-8")
    assert script["main"](["--check", "--output", str(stale)]) == 1


def test_bundled_classification_sets_are_balanced_and_registered() -> None:
    registry = json.loads((DATA_DIR / "dataset_info.json").read_text(encoding="utf-8"))
    expected = {
        "topics_synthetic": ({"animals", "cooking", "space"}, 300),
        "sentiment_en": ({"negative", "positive"}, 120),
        "sentiment_zh": ({"negative", "positive"}, 40),
    }
    for name, (labels, n_rows) in expected.items():
        assert registry[name]["columns"] == {"prompt": "text", "label": "label"}
        records = load_dataset_records(name, dataset_dir="builtin", stage="cls")
        assert len(records) == n_rows and set(records["label"]) == labels, name
        per_class = {label: records["label"].count(label) for label in labels}
        assert len(set(per_class.values())) == 1, per_class
        assert len(set(records["text"])) == n_rows, f"{name}: duplicate texts"
    zh = load_dataset_records("sentiment_zh", dataset_dir="builtin", stage="cls")
    assert all(re.search(r"[\u4e00-\u9fff]", text) for text in zh["text"])


def test_class_weights_belong_to_stage_cls() -> None:
    from tunelab.errors import ConfigError

    with pytest.raises(
        ConfigError, match="class_weights=balanced weights the classes of stage cls, but stage is sft"
    ):
        config_from_dict({"model_name_or_path": "tiny:llama", "stage": "sft", "class_weights": "balanced"})
