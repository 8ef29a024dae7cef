"""streaming: true trains on a file read lazily, with LLaMA-Factory's rules for max_steps and val_size."""

from __future__ import annotations

import json

import pytest

from tunelab.config import load_config
from tunelab.errors import ConfigError


def _config(tmp_path, tiny_model_dir, *extra):
    return load_config(
        None,
        [
            f"model_name_or_path={tiny_model_dir}",
            f"dataset={tmp_path / 'big.jsonl'}",
            "template=chatml",
            "streaming=true",
            "buffer_size=16",
            "max_steps=3",
            "per_device_train_batch_size=2",
            f"output_dir={tmp_path / 'run'}",
            "report_to=none",
            *extra,
        ],
    )


@pytest.fixture
def big_file(tmp_path):
    rows = [
        {"instruction": f"Add {i} and {i + 1}.", "input": "", "output": f"{2 * i + 1}"} for i in range(3000)
    ]
    (tmp_path / "big.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "big.jsonl"


def test_streaming_trains_reading_only_what_it_needs(tmp_path, tiny_model_dir, big_file, monkeypatch):
    import tunelab.data.streaming as streaming
    from tunelab.train import train

    read = {"rows": 0}
    original = streaming.iter_rows

    def counting(path):
        for row in original(path):
            read["rows"] += 1
            yield row

    monkeypatch.setattr(streaming, "iter_rows", counting)
    result = train(_config(tmp_path, tiny_model_dir, "val_size=4", "eval_strategy=steps", "eval_steps=3"))
    assert result.metrics["global_step"] == 3 and result.metrics["train_loss"] > 0
    assert "eval_loss" in result.metrics
    # 3 steps x 2 records, a 16-record shuffle buffer and one tokenizing batch: far from all 3000
    assert 0 < read["rows"] < 1000


def test_eval_split_is_the_first_records_and_skipped_by_training(tmp_path, tiny_model_dir, big_file):
    from tunelab.data.streaming import stream_datasets
    from tunelab.data.template import get_template
    from tunelab.model import load_tokenizer

    config = _config(tmp_path, tiny_model_dir, "val_size=5", "buffer_size=1")
    tokenizer = load_tokenizer(config.model)
    train, eval_records = stream_datasets(config, tokenizer, get_template("chatml", tokenizer))
    assert [r["source"] for r in eval_records] == [f"{big_file}#{i}" for i in range(5)]
    first = next(iter(train))
    assert tokenizer.decode(first["input_ids"]).count("Add 5 and 6.") == 1  # record 5 comes first


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("max_steps=-1",), "set max_steps"),
        (("val_size=0.1",), "val_size as a count"),
        (("stage=dpo",), "stages pt and sft"),
    ],
)
def test_streaming_rules_name_the_fix(tmp_path, tiny_model_dir, big_file, extra, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, tiny_model_dir, *extra)


def test_json_arrays_stream_item_by_item(tmp_path):
    from tunelab.data.streaming import iter_rows

    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"text": "a", "n": 1.5}, {"text": "b"}]))
    assert list(iter_rows(path)) == [{"text": "a", "n": 1.5}, {"text": "b"}]
