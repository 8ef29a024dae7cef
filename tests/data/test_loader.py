"""load_records: every shared demo loads through its entry; files, caps, mixing and splits behave."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.config import DataArgs
from tunelab.data.files import read_rows
from tunelab.data.loader import load_dataset_records, load_records
from tunelab.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "dataset_info.json").is_file(), reason="no shared demo data")


@needs_shared
@pytest.mark.parametrize(
    ("name", "stage", "count"),
    [
        ("alpaca_en_demo", "sft", 999),
        ("alpaca_zh_demo", "sft", 1000),
        ("identity", "sft", 91),
        ("c4_demo", "pt", 300),
        ("wiki_demo", "pt", 30),
        ("dpo_en_demo", "dpo", 300),
        ("dpo_zh_demo", "rm", 300),
        ("kto_en_demo", "kto", 300),
        ("glaive_toolcall_en_demo", "sft", 300),
        ("glaive_toolcall_zh_demo", "sft", 300),
    ],
)
def test_shared_demo_loads_through_its_entry(name: str, stage: str, count: int) -> None:
    records = load_dataset_records(name, dataset_dir=str(SHARED), stage=stage)
    assert len(records) == count
    assert records[count - 1]["source"] == f"{name}#{count - 1}"
    if stage == "pt":
        assert all(r["text"] for r in records)
    else:
        assert all(r["messages"] and r["messages"][0]["role"] in ("user", "observation") for r in records)


@needs_shared
def test_shared_pairwise_kto_and_tool_demos_keep_their_fields() -> None:
    dpo = load_dataset_records("dpo_en_demo", dataset_dir=str(SHARED), stage="dpo")
    assert all(r["chosen"] and r["rejected"] is not None for r in dpo)
    assert all(r["messages"][-1]["role"] == "user" for r in dpo)
    assert sum(bool(r["system"]) for r in dpo) == 80  # the "system human" conversations
    kto = load_dataset_records("kto_en_demo", dataset_dir=str(SHARED), stage="kto")
    assert {r["kto_tag"] for r in kto} == {True, False}
    assert all(r["messages"][-1]["role"] == "assistant" for r in kto)
    tools = load_dataset_records("glaive_toolcall_en_demo", dataset_dir=str(SHARED), stage="sft")
    assert all(json.loads(r["tools"]) is not None for r in tools if r["tools"])
    roles = {m["role"] for r in tools for m in r["messages"]}
    assert roles == {"user", "assistant", "function", "observation"}


@needs_shared
def test_shared_sft_data_serves_pretraining() -> None:
    records = load_dataset_records("identity", dataset_dir=str(SHARED), stage="pt", max_samples=1)
    assert records[0]["text"].startswith("hi\nHello! I am {{name}}")


def write_registry(folder: Path, entries: dict) -> str:
    (folder / "dataset_info.json").write_text(json.dumps(entries))
    return str(folder)


def alpaca_rows(n: int, tag: str = "q") -> list[dict]:
    return [{"instruction": f"{tag}{i}", "input": "", "output": f"a{i}"} for i in range(n)]


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    """A dataset_dir with a 20-record and a 5-record alpaca dataset."""
    (tmp_path / "big.json").write_text(json.dumps(alpaca_rows(20, "big")))
    (tmp_path / "small.jsonl").write_text("\n".join(json.dumps(r) for r in alpaca_rows(5, "small")))
    return write_registry(tmp_path, {"big": {"file_name": "big.json"}, "small": {"file_name": "small.jsonl"}})


def users(dataset) -> list[str]:
    return [r["messages"][0]["content"] for r in dataset]


def test_csv_parquet_txt_and_folder_files(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(alpaca_rows(3))
    frame.to_csv(tmp_path / "rows.csv", index=False)
    frame.to_parquet(tmp_path / "rows.parquet")
    (tmp_path / "docs.txt").write_text("first doc\n\n  \nsecond doc\n")
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "a.json").write_text(json.dumps(alpaca_rows(2, "a")))
    (tmp_path / "parts" / "b.jsonl").write_text(json.dumps(alpaca_rows(1, "b")[0]) + "\n")
    folder = write_registry(
        tmp_path,
        {
            "csv": {"file_name": "rows.csv"},
            "parquet": {"file_name": "rows.parquet"},
            "docs": {"file_name": "docs.txt", "columns": {"prompt": "text"}},
            "parts": {"file_name": "parts"},
        },
    )
    for name in ("csv", "parquet"):
        assert users(load_dataset_records(name, dataset_dir=folder, stage="sft")) == ["q0", "q1", "q2"]
    assert [r["text"] for r in load_dataset_records("docs", dataset_dir=folder, stage="pt")] == [
        "first doc",
        "second doc",
    ]
    parts = load_dataset_records("parts", dataset_dir=folder, stage="sft")
    assert users(parts) == ["a0", "a1", "b0"]
    assert parts[2]["source"] == "parts/b.jsonl#0"
    direct = load_dataset_records(str(tmp_path / "rows.csv"), dataset_dir="nowhere", stage="sft")
    assert users(direct) == ["q0", "q1", "q2"]


def test_file_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n\n{"text": broken}\n')
    with pytest.raises(DataError, match="bad.jsonl line 3 is not valid JSON"):
        read_rows(bad)
    obj = tmp_path / "obj.json"
    obj.write_text('{"text": "a"}')
    with pytest.raises(DataError, match="obj.json holds a JSON dict, expected a list of records"):
        read_rows(obj)
    items = tmp_path / "items.json"
    items.write_text('[{"text": "a"}, "b"]')
    with pytest.raises(DataError, match="items.json record 1 is a JSON str"):
        read_rows(items)


def test_json_lines_under_a_json_name_is_read(tmp_path: Path) -> None:
    path = tmp_path / "lines.json"
    path.write_text('{"text": "a"}\n{"text": "b"}\n')
    assert read_rows(path) == [{"text": "a"}, {"text": "b"}]


def test_max_samples_takes_the_first_records(data_dir: str) -> None:
    records = load_dataset_records("big", dataset_dir=data_dir, stage="sft", max_samples=3)
    assert users(records) == ["big0", "big1", "big2"]


def test_num_samples_in_entry_samples_with_repeats(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text(json.dumps(alpaca_rows(4)))
    folder = write_registry(
        tmp_path,
        {"down": {"file_name": "d.json", "num_samples": 2}, "up": {"file_name": "d.json", "num_samples": 10}},
    )
    down = users(load_dataset_records("down", dataset_dir=folder, stage="sft", seed=0))
    assert len(down) == 2 and len(set(down)) == 2
    up = users(load_dataset_records("up", dataset_dir=folder, stage="sft", seed=0))
    assert len(up) == 10 and set(up) == {"q0", "q1", "q2", "q3"}


def test_val_size_fraction_and_count(data_dir: str) -> None:
    split = load_records(DataArgs(dataset=["big"], dataset_dir=data_dir, val_size=0.25), "sft", seed=0)
    assert (len(split.train), len(split.eval)) == (15, 5)
    assert not set(users(split.train)) & set(users(split.eval))
    split = load_records(DataArgs(dataset=["big"], dataset_dir=data_dir, val_size=3), "sft", seed=0)
    assert (len(split.train), len(split.eval)) == (17, 3)
    assert load_records(DataArgs(dataset=["big"], dataset_dir=data_dir), "sft", seed=0).eval is None


def test_val_size_count_too_large_is_refused(data_dir: str) -> None:
    with pytest.raises(DataError, match="val_size=20 asks for 20 eval records but big has only 20"):
        load_records(DataArgs(dataset=["big"], dataset_dir=data_dir, val_size=20), "sft", seed=0)


def test_eval_dataset_and_its_conflict_with_val_size(data_dir: str) -> None:
    split = load_records(
        DataArgs(dataset=["big"], eval_dataset=["small"], dataset_dir=data_dir), "sft", seed=0
    )
    assert (len(split.train), users(split.eval)) == (20, [f"small{i}" for i in range(5)])
    with pytest.raises(ConfigError, match="both eval_dataset"):
        load_records(
            DataArgs(dataset=["big"], eval_dataset=["small"], val_size=0.1, dataset_dir=data_dir),
            "sft",
            seed=0,
        )


def test_mixing_two_datasets(data_dir: str) -> None:
    def mix(**options) -> list[str]:
        args = DataArgs(dataset=["big", "small"], dataset_dir=data_dir, **options)
        return users(load_records(args, "sft", seed=0).train)

    concat = mix()
    assert sorted(concat) == sorted([f"big{i}" for i in range(20)] + [f"small{i}" for i in range(5)])
    under = mix(mix_strategy="interleave_under")  # alternates until small runs out
    assert sum(u.startswith("small") for u in under) == 5 and len(under) <= 11
    over = mix(mix_strategy="interleave_over", interleave_probs=[0.5, 0.5])  # until big runs out
    assert {f"big{i}" for i in range(20)} <= set(over) and sum(u.startswith("small") for u in over) > 5
    with pytest.raises(ConfigError, match="interleave_probs has 1 values for 2 datasets"):
        mix(mix_strategy="interleave_under", interleave_probs=[1.0])


def test_mixing_alpaca_with_sharegpt_and_optional_none_columns(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(alpaca_rows(3)))
    chat = [
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}], "tools": ""}
    ]
    (tmp_path / "s.json").write_text(json.dumps(chat))
    folder = write_registry(
        tmp_path,
        {
            "a": {"file_name": "a.json"},
            "s": {"file_name": "s.json", "formatting": "sharegpt", "columns": {"messages": "conversations"}},
        },
    )
    args = DataArgs(dataset=["a", "s"], dataset_dir=folder, mix_strategy="interleave_over")
    train = load_records(args, "sft", seed=0).train
    assert "hi" in users(train) and train.features["chosen"].dtype == "string"


def test_shuffle_is_seeded(data_dir: str) -> None:
    def order(seed: int) -> list[str]:
        return users(load_records(DataArgs(dataset=["big"], dataset_dir=data_dir), "sft", seed=seed).train)

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert order(1) != [f"big{i}" for i in range(20)]


def test_no_dataset_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no training dataset"):
        load_records(DataArgs(), "sft", seed=0)
