"""Data preview and the pipeline behind it: statistics checked against a hand computation."""

from __future__ import annotations

import json
import math

import pytest
from rich.console import Console

from tunelab.config import config_from_dict
from tunelab.data.pipeline import build_datasets, length_stats
from tunelab.data.preview import preview_data, render_preview

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def make_rows(n: int) -> list[dict[str, str]]:
    """Alpaca rows whose lengths grow with the index, so the statistics are easy to follow."""
    return [
        {
            "instruction": f"Repeat {i} words.",
            "input": "",
            "output": " ".join(WORDS[j % 10] for j in range(3 * i + 1)),
        }
        for i in range(n)
    ]


@pytest.fixture
def data_dir(tmp_path):
    (tmp_path / "rows.json").write_text(json.dumps(make_rows(20)), encoding="utf-8")
    corpus = [{"text": " ".join(WORDS[: 1 + i % 10]) + "."} for i in range(6)]
    (tmp_path / "corpus.json").write_text(json.dumps(corpus), encoding="utf-8")
    registry = {
        "rows": {"file_name": "rows.json"},
        "corpus": {"file_name": "corpus.json", "columns": {"prompt": "text"}},
    }
    (tmp_path / "dataset_info.json").write_text(json.dumps(registry), encoding="utf-8")
    return tmp_path


def config(data_dir, **extra):
    values = {
        "model_name_or_path": "tiny:llama",
        "dataset": "rows",
        "dataset_dir": str(data_dir),
        "template": "chatml",
        "cutoff_len": 40,
        **extra,
    }
    return config_from_dict(values)


def chatml_length(tok, question: str, answer: str) -> int:
    """Token count of one ChatML turn, from the template's pieces (not from tunelab's code)."""
    start, end = tok.convert_tokens_to_ids("<|im_start|>"), tok.convert_tokens_to_ids("<|im_end|>")
    prompt = (
        [start]
        + tok.encode("user\n" + question)
        + [end]
        + tok.encode("\n")
        + [start]
        + tok.encode("assistant\n")
    )
    return len(prompt) + len(tok.encode(answer) + [end] + tok.encode("\n"))


def test_length_stats_use_nearest_rank_p95():
    assert length_stats([]) == (0, 0.0, 0, 0)
    assert length_stats(list(range(1, 21))) == (1, 10.5, 19, 20)  # ceil(0.95 * 20) = 19th value
    assert length_stats([7]) == (7, 7.0, 7, 7)


def test_preview_stats_match_a_hand_computation(data_dir, tiny_tokenizer):
    tok = tiny_tokenizer
    lengths = sorted(chatml_length(tok, r["instruction"], r["output"]) for r in make_rows(20))
    report = preview_data(config(data_dir), tok, n=20)
    stats = report.stats
    assert (stats.n_train, stats.n_eval, stats.n_dropped, stats.n_train_sequences) == (20, 0, 0, 20)
    assert (stats.len_min, stats.len_max) == (lengths[0], lengths[-1])
    assert stats.len_mean == pytest.approx(sum(lengths) / 20)
    assert stats.len_p95 == lengths[math.ceil(0.95 * 20) - 1]
    assert stats.share_cut == pytest.approx(sum(n > 40 for n in lengths) / 20) and stats.share_cut > 0
    assert stats.len_max > 40  # the data really is cut at cutoff_len=40

    by_source = {sample.source: sample for sample in report.samples}  # the loader shuffles records
    first = by_source["rows#0"]
    assert first.n_tokens == lengths[0] and first.was_cut is False
    assert first.segments == [
        ("<|im_start|>user\nRepeat 0 words.<|im_end|>\n<|im_start|>assistant\n", False),
        ("alpha<|im_end|>\n", True),
    ]
    assert first.n_learned == len(tok.encode("alpha")) + 2
    longest = by_source["rows#19"]
    assert longest.was_cut and longest.n_tokens == 40
    assert longest.segments[0] == (
        "<|im_start|>user\nRepeat 19 words.<|im_end|>\n<|im_start|>assistant\n",
        False,
    )


