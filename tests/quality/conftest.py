"""Small crafted datasets, one per format, each with known problems planted at known indices."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

LONG = (
    "the model reads this sentence about rivers mountains and the weather in spring, then it reads "
    "another one about the long road through the valley where farmers grow wheat and barley"
)


def _alpaca_rows() -> list[dict]:
    rows = [
        {
            "instruction": "Name the capital of France.",
            "input": "",
            "output": "Paris is the capital of France.",
        },
        {"instruction": "Translate 'good morning' into German.", "input": "", "output": "Guten Morgen."},
        # 2: exact duplicate of 0 (case and spacing differ)
        {
            "instruction": "name the capital of  France.",
            "input": "",
            "output": "Paris is the capital of France.",
        },
        # 3: near duplicate of 4 (one word changed in a long text)
        {
            "instruction": f"Summarise: {LONG} and the sea",
            "input": "",
            "output": "It is about nature in spring.",
        },
        {
            "instruction": f"Summarise: {LONG} and the ocean",
            "input": "",
            "output": "It is about nature in spring.",
        },
        # 5: conflicting answer to 1
        {"instruction": "Translate 'good morning' into German.", "input": "", "output": "Bonjour."},
        # 6: empty response
        {"instruction": "Write a haiku about snow.", "input": "", "output": "   "},
        # 7: malformed (output is a number)
        {"instruction": "How many legs does a spider have?", "input": "", "output": 8},
        {"instruction": "请用中文介绍一下长城。", "input": "", "output": "长城是中国古代的军事防御工程。"},
        {"instruction": "List three primary colours.", "input": "", "output": "Red, yellow and blue."},
    ]
    return rows


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A dataset_dir with alpaca, sharegpt, dpo, kto, txt and csv files and their registry."""
    d = tmp_path / "data"
    d.mkdir()
    (d / "sft.json").write_text(json.dumps(_alpaca_rows(), ensure_ascii=False), encoding="utf-8")
    (d / "sft_eval.json").write_text(
        json.dumps(
            [
                # leaks: exactly record 9 of sft.json, and nearly record 4
                {
                    "instruction": "List three primary colours.",
                    "input": "",
                    "output": "Red, yellow and blue.",
                },
                {
                    "instruction": f"Summarise: {LONG} and the lake",
                    "input": "",
                    "output": "It is about nature in spring.",
                },
                {"instruction": "What is 2 + 2?", "input": "", "output": "4"},
            ]
        ),
        encoding="utf-8",
    )
    chat = [
        {
            "conversations": [
                {"from": "human", "value": "Hi there"},
                {"from": "gpt", "value": "Hello! How can I help?"},
            ]
        },
        {
            "conversations": [
                {"from": "human", "value": "Hi there"},
                {"from": "gpt", "value": "Hello! How can I help?"},
            ]
        },
        {
            "conversations": [
                {"from": "human", "value": "Tell me a joke"},
                {"from": "gpt", "value": "Why did the chicken cross the road?"},
            ]
        },
    ]
    (d / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chat), encoding="utf-8")
    dpo = [
        {"instruction": "Say hi", "input": "", "chosen": "Hi!", "rejected": "Go away."},
        {"instruction": "Say bye", "input": "", "chosen": "Bye!", "rejected": "bye! "},  # chosen == rejected
        {"instruction": "Say hi", "input": "", "chosen": "Go away.", "rejected": "Hi!"},  # swapped: conflict
    ]
    (d / "dpo.json").write_text(json.dumps(dpo), encoding="utf-8")
    kto = [
        {
            "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
            "label": True,
        },
        {
            "messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
            "label": False,
        },
        {
            "messages": [{"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "7"}],
            "label": False,
        },
    ]
    (d / "kto.json").write_text(json.dumps(kto), encoding="utf-8")
    (d / "text.txt").write_text(
        f"{LONG} one\nA different line of text entirely.\n{LONG} one\n", encoding="utf-8"
    )
    with (d / "cls.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(
            [["great film", "pos"], ["awful plot", "neg"], ["great film", "neg"], ["fine acting", "pos"]]
        )
    registry = {
        "sft": {"file_name": "sft.json"},
        "sft_eval": {"file_name": "sft_eval.json"},
        "chat": {
            "file_name": "chat.jsonl",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations"},
        },
        "dpo": {
            "file_name": "dpo.json",
            "ranking": True,
            "columns": {
                "prompt": "instruction",
                "query": "input",
                "chosen": "chosen",
                "rejected": "rejected",
            },
        },
        "kto": {
            "file_name": "kto.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "kto_tag": "label"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
            },
        },
        "text": {"file_name": "text.txt", "columns": {"prompt": "text"}},
        "cls": {"file_name": "cls.csv", "columns": {"prompt": "text", "label": "label"}},
    }
    (d / "dataset_info.json").write_text(json.dumps(registry), encoding="utf-8")
    return d


@pytest.fixture
def make_config(data_dir: Path, tmp_path: Path):
    """load_config for a dataset of data_dir and a stage (tiny model, no val split unless asked)."""
    from tunelab.config import load_config

    def make(dataset: str, stage: str = "sft", *extra: str):
        return load_config(
            None,
            [
                "model_name_or_path=tiny:llama",
                f"dataset={dataset}",
                f"dataset_dir={data_dir}",
                f"stage={stage}",
                "template=chatml",
                f"output_dir={tmp_path / 'run'}",
                *extra,
            ],
        )

    return make
