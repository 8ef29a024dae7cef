"""tunelab data select: IFD as the paper defines it, resumable scoring, the kept share in the input format."""

from __future__ import annotations

import json
import math

import pytest

from tunelab.errors import ConfigError
from tunelab.quality.select import select_data


@pytest.fixture
def sft_config(make_config, tiny_model_dir):
    return make_config("chat", "sft", f"model_name_or_path={tiny_model_dir}", "compute_type=fp32")


def test_ifd_is_conditioned_loss_over_answer_alone(sft_config, tmp_path):
    import torch

    from tunelab.infer.engine import load_engine

    result = select_data(sft_config, tmp_path / "sel", by="ifd", keep=1)
    rows = [json.loads(line) for line in (tmp_path / "sel" / "scores.jsonl").read_text().splitlines()]
    assert result.n_total == len(rows) == 3
    engine = load_engine(sft_config)
    tok, template = engine.tokenizer, engine.template
    record = {
        "messages": [
            {"role": "user", "content": "Tell me a joke"},
            {"role": "assistant", "content": "Why did the chicken cross the road?"},
        ]
    }
    turns = template.encode_turns(tok, record["messages"])
    prompt, answer = turns[0]

    def mean_loss(ids, start):
        logits = engine.model(input_ids=torch.tensor([ids])).logits[0, :-1].float()
        targets = torch.tensor(ids[1:])
        losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
        return float(losses[start - 1 :].mean())

    with torch.no_grad():
        conditioned = mean_loss(prompt + answer, len(prompt))
        alone = mean_loss(([tok.bos_token_id] if template.adds_bos else []) + answer, 1)
    row = next(r for r in rows if r["index"] == 2)
    assert row["loss"] == pytest.approx(conditioned, rel=1e-4)
    assert row["loss_alone"] == pytest.approx(alone, rel=1e-4)
    assert row["score"] == pytest.approx(conditioned / alone, rel=1e-4)


def test_select_resumes_after_an_interruption(sft_config, tmp_path):
    out = tmp_path / "sel"

    def stop_after_first(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        select_data(sft_config, out, by="perplexity", keep=2, batch_size=1, on_batch=stop_after_first)
    assert len((out / "scores.jsonl").read_text().splitlines()) == 1
    resumed = select_data(sft_config, out, by="perplexity", keep=2, batch_size=1)
    assert resumed.n_scored_now == 2
    whole = select_data(sft_config, tmp_path / "whole", by="perplexity", keep=2, batch_size=1)
    scores = lambda d: sorted(json.loads(x)["score"] for x in (d / "scores.jsonl").read_text().splitlines())  # noqa: E731
    assert scores(out) == pytest.approx(scores(tmp_path / "whole"), rel=1e-5)
    assert (out / "data" / "chat.jsonl").read_text() == (
        tmp_path / "whole" / "data" / "chat.jsonl"
    ).read_text()
    assert whole.n_kept == 2 and math.isfinite(whole.mean_kept) and whole.mean_kept <= whole.mean_all


def test_length_keeps_the_longest_in_file_order(make_config, tmp_path, data_dir):
    result = select_data(
        make_config("sft", "sft", "template=chatml"), tmp_path / "sel", by="length", keep=0.5
    )
    kept = json.loads((tmp_path / "sel" / "data" / "sft.json").read_text())
    rows = [json.loads(x) for x in (tmp_path / "sel" / "scores.jsonl").read_text().splitlines()]
    longest = sorted(rows, key=lambda r: (-r["score"], r["index"]))[: result.n_kept]
    original = json.loads((data_dir / "sft.json").read_text())
    assert kept == [original[i] for i in sorted(r["index"] for r in longest)]
    registry = json.loads((tmp_path / "sel" / "dataset_info.json").read_text())
    assert registry["sft"]["file_name"] == "data/sft.json"


def test_changed_settings_refuse_old_scores(sft_config, make_config, tmp_path, tiny_model_dir):
    select_data(sft_config, tmp_path / "sel", by="length", keep=1)
    other = make_config("chat", "sft", f"model_name_or_path={tiny_model_dir}", "cutoff_len=64")
    with pytest.raises(ConfigError, match="cutoff_len"):
        select_data(other, tmp_path / "sel", by="length", keep=1)


def test_ifd_needs_prompt_and_answer(make_config):
    with pytest.raises(ConfigError, match="--by ifd"):
        select_data(make_config("text", "pt"), "unused", by="ifd")


@pytest.mark.parametrize(
    ("dataset", "stage", "file", "extra"),
    [
        ("dpo", "dpo", "dpo.json", ()),
        ("kto", "kto", "kto.json", ()),
        ("text", "pt", "text.txt", ()),
        ("cls", "cls", "cls.csv", ("model_name_or_path=tiny:bert", "val_size=0", "test_size=0")),
    ],
)
def test_length_selection_writes_every_format_back(make_config, tmp_path, dataset, stage, file, extra):
    from tunelab.data.files import read_rows

    result = select_data(make_config(dataset, stage, *extra), tmp_path / "sel", by="length", keep=2)
    kept = read_rows(tmp_path / "sel" / "data" / file)
    assert result.n_kept == len(kept) == 2
    registry = json.loads((tmp_path / "sel" / "dataset_info.json").read_text())
    assert registry[dataset]["file_name"] == f"data/{file}"
