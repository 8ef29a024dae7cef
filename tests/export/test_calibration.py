"""GPTQ calibration texts: datasets rendered as the model sees them, files as they are, cut to size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tunelab.data.registry import resolve_dataset_dir
from tunelab.data.template import get_template
from tunelab.errors import DataError
from tunelab.export.calibration import calibration_texts

BUILTIN = resolve_dataset_dir("builtin")


@pytest.fixture(scope="module")
def chatml(tiny_tokenizer: Any) -> Any:
    return get_template("chatml", tiny_tokenizer)


def _texts(name: str, tokenizer: Any, template: Any, **options: Any) -> list[str]:
    settings = {"dataset_dir": "builtin", "n_samples": 1000, "max_len": 512, "seed": 42, **options}
    return calibration_texts(name, tokenizer, template, **settings)


def _chatml(user: str, assistant: str) -> str:
    return f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n{assistant}<|im_end|>\n"


def test_registered_dataset_is_rendered_with_the_chat_template(tiny_tokenizer: Any, chatml: Any) -> None:
    rows = json.loads((BUILTIN / "identity_en.json").read_text(encoding="utf-8"))
    assert all(not row["input"] for row in rows)
    texts = _texts("identity_en", tiny_tokenizer, chatml)
    assert len(texts) == len(rows)  # every record once, none repeated
    assert set(texts) == {_chatml(row["instruction"], row["output"]) for row in rows}


def test_pairwise_data_calibrates_on_the_chosen_reply(tiny_tokenizer: Any, chatml: Any) -> None:
    rows = json.loads((BUILTIN / "pref_polite_en.json").read_text(encoding="utf-8"))
    texts = set(_texts("pref_polite_en", tiny_tokenizer, chatml))
    first = rows[0]
    assert _chatml(first["instruction"], first["chosen"]) in texts
    assert not any(row["rejected"] in text for row in rows for text in texts)


def test_pretraining_text_is_used_as_is(tiny_tokenizer: Any, chatml: Any) -> None:
    lines = [
        line
        for line in (BUILTIN / "pretrain_text.txt").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    texts = _texts("pretrain_text", tiny_tokenizer, chatml, max_len=4096)
    assert set(texts) <= set(lines) and len(texts) == len(lines)
    assert not any("<|im_start|>" in text for text in texts)


def test_choice_is_seeded_and_capped_at_nsamples(tiny_tokenizer: Any, chatml: Any) -> None:
    everything = set(_texts("instruct_en", tiny_tokenizer, chatml))
    first = _texts("instruct_en", tiny_tokenizer, chatml, n_samples=8, seed=1)
    assert len(first) == 8 and set(first) <= everything
    assert _texts("instruct_en", tiny_tokenizer, chatml, n_samples=8, seed=1) == first
    assert _texts("instruct_en", tiny_tokenizer, chatml, n_samples=8, seed=2) != first


def test_texts_are_cut_to_maxlen_tokens(tiny_tokenizer: Any, chatml: Any) -> None:
    full = _texts("chat_sharegpt", tiny_tokenizer, chatml, max_len=100_000)
    cut = _texts("chat_sharegpt", tiny_tokenizer, chatml, max_len=24)
    lengths = [len(tiny_tokenizer(text)["input_ids"]) for text in cut]
    assert max(lengths) <= 24 and max(len(tiny_tokenizer(t)["input_ids"]) for t in full) > 24
    # same choice, each text the start of its full rendering
    assert all(whole.startswith(part) for part, whole in zip(cut, full, strict=True))
    assert cut[0].startswith("<|im_start|>")


def test_txt_and_jsonl_files(tiny_tokenizer: Any, chatml: Any, tmp_path: Path) -> None:
    txt = tmp_path / "calib.txt"
    txt.write_text("first sample\n\n   \nsecond sample\nthird sample\n", encoding="utf-8")
    texts = _texts(str(txt), tiny_tokenizer, chatml)
    assert sorted(texts) == ["first sample", "second sample", "third sample"]
    assert len(_texts(str(txt), tiny_tokenizer, chatml, n_samples=2)) == 2

    plain = tmp_path / "plain.jsonl"
    plain.write_text("\n".join(json.dumps({"text": f"document {i}"}) for i in range(5)), encoding="utf-8")
    assert sorted(_texts(str(plain), tiny_tokenizer, chatml)) == [f"document {i}" for i in range(5)]

    chat = tmp_path / "chat.jsonl"
    chat.write_text(
        json.dumps({"instruction": "Hi", "input": "", "output": "Hello!"}) + "\n", encoding="utf-8"
    )
    assert _texts(str(chat), tiny_tokenizer, chatml) == [_chatml("Hi", "Hello!")]


def test_unreadable_calibration_data_names_the_key(tiny_tokenizer: Any, chatml: Any, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="export_quantization_dataset: calibration file .* does not exist"):
        _texts(str(tmp_path / "missing.txt"), tiny_tokenizer, chatml)
    with pytest.raises(DataError, match="export_quantization_dataset='instruct_enn'") as info:
        _texts("instruct_enn", tiny_tokenizer, chatml)
    assert "instruct_en" in info.value.message and "instruct_en" in info.value.hint
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match="holds no text") as info:
        _texts(str(empty), tiny_tokenizer, chatml)
    assert "export_quantization_dataset" in info.value.hint
