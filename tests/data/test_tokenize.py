"""Tokenization: exact label masks, multi-turn masking, cutoff, pre-training chunks, dataset mapping."""

from __future__ import annotations

import random

import datasets
import pytest

from tunelab.data.records import new_record
from tunelab.data.template import get_template
from tunelab.data.tokenize import (
    IGNORE_INDEX,
    _cut_turn,
    tokenize_dataset,
    tokenize_dataset_with_report,
    tokenize_pretrain,
    tokenize_supervised,
)
from tunelab.errors import ConfigError, DataError

M = IGNORE_INDEX


def enc(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)


def chat(*contents, system=""):
    roles = ["user", "assistant"] * len(contents)
    messages = [{"role": r, "content": c} for r, c in zip(roles, contents)]
    return new_record(messages=messages, system=system, source=f"test#{len(contents)}")


def sft(record, tok, name="chatml", cutoff_len=1024, **kw):
    return tokenize_supervised(record, tok, get_template(name, tok), cutoff_len=cutoff_len, **kw)


def test_default_template_masks_the_prompt_exactly(tiny_tokenizer):
    tok = tiny_tokenizer
    eos = tok.eos_token_id
    out = sft(chat("Name a colour.", "Blue."), tok, "default")
    prompt = enc(tok, "Human: Name a colour.") + [eos] + enc(tok, "\nAssistant:")
    response = enc(tok, "Blue.") + [eos] + enc(tok, "\n")
    assert out["input_ids"] == prompt + response
    assert out["labels"] == [M] * len(prompt) + response
    assert out["was_cut"] is False and out["n_full_tokens"] == len(prompt) + len(response)


def chatml_turns(tok):
    start, end = tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("<|im_end|>")
    nl = enc(tok, "\n")

    def prompt(q):
        return [start] + enc(tok, "user\n" + q) + [end] + nl + [start] + enc(tok, "assistant\n")

    def response(a):
        return enc(tok, a) + [end] + nl

    return [(prompt("Hi"), response("Hello.")), (prompt("Bye"), response("See you."))]


def test_multi_turn_learns_every_response(tiny_tokenizer):
    (p1, r1), (p2, r2) = chatml_turns(tiny_tokenizer)
    out = sft(chat("Hi", "Hello.", "Bye", "See you."), tiny_tokenizer)
    assert out["input_ids"] == p1 + r1 + p2 + r2
    assert out["labels"] == [M] * len(p1) + r1 + [M] * len(p2) + r2


def test_mask_history_learns_only_the_last_response(tiny_tokenizer):
    (p1, r1), (p2, r2) = chatml_turns(tiny_tokenizer)
    out = sft(chat("Hi", "Hello.", "Bye", "See you."), tiny_tokenizer, mask_history=True)
    assert out["input_ids"] == p1 + r1 + p2 + r2
    assert out["labels"] == [M] * (len(p1) + len(r1) + len(p2)) + r2


def test_train_on_prompt_learns_prompts_of_learned_turns(tiny_tokenizer):
    (p1, r1), (p2, r2) = chatml_turns(tiny_tokenizer)
    record = chat("Hi", "Hello.", "Bye", "See you.")
    assert sft(record, tiny_tokenizer, train_on_prompt=True)["labels"] == p1 + r1 + p2 + r2
    with_history_masked = sft(record, tiny_tokenizer, train_on_prompt=True, mask_history=True)["labels"]
    assert with_history_masked == [M] * (len(p1) + len(r1)) + p2 + r2


def test_tokenizer_template_masks_like_chatml(tiny_tokenizer):
    record = chat("Hi", "Hello.", "Bye", "See you.", system="Be brief.")
    assert sft(record, tiny_tokenizer, "tokenizer") == sft(record, tiny_tokenizer, "chatml")


def test_cut_turn_shares_the_budget():
    prompt, response = list(range(100, 110)), list(range(200, 203))
    assert _cut_turn(prompt, response, 8) == (prompt[-5:], response)  # short response kept whole
    prompt, response = list(range(100, 103)), list(range(200, 210))
    assert _cut_turn(prompt, response, 8) == (prompt, response[:5])  # short prompt kept whole
    prompt, response = list(range(100, 130)), list(range(200, 210))
    assert _cut_turn(prompt, response, 8) == (prompt[-6:], response[:2])  # both long: 30:10 -> 6:2


def test_cutoff_keeps_the_assistant_header_and_response_start(tiny_tokenizer):
    tok = tiny_tokenizer
    answer = "Because the sky scatters blue light."
    response = enc(tok, answer) + enc(tok, "<|im_end|>\n")
    record = chat("why " * 200, answer)
    # A short response (at most half the budget) is kept whole; the prompt keeps its end.
    cutoff = 2 * len(response) + 6
    out = sft(record, tok, cutoff_len=cutoff)
    assert len(out["input_ids"]) == cutoff and out["was_cut"]
    n_prompt = cutoff - len(response)
    assert out["labels"] == [M] * n_prompt + response
    assert tok.decode(out["input_ids"][:n_prompt]).endswith("why <|im_end|>\n<|im_start|>assistant\n")
    # A long response is cut at its end, keeping its beginning.
    out = sft(chat("Why?", answer * 40), tok, cutoff_len=cutoff)
    learned = [label for label in out["labels"] if label != M]
    assert len(out["input_ids"]) == cutoff and learned == enc(tok, answer * 40)[: len(learned)]


