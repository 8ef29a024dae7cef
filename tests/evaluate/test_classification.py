"""Classification metrics against values computed by hand on known labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.evaluate.classification import (
    classification_report,
    compute_classification_metrics,
    write_confusion_matrix,
)

# true a a a b b c / predicted a a b b c c:
#   confusion (rows true, columns predicted)   a: 2 1 0   b: 0 1 1   c: 0 0 1
#   precision a 2/2, b 1/2, c 1/2 · recall a 2/3, b 1/2, c 1/1
#   F1 a 2*1*(2/3)/(5/3) = 0.8, b 0.5, c 2*0.5*1/1.5 = 2/3
TRUE = ["a", "a", "a", "b", "b", "c"]
PRED = ["a", "a", "b", "b", "c", "c"]
LABELS = ["a", "b", "c"]


def test_scores_match_hand_computed_values() -> None:
    report = classification_report(TRUE, PRED, LABELS)
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report.per_class["a"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3}
    )
    assert report.per_class["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert report.per_class["c"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    )
    assert report.precision_macro == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert report.recall_macro == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert report.f1_macro == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report.n_samples == 6


def test_ids_and_names_give_the_same_report() -> None:
    ids = {label: i for i, label in enumerate(LABELS)}
    by_id = classification_report([ids[t] for t in TRUE], [ids[p] for p in PRED], LABELS)
    assert by_id == classification_report(TRUE, PRED, LABELS)
    scalars = compute_classification_metrics([ids[t] for t in TRUE], [ids[p] for p in PRED], 3)
    assert scalars == pytest.approx(
        {
            "accuracy": 4 / 6,
            "precision_macro": 2 / 3,
            "recall_macro": 13 / 18,
            "f1_macro": (0.8 + 0.5 + 2 / 3) / 3,
        }
    )


def test_a_class_absent_from_the_split_does_not_lower_the_macro_average() -> None:
    with_unused = classification_report(TRUE, PRED, [*LABELS, "d"])
    assert with_unused.f1_macro == pytest.approx(classification_report(TRUE, PRED, LABELS).f1_macro)
    assert with_unused.per_class["d"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert with_unused.confusion[3] == [0, 0, 0, 0] and [row[3] for row in with_unused.confusion] == [
        0,
        0,
        0,
        0,
    ]


def test_perfect_and_bad_inputs() -> None:
    perfect = classification_report(TRUE, TRUE, LABELS)
    assert perfect.accuracy == perfect.f1_macro == 1.0
    with pytest.raises(ValueError, match="not one of"):
        classification_report(["a"], ["z"], LABELS)
    with pytest.raises(ValueError, match="6 true labels but 5 predictions"):
        classification_report(TRUE, PRED[:5], LABELS)


def test_metrics_for_metrics_json_are_prefixed() -> None:
    metrics = classification_report(TRUE, PRED, LABELS).as_metrics("test")
    assert metrics["test_accuracy"] == pytest.approx(4 / 6)
    assert {"test_f1_macro", "test_precision_macro", "test_recall_macro", "test_samples"} <= set(metrics)
    assert metrics["test_confusion_matrix"] == {"labels": LABELS, "matrix": [[2, 1, 0], [0, 1, 1], [0, 0, 1]]}
    assert metrics["test_per_class"]["c"]["recall"] == 1.0
    json.dumps(metrics)  # JSON-ready


def test_confusion_matrix_files(tmp_path: Path) -> None:
    import matplotlib.image

    report = classification_report(["正面", "负面", "负面"], ["正面", "正面", "负面"], ["正面", "负面"])
    json_path, png_path = write_confusion_matrix(report, tmp_path, plots_dir=tmp_path / "plots")
    assert json_path == tmp_path / "confusion_matrix.json"
    assert png_path == tmp_path / "plots" / "confusion_matrix.png"
    saved = json.loads(json_path.read_text(encoding="utf-8"))
    assert saved["labels"] == ["正面", "负面"] and saved["matrix"] == [[1, 0], [1, 1]]
    assert saved["rows"] == "true label" and saved["accuracy"] == pytest.approx(2 / 3)
    image = matplotlib.image.imread(png_path)
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert not list(tmp_path.glob("plots/.*"))  # no temporary file left behind
