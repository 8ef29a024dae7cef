"""Preference data: LLaMA-Factory's dpo/kto layouts load, pairs tokenize like sft, cutoff and errors."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

import tunelab
from tunelab.config import config_from_dict
from tunelab.data.template import get_template
from tunelab.data.tokenize import tokenize_supervised
from tunelab.data.tokenize_pref import (
    build_preference_datasets,
    split_budget,
    tokenize_pairwise,
    tokenize_prompt,
    tokenize_unpaired,
)
from tunelab.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DATA_DIR = Path(tunelab.__file__).parent / "resources" / "data"


def _config(stage: str, dataset: str, dataset_dir: str = "builtin", **extra):
    values = {
        "model_name_or_path": "unused",
        "stage": stage,
        "dataset": dataset,
        "dataset_dir": dataset_dir,
        "template": "chatml",
        "cutoff_len": 128,
        "max_new_tokens": 16,
        **extra,
    }
    if stage == "ppo":
        values["reward_model"] = "unused"
    return config_from_dict(values)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="LLaMA-Factory demo data not present")
@pytest.mark.parametrize(
    ("stage", "dataset"),
    [("dpo", "dpo_en_demo"), ("rm", "dpo_zh_demo"), ("kto", "kto_en_demo"), ("ppo", "dpo_en_demo")],
)
def test_llamafactory_demo_files_load_unchanged(tiny_tokenizer, stage: str, dataset: str) -> None:
    config = _config(stage, dataset, str(SHARED_DATA), max_samples=6, val_size=2)
    data = build_preference_datasets(config, tiny_tokenizer)
    assert len(data.train) == 4 and len(data.eval) == 2 and data.stats.n_dropped == 0
    row = data.train[0]
    if stage == "kto":
        assert set(row) == {"prompt_ids", "completion_ids", "label"} and isinstance(row["label"], bool)
    elif stage == "ppo":
        assert len(row["input_ids"]) <= 128 - 16 and row["messages"].startswith("[")
    else:
        assert set(row) == {"prompt_ids", "chosen_ids", "rejected_ids"}
        assert len(row["prompt_ids"]) + max(len(row["chosen_ids"]), len(row["rejected_ids"])) <= 128


@pytest.mark.parametrize(
    ("stage", "dataset"),
    [("dpo", "pref_polite_en"), ("dpo", "pref_polite_sharegpt"), ("kto", "kto_polite_en")],
)
def test_bundled_preference_data_in_both_layouts(tiny_tokenizer, stage: str, dataset: str) -> None:
    data = build_preference_datasets(_config(stage, dataset, val_size=0.1), tiny_tokenizer)
    assert data.stats.n_train + data.stats.n_eval >= 40 and data.stats.n_dropped == 0


def test_a_pair_is_the_sft_conversation_with_either_response(tiny_tokenizer) -> None:
    template = get_template("chatml", tiny_tokenizer)
    record = {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "What is 2 + 2?"},
        ],
        "system": "Be kind.",
        "tools": "",
        "chosen": "Sure! 2 + 2 = 4.",
        "rejected": "Ugh, 5.",
    }
    pair = tokenize_pairwise(record, tiny_tokenizer, template, cutoff_len=1024)
    for reply, ids in (("chosen", pair["chosen_ids"]), ("rejected", pair["rejected_ids"])):
        messages = [*record["messages"], {"role": "assistant", "content": record[reply]}]
        sft = tokenize_supervised({**record, "messages": messages}, tiny_tokenizer, template, cutoff_len=1024)
        assert pair["prompt_ids"] + ids == sft["input_ids"]
    assert pair["keep"]
    prompt = tokenize_prompt(record, tiny_tokenizer, template, max_prompt_len=1024)
    assert prompt["input_ids"] == pair["prompt_ids"]  # ppo generates from exactly where a reply starts
    kto = tokenize_unpaired(
        {
            **record,
            "messages": [*record["messages"], {"role": "assistant", "content": "Four."}],
            "kto_tag": False,
        },
        tiny_tokenizer,
        template,
        cutoff_len=1024,
    )
    assert kto["prompt_ids"] == pair["prompt_ids"] and kto["label"] is False


def test_cutoff_keeps_the_end_of_the_prompt_and_the_start_of_the_replies(tiny_tokenizer) -> None:
    template = get_template("chatml", tiny_tokenizer)
    long_question = "please " * 80 + "what is two plus two?"
    record = {"messages": [{"role": "user", "content": long_question}], "system": "", "tools": ""}
    pair = tokenize_pairwise(
        {**record, "chosen": "Sure! It is four. " * 10, "rejected": "No. " * 3},
        tiny_tokenizer,
        template,
        cutoff_len=40,
    )
    full = tokenize_pairwise(
        {**record, "chosen": "Sure! It is four. " * 10, "rejected": "No. " * 3},
        tiny_tokenizer,
        template,
        cutoff_len=4096,
    )
    assert len(pair["prompt_ids"]) + len(pair["chosen_ids"]) <= 40
    assert (
        pair["prompt_ids"] == full["prompt_ids"][-len(pair["prompt_ids"]) :]
    )  # the question and header survive
    assert pair["chosen_ids"] == full["chosen_ids"][: len(pair["chosen_ids"])]
    same_start = tokenize_pairwise(
        {**record, "chosen": "Sure! It is four.", "rejected": "Sure! It is five."},
        tiny_tokenizer,
        template,
        cutoff_len=3,
    )
    assert not same_start["keep"]  # identical after the cut: nothing to prefer
    assert (
        split_budget(10, 100, 20) == (10, 10)
        and split_budget(100, 5, 20) == (15, 5)
        and split_budget(50, 50, 20) == (10, 10)
    )


def test_preference_data_errors_name_the_stage_and_columns(tiny_tokenizer) -> None:
    with pytest.raises(DataError, match=r"stage dpo expects columns 'chosen' and 'rejected'"):
        build_preference_datasets(_config("dpo", "instruct_en"), tiny_tokenizer)
    with pytest.raises(DataError, match="stage kto expects a column of true/false labels"):
        build_preference_datasets(_config("kto", "chat_sharegpt"), tiny_tokenizer)
    with pytest.raises(DataError, match="leaves no room for a prompt"):
        build_preference_datasets(_config("ppo", "pref_polite_en", cutoff_len=16), tiny_tokenizer)


def test_bundled_preference_files_match_their_generator(tmp_path: Path) -> None:
    script = runpy.run_path(str(DATA_DIR / "make_preference.py"))
    assert script["main"](["--check"]) == 0
    stale = tmp_path / "pref_polite_en.json"
    stale.write_text("[]\n")
    assert script["main"](["--check", "--dir", str(tmp_path)]) == 1
    files = script["build_files"]()
    pairs = files["pref_polite_en.json"]
    assert all(p["chosen"] != p["rejected"] for p in pairs)
    assert len({p["instruction"] for p in pairs}) == len(pairs)
    kto = files["kto_polite_en.json"]
    assert 0.45 < sum(r["label"] for r in kto) / len(kto) < 0.75
    pair_prompts = {p["instruction"] for p in pairs}
    assert not pair_prompts & {r["instruction"] for r in kto}  # kto answers are unpaired, to other prompts
