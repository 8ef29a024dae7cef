"""Uploading a data file into dataset_dir and paging through any dataset's raw records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.data.loader import load_dataset_records
from tunelab.errors import ConfigError, DataError
from tunelab.webui.context import UIContext
from tunelab.webui.dataset_view import (
    check_upload,
    page_html,
    read_page,
    save_upload,
    upload_checked,
    upload_saved,
)

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"  # LLaMA-Factory's demo data


def _write(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    else:
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def _alpaca(n: int) -> list[dict]:
    return [{"instruction": f"question {i}", "input": "", "output": f"answer {i}"} for i in range(n)]


@pytest.fixture
def ctx(ui_context: UIContext) -> UIContext:
    return ui_context


def test_alpaca_upload_is_saved_registered_and_trainable(tmp_path: Path) -> None:
    upload = _write(tmp_path / "my qa.jsonl", _alpaca(12))
    data = tmp_path / "data"
    target, check = save_upload(upload, data, "my_qa")
    assert check.kind == "sft" and check.formatting == "alpaca" and check.n_records == 12
    assert target == data / "my_qa.jsonl" and target.read_bytes() == upload.read_bytes()
    info = json.loads((data / "dataset_info.json").read_text())
    assert info["my_qa"]["file_name"] == "my_qa.jsonl" and info["my_qa"]["formatting"] == "alpaca"
    records = load_dataset_records("my_qa", dataset_dir=str(data), stage="sft")
    assert len(records) == 12 and records[3]["messages"][-1]["content"] == "answer 3"


def test_openai_style_messages_register_as_sharegpt_with_tags(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": f"hello {i}"}]}
        for i in range(3)
    ]
    data = tmp_path / "data"
    save_upload(_write(tmp_path / "chat.json", rows), data, "chat")
    entry = json.loads((data / "dataset_info.json").read_text())["chat"]
    assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages"}
    assert entry["tags"]["role_tag"] == "role" and entry["tags"]["user_tag"] == "user"
    records = load_dataset_records("chat", dataset_dir=str(data), stage="sft")
    assert records[2]["messages"][1] == {"role": "assistant", "content": "hello 2"}


def test_pairwise_csv_and_parquet_are_detected(tmp_path: Path) -> None:
    import pandas as pd

    frame = pd.DataFrame(
        {"instruction": ["q1", "q2"], "chosen": ["good", "fine"], "rejected": ["bad", "poor"]}
    )
    frame.to_csv(tmp_path / "pref.csv", index=False)
    frame.to_parquet(tmp_path / "pref.parquet")
    for name in ("pref.csv", "pref.parquet"):
        check = check_upload(tmp_path / name)
        assert check.kind == "dpo" and check.entry["ranking"] is True and check.n_records == 2


def test_existing_name_needs_the_replace_box(tmp_path: Path) -> None:
    data = tmp_path / "data"
    save_upload(_write(tmp_path / "a.json", _alpaca(2)), data, "qa")
    with pytest.raises(DataError, match="already registered") as caught:
        save_upload(_write(tmp_path / "b.json", _alpaca(5)), data, "qa")
    assert "replace" in caught.value.hint
    assert len(json.loads((data / "qa.json").read_text())) == 2  # untouched
    save_upload(tmp_path / "b.json", data, "qa", overwrite=True)
    assert len(json.loads((data / "qa.json").read_text())) == 5


def test_bad_json_names_the_file_and_line(tmp_path: Path) -> None:
    upload = tmp_path / "broken.jsonl"
    upload.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": }\n')
    with pytest.raises(DataError, match=r"broken\.jsonl line 2 is not valid JSON"):
        check_upload(upload)
    status, name = upload_checked("zh", str(upload))
    assert "broken.jsonl 不能用作数据集" in status and "line 2" in status and name == ""


def test_unknown_columns_and_builtin_folder_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot tell the format"):
        check_upload(_write(tmp_path / "odd.json", [{"foo": 1, "bar": 2}]))
    with pytest.raises(ConfigError, match="bundled"):
        save_upload(_write(tmp_path / "ok.json", _alpaca(1)), "builtin", "ok")
    with pytest.raises(ConfigError, match="not usable"):
        save_upload(tmp_path / "ok.json", tmp_path / "data", "../escape")


def test_pages_of_a_bundled_dataset_show_index_and_total() -> None:
    first = read_page("identity_en", "builtin", 0, page_size=4)
    assert first.start == 0 and len(first.records) == 4 and first.total > 4
    last = read_page("identity_en", "builtin", 10_000, page_size=4)  # clamped to the last page
    assert last.page == last.n_pages - 1 and last.start + len(last.records) == last.total
    assert read_page("identity_en", "builtin", 1, page_size=4).records[0] != first.records[0]


@pytest.mark.skipif(
    not (SHARED_DATA / "dataset_info.json").is_file(), reason="no LLaMA-Factory data folder here"
)
def test_pages_of_a_llama_factory_data_folder() -> None:
    shown = read_page("alpaca_en_demo", str(SHARED_DATA), 0)
    assert shown.total == len(json.loads((SHARED_DATA / "alpaca_en_demo.json").read_text()))
    assert set(shown.records[0]) >= {"instruction", "output"}


def test_upload_then_browse_through_the_handlers(ctx: UIContext, tmp_path: Path) -> None:
    upload = _write(tmp_path / "Q&A set.json", _alpaca(7))
    status, suggested = upload_checked("en", str(upload))
    assert "7 records, alpaca format, sft data" in status and suggested == "Q_A_set"
    data = tmp_path / "data"
    status, saved = upload_saved(ctx, "zh", str(upload), str(data), suggested, False)
    assert saved == "Q_A_set" and "已保存" in status
    status, again = upload_saved(ctx, "en", str(upload), str(data), suggested, False)
    assert again is None and "was not added" in status and "already registered" in status
    shown, page = page_html(ctx, "zh", "Q_A_set", str(data), 1)
    assert page == 1 and "第 6–7 条，共 7 条 · 第 2/2 页" in shown and "第 7 条" in shown
    assert "answer 6" in shown and "answer 4" not in shown


def test_browsing_outside_the_allowed_folders_is_refused(ctx: UIContext, tmp_path: Path) -> None:
    shown, _ = page_html(ctx, "en", "anything", "/etc", 0)
    assert "outside the folders" in shown
    status, saved = upload_saved(ctx, "en", None, str(tmp_path), "x", False)
    assert saved is None and "Choose a data file" in status
