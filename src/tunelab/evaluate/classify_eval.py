"""`tunelab eval` for stage cls models: predict the held-out split, score it, draw the confusion matrix.

The classes come from the model (labels.json of a cls run, or config.json's id2label), so ids mean
what they meant in training; a model without them (a base model before fine-tuning, whose head is
new) gets the classes of the data, in the same sorted order training uses. The metrics themselves
are :mod:`tunelab.evaluate.classification`'s, the same definition stage cls reports during training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tunelab.config import RunConfig
from tunelab.data.classification import LabelMap, load_classification_records, tokenize_classification
from tunelab.errors import DataError
from tunelab.evaluate.classification import classification_report, write_confusion_matrix

__all__ = ["PREDICTIONS_FILE", "evaluate_classifier", "model_label_map"]

PREDICTIONS_FILE = "cls_predictions.jsonl"


def model_label_map(config: RunConfig) -> LabelMap | None:
    """The classes saved with the model (last adapter's folder, then the model folder), or None."""
    from tunelab.model.resolve import resolve_model_path

    places = list(reversed(config.model.adapter_name_or_path or []))
    places.append(str(resolve_model_path(config.model.model_name_or_path, config.model.cache_dir)))
    for place in places:
        try:
            return LabelMap.load(place)
        except DataError:
            continue
    return None


def evaluate_classifier(
    config: RunConfig, records: Any, split: str, output_dir: Path
) -> tuple[dict[str, Any], list[Path]]:
    """Metrics (`<split>_accuracy`, `_f1_macro`, ..., `_loss`) and the files written (predictions, matrix)."""
    import torch
    from transformers import DataCollatorWithPadding, set_seed

    from tunelab.model import load_adapters, load_tokenizer
    from tunelab.model.classifier import load_classifier
    from tunelab.model.precision import resolve_compute_dtype

    label_map = model_label_map(config)
    if label_map is None:
        _, label_map = load_classification_records(config.data, seed=config.training.seed)
    tokenizer = load_tokenizer(config.model)
    set_seed(config.training.seed)  # a new (untrained) head starts from the same values every time
    model, _ = load_classifier(
        config.model,
        label_map.id2label,
        pad_token_id=tokenizer.pad_token_id,
        compute_dtype=resolve_compute_dtype(config.compute_type),
    )
    if config.model.adapter_name_or_path:
        model = load_adapters(model, config.model.adapter_name_or_path, is_trainable=False)
    model.eval()

    rows, _ = tokenize_classification(records, tokenizer, label_map, cutoff_len=config.data.cutoff_len)
    collate = DataCollatorWithPadding(tokenizer)
    device = next(model.parameters()).device
    batch_size = config.training.per_device_eval_batch_size
    predicted: list[int] = []
    total_loss = 0.0
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = collate([rows[i] for i in range(start, min(start + batch_size, len(rows)))])
            labels = batch.pop("labels").to(device)
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float()
            total_loss += float(torch.nn.functional.cross_entropy(logits, labels, reduction="sum"))
            predicted += logits.argmax(dim=-1).tolist()

    truth = list(rows["labels"])
    report = classification_report(truth, predicted, list(label_map.labels))
    metrics: dict[str, Any] = {"eval_split": split, **report.as_metrics(split)}
    metrics[f"{split}_loss"] = total_loss / max(len(truth), 1)
    json_path, png_path = write_confusion_matrix(report, output_dir, title=f"{split} split")
    path = output_dir / PREDICTIONS_FILE
    kept = [r for r in records if r["text"]]  # tokenize_classification drops texts with no tokens
    with path.open("w", encoding="utf-8") as handle:
        for record, label_id, pred_id in zip(kept, truth, predicted):
            row = {
                "text": record["text"],
                "label": label_map.labels[label_id],
                "predict": label_map.labels[pred_id],
            }
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return metrics, [path, json_path, png_path]
