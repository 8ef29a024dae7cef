"""Model cards: metadata written by huggingface_hub parses back whatever the paths contain."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCard

from tunelab.export.card import write_export_card
from tunelab.runs.model_card import write_model_card

AWKWARD_MODEL = "/data/models: v2/tiny #1 [test]"
AWKWARD_DATA = "/data/sets: 2024/train.json"


def test_run_card_metadata_round_trips_a_path_with_colon_space(tmp_path: Path) -> None:
    info = {
        "base_model": AWKWARD_MODEL,
        "stage": "sft",
        "finetuning_type": "lora",
        "datasets": f"{AWKWARD_DATA},alpaca_en",
        "learning_rate": 1e-4,
    }
    path = write_model_card(tmp_path, info, {"train_loss": 1.23456, "global_step": 10})
    card = ModelCard.load(path)
    assert card.data.base_model == AWKWARD_MODEL
    assert card.data.datasets == [AWKWARD_DATA, "alpaca_en"]
    assert card.data.library_name == "peft"
    assert card.data.tags == ["tunelab", "sft", "lora"]
    assert "| train_loss | 1.235 |" in card.text and f"# {tmp_path.name}" in card.text


def test_export_card_metadata_round_trips_a_path_with_colon_space(tmp_path: Path) -> None:
    report = {
        "source": {
            "base_model": AWKWARD_MODEL,
            "model": AWKWARD_MODEL,
            "stage": "sft",
            "finetuning_type": "full",
        },
        "dtype": "float32",
        "format": "safetensors",
        "n_shards": 1,
        "export_size_gb": 5,
        "total_bytes": 1_000_000,
        "chat_template": "chatml",
    }
    card = ModelCard.load(write_export_card(tmp_path, report, {"eval_loss": 2.0}))
    assert card.data.base_model == AWKWARD_MODEL
    assert card.data.library_name == "transformers"
    assert card.data.tags == ["tunelab", "sft", "full", "merged"]
    assert "## Verification" in card.text and "| eval_loss | 2 |" in card.text
