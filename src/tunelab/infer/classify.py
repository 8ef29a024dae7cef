"""Predict with a finished stage-cls run: class names (and probabilities) for new texts.

A run directory holds everything needed: ``config.yaml`` (base model, finetuning type, cutoff_len),
``labels.json`` (id -> class name), the tokenizer, and either the whole model (full/freeze) or a
LoRA adapter with the classification head saved beside it (``modules_to_save``).

Example::

    from tunelab.infer.classify import load_classifier_run, predict_labels

    predict_labels("runs/cls-tiny", ["the rocket reached orbit"])   # ["space"]
    run = load_classifier_run("runs/cls-tiny")                      # load once, predict many times
    run.predict(texts), run.predict_proba(texts)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.data.classification import LabelMap
from tunelab.errors import ModelError

__all__ = ["ClassifierRun", "load_classifier_run", "predict_labels"]


@dataclass
class ClassifierRun:
    """A loaded cls model in evaluation mode, its tokenizer and its classes."""

    model: Any
    tokenizer: Any
    label_map: LabelMap
    cutoff_len: int

    def logits(self, texts: Sequence[str], *, batch_size: int = 32) -> Any:
        """fp32 class logits (N, classes) on the CPU, in the order of ``label_map.labels``."""
        import torch

        parts = []
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(
                    list(texts[start : start + batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=self.cutoff_len,
                    return_tensors="pt",
                ).to(device)
                parts.append(self.model(**batch).logits.float().cpu())
        return torch.cat(parts) if parts else torch.zeros(0, len(self.label_map))

    def predict_proba(self, texts: Sequence[str], *, batch_size: int = 32) -> list[list[float]]:
        """Class probabilities per text, in the order of ``label_map.labels``."""
        return self.logits(texts, batch_size=batch_size).softmax(dim=-1).tolist()

    def predict(self, texts: Sequence[str], *, batch_size: int = 32) -> list[str]:
        """The most probable class name per text."""
        labels = self.label_map.labels
        return [
            labels[max(range(len(p)), key=p.__getitem__)]
            for p in self.predict_proba(texts, batch_size=batch_size)
        ]


def load_classifier_run(run_dir: str | Path) -> ClassifierRun:
    """Load the model of a finished cls run directory for prediction (fp32, CPU or the current GPU)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tunelab.config import load_config
    from tunelab.model.classifier import load_classifier

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ModelError(
            f"{run_dir} is not a run directory (no config.yaml)", "point at the output_dir of a stage cls run"
        )
    config = load_config(run_dir / "config.yaml")
    if config.finetuning.stage != "cls":
        raise ModelError(
            f"{run_dir} is a stage {config.finetuning.stage} run; class predictions need a stage cls run",
            "train one with stage: cls (see examples/cls_tiny.yaml)",
        )
    label_map = LabelMap.load(run_dir)
    # the run saved its tokenizer (pad token included); a LoRA run has no config.json beside it
    tokenizer = AutoTokenizer.from_pretrained(run_dir)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if (run_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        base, _ = load_classifier(
            config.model, label_map.id2label, pad_token_id=tokenizer.pad_token_id, compute_dtype=torch.float32
        )
        model = PeftModel.from_pretrained(base, str(run_dir))
    elif (run_dir / "config.json").is_file():
        model = AutoModelForSequenceClassification.from_pretrained(run_dir, dtype=torch.float32)
    else:
        raise ModelError(
            f"{run_dir} holds no model weights (neither adapter_config.json nor config.json)",
            "the run did not finish: resume it with resume_from_checkpoint=auto",
        )
    if torch.cuda.is_available():
        model = model.to("cuda")
    return ClassifierRun(model.eval(), tokenizer, label_map, config.data.cutoff_len)


def predict_labels(run_dir: str | Path, texts: Sequence[str], *, batch_size: int = 32) -> list[str]:
    """Class names a trained cls run predicts for ``texts`` (loads the run each call)."""
    return load_classifier_run(run_dir).predict(texts, batch_size=batch_size)