def test_cutoff_keeps_whole_earlier_turns(tiny_tokenizer):
    (p1, r1), (p2, r2) = chatml_turns(tiny_tokenizer)
    record = chat("Hi", "Hello.", "Bye", "See you.")
    # The second prompt fits but not the whole response: the response is cut.
    budget = len(p1) + len(r1) + len(p2) + 2
    out = sft(record, tiny_tokenizer, cutoff_len=budget)
    assert out["input_ids"] == p1 + r1 + p2 + r2[:2]
    # The second prompt does not fit: the turn is dropped, not learned without its question.
    out = sft(record, tiny_tokenizer, cutoff_len=len(p1) + len(r1) + len(p2) - 1)
    assert out["input_ids"] == p1 + r1 and out["labels"] == [M] * len(p1) + r1


def test_cutoff_with_mask_history_fits_the_last_turn_first(tiny_tokenizer):
    _, (p2, r2) = chatml_turns(tiny_tokenizer)
    record = chat("Hi", "Hello.", "Bye", "See you.")
    out = sft(record, tiny_tokenizer, cutoff_len=len(p2) + len(r2) + 3, mask_history=True)
    assert out["input_ids"] == p2 + r2  # the first turn no longer fits whole
    assert out["labels"] == [M] * len(p2) + r2


def test_cutoff_is_never_exceeded(tiny_tokenizer):
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]
    for _ in range(60):
        n_turns = rng.randint(1, 4)
        contents = [" ".join(rng.choices(words, k=rng.randint(1, 40))) for _ in range(2 * n_turns)]
        cutoff = rng.randint(4, 80)
        for mask_history in (False, True):
            out = sft(chat(*contents), tiny_tokenizer, cutoff_len=cutoff, mask_history=mask_history)
            assert len(out["input_ids"]) == len(out["labels"]) <= cutoff
            assert out["was_cut"] == (out["n_full_tokens"] > cutoff)
            assert any(label != M for label in out["labels"])  # something is always learned


def test_pretrain_concatenates_and_chunks(tiny_tokenizer):
    tok = tiny_tokenizer
    texts = ["The cat sat on the mat.", "", "Dogs bark at night and sleep by day."]
    out = tokenize_pretrain(texts, tok, cutoff_len=5)
    stream = enc(tok, texts[0]) + [tok.eos_token_id] + enc(tok, texts[2]) + [tok.eos_token_id]
    expected = [stream[i : i + 5] for i in range(0, len(stream), 5)]
    assert out["input_ids"] == [block for block in expected if len(block) >= 2]
    assert len(out["input_ids"]) >= 3
    assert out["labels"] == out["input_ids"]


def test_pretrain_without_concatenation_keeps_documents_apart(tiny_tokenizer):
    tok = tiny_tokenizer
    texts = ["The cat sat on the mat.", "Dogs bark at night and sleep by day."]
    out = tokenize_pretrain(texts, tok, cutoff_len=1000, concatenate=False)
    assert out["input_ids"] == [enc(tok, t) + [tok.eos_token_id] for t in texts]


def test_tokenize_dataset_sft_and_report(tiny_tokenizer):
    tok = tiny_tokenizer
    records = datasets.Dataset.from_list(
        [chat("Hi", "Hello."), chat("why " * 50, "Because."), chat("Bye", "See you.", "Again?", "Yes.")]
    )
    template = get_template("chatml", tok)
    data, report = tokenize_dataset_with_report(records, tok, template, stage="sft", cutoff_len=48)
    assert data.column_names == ["input_ids", "labels"]
    for row, record in zip(data, records):
        expected = sft(record, tok, cutoff_len=48)
        assert row == {"input_ids": expected["input_ids"], "labels": expected["labels"]}
    full = [sft(r, tok)["n_full_tokens"] for r in records]
    assert report.lengths == full and report.n_cut == sum(n > 48 for n in full) == 1
    assert (report.n_records, report.n_samples, report.n_sequences, report.n_dropped) == (3, 3, 3, 0)
    # cutoff_len=1 leaves no token after the first to learn: every sample is dropped and counted.
    data, report = tokenize_dataset_with_report(records, tok, template, stage="sft", cutoff_len=1)
    assert len(data) == 0 and report.n_dropped == 3


def test_tokenize_dataset_pt_and_packing(tiny_tokenizer):
    tok = tiny_tokenizer
    texts = ["The cat sat on the mat.", "Dogs bark at night.", "", "Birds sing in the morning light."]
    records = datasets.Dataset.from_list([new_record(text=t, source=f"pt#{i}") for i, t in enumerate(texts)])
    template = get_template("default", tok)
    plain = tokenize_dataset(records, tok, template, stage="pt", cutoff_len=8)
    assert plain["input_ids"] == tokenize_pretrain(texts, tok, cutoff_len=8)["input_ids"]
    packed, report = tokenize_dataset_with_report(
        records, tok, template, stage="pt", cutoff_len=64, packing=True
    )
    assert report.n_samples == 3 and report.n_dropped == 1  # the empty text
    assert report.lengths == [len(enc(tok, t)) + 1 for t in texts if t]
    assert len(packed) == 1 and packed[0]["position_ids"].count(0) == 3


def test_tokenize_dataset_rejects_other_stages_and_wrong_records(tiny_tokenizer):
    template = get_template("chatml", tiny_tokenizer)
    records = datasets.Dataset.from_list([chat("Hi", "Hello.")])
    with pytest.raises(ConfigError, match="stage module"):
        tokenize_dataset(records, tiny_tokenizer, template, stage="dpo", cutoff_len=16)
    with pytest.raises(DataError, match="text"):
        tokenize_dataset(
            datasets.Dataset.from_dict({"messages": [[]]}),
            tiny_tokenizer,
            template,
            stage="pt",
            cutoff_len=16,
        )
    bad = datasets.Dataset.from_list(
        [new_record(messages=[{"role": "user", "content": "x"}], source="mine.json#7")]
    )
    with pytest.raises(DataError, match="mine.json#7"):
        tokenize_dataset(bad, tiny_tokenizer, template, stage="sft", cutoff_len=16)