def test_render_preview_marks_learned_text_without_colour(data_dir, tiny_tokenizer):
    report = preview_data(config(data_dir), tiny_tokenizer, n=20)
    console = Console(record=True, width=120, color_system=None)
    render_preview(report, console)
    text = console.export_text()
    assert "⟦alpha<|im_end|>" in text
    assert "│ Repeat 1 words.<|im_end|>" in text  # masked prompt text is shown too, unmarked
    stats = report.stats
    for value in (
        stats.len_min,
        stats.len_p95,
        stats.len_max,
        f"{stats.len_mean:.1f}",
        f"{100 * stats.share_cut:.1f}%",
    ):
        assert str(value) in text
    assert "template chatml" in text and "cutoff_len 40" in text


def test_build_datasets_with_eval_split_and_packing(data_dir, tiny_tokenizer):
    train, eval_set, stats = build_datasets(
        config(data_dir, val_size=0.25, packing=True, cutoff_len=256), tiny_tokenizer
    )
    assert stats.n_train == 15 and stats.n_eval == 5 and eval_set is not None
    assert set(train.column_names) == {"input_ids", "labels", "position_ids"}
    assert stats.n_train_sequences == len(train) < 15  # short samples share rows
    assert all(len(ids) <= 256 for ids in train["input_ids"])
    assert sum(row.count(0) for row in train["position_ids"]) == 15


def test_preview_pretraining_text(data_dir, tiny_tokenizer):
    report = preview_data(config(data_dir, stage="pt", dataset="corpus"), tiny_tokenizer, n=6)
    assert report.stage == "pt" and len(report.samples) == 6
    sample = next(s for s in report.samples if s.source == "corpus#0")
    assert sample.segments == [("alpha.<|im_end|>", True)]  # every pt token is learned, EOS appended
    assert (
        report.stats.n_train == 6
        and report.stats.len_max == len(tiny_tokenizer.encode(" ".join(WORDS[:6]) + ".")) + 1
    )


def _builtin(tiny_tokenizer_model: str, **values):
    return config_from_dict(
        {"model_name_or_path": tiny_tokenizer_model, "dataset_dir": "builtin", "template": "chatml", **values}
    )


@pytest.mark.parametrize(
    ("stage", "dataset", "roles"),
    [
        ("dpo", "pref_polite_en", ["chosen", "rejected"]),
        ("rm", "pref_polite_sharegpt", ["chosen", "rejected"]),
        ("kto", "kto_polite_en", None),
        ("ppo", "pref_polite_en", ["prompt (the policy writes the reply)"]),
    ],
)
def test_preview_preference_stages(tiny_model_dir, tiny_tokenizer, stage, dataset, roles):
    """Each stage shows what its trainer scores: the prompt masked, the response(s) learned."""
    # reward_model is only read when training; ppo keeps max_new_tokens of its cutoff_len for the reply
    extra = {"reward_model": str(tiny_model_dir), "max_new_tokens": 8} if stage == "ppo" else {}
    report = preview_data(
        _builtin(str(tiny_model_dir), stage=stage, dataset=dataset, cutoff_len=192, **extra),
        tiny_tokenizer,
        n=1,
    )
    first = report.samples[0]
    assert [s.role for s in report.samples] == (roles or [first.role]) and report.stats.n_train >= 40
    assert first.role in (roles or ["desirable", "undesirable"])
    prompt, *response = first.segments
    assert not prompt[1] and prompt[0].endswith("<|im_start|>assistant\n")  # the conversation up to the reply
    if stage == "ppo":
        assert response == [] and first.n_learned == 0
    else:
        assert response[0][1] and response[0][0].endswith("<|im_end|>\n")
        assert first.n_learned == len(tiny_tokenizer.encode(response[0][0], add_special_tokens=False))
    if stage in ("dpo", "rm"):
        assert report.samples[0].segments[0] == report.samples[1].segments[0]  # one prompt, two responses
        assert report.samples[0].segments[1] != report.samples[1].segments[1]
    console = Console(record=True, width=120, color_system=None)
    render_preview(report, console)
    assert f"sample 1 · {first.role} · " in console.export_text()


def test_preview_classification_shows_the_class(tiny_model_dir, tiny_tokenizer):
    report = preview_data(
        _builtin(str(tiny_model_dir), stage="cls", dataset="topics_synthetic", cutoff_len=8),
        tiny_tokenizer,
        n=5,
    )
    labels = {"label=space", "label=cooking", "label=animals"}
    assert len(report.samples) == 5 and {s.role for s in report.samples} <= labels
    assert all(s.n_learned == 0 and s.n_tokens <= 8 for s in report.samples)
    assert any(s.was_cut for s in report.samples) and report.stats.n_train == 210
