"""The registry reads LLaMA-Factory's dataset_info.json unchanged and explains every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.data.registry import get_dataset_attr, load_registry, resolve_dataset_dir
from tunelab.errors import DataError

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "dataset_info.json").is_file(), reason="no shared demo data")


@needs_shared
def test_shared_registry_loads_every_entry() -> None:
    registry = load_registry(SHARED)
    assert len(registry) == 104
    dpo = registry["dpo_en_demo"]
    assert dpo.ranking and dpo.formatting == "sharegpt"
    assert dpo.column("messages") == "conversations" and dpo.column("chosen") == "chosen"
    kto = registry["kto_en_demo"]
    assert kto.column("kto_tag") == "label"
    assert (kto.tag("role_tag"), kto.tag("user_tag"), kto.tag("function_tag")) == (
        "role",
        "user",
        "function_call",
    )
    alpaca = registry["alpaca_en_demo"]
    assert (alpaca.formatting, alpaca.column("prompt"), alpaca.column("response")) == (
        "alpaca",
        "instruction",
        "output",
    )
    assert registry["adgen_eval"].split == "validation" and not registry["adgen_eval"].is_local


@needs_shared
def test_registered_name_resolves_to_its_file() -> None:
    attr = get_dataset_attr("c4_demo", str(SHARED))
    assert attr.path == SHARED / "c4_demo.jsonl"
    assert attr.columns == {"prompt": "text"}


@needs_shared
def test_hub_only_entry_is_refused_with_download_hint() -> None:
    with pytest.raises(DataError) as err:
        get_dataset_attr("alpaca_gpt4_en", SHARED)
    text = str(err.value)
    assert "alpaca_gpt4_en" in text and "never downloads" in text
    assert "file_name" in err.value.hint and "llamafactory/alpaca_gpt4_en" in err.value.hint


@needs_shared
def test_unknown_name_suggests_and_lists_loadable_names() -> None:
    with pytest.raises(DataError) as err:
        get_dataset_attr("alpaca_en_dmeo", SHARED)
    assert "did you mean 'alpaca_en_demo'" in err.value.message
    assert str(SHARED / "dataset_info.json") in err.value.message
    assert "wiki_demo" in err.value.hint and "identity" in err.value.hint
    assert "alpaca_gpt4_en" not in err.value.hint  # hub-only names are not loadable here


@needs_shared
def test_entry_with_missing_file_is_refused() -> None:
    with pytest.raises(DataError, match="mllm_demo.json does not exist"):
        get_dataset_attr("mllm_demo", SHARED)


def test_malformed_registry_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "dataset_info.json").write_text('{\n  "a": {"file_name": "a.json"}\n  "b": {}\n}\n')
    with pytest.raises(DataError) as err:
        load_registry(tmp_path)
    assert "dataset_info.json" in err.value.message and "line 3" in err.value.message


def test_entry_must_be_an_object(tmp_path: Path) -> None:
    (tmp_path / "dataset_info.json").write_text(json.dumps({"a": "a.json"}))
    with pytest.raises(DataError, match="entry 'a'"):
        load_registry(tmp_path)


def test_missing_registry_is_explained(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match="neither a data file nor registered: there is no .*dataset_info.json"
    ):
        get_dataset_attr("anything", tmp_path)


@pytest.mark.parametrize(
    ("row", "formatting", "columns"),
    [
        ({"instruction": "q", "input": "", "output": "a"}, "alpaca", {}),
        ({"conversations": [{"from": "human", "value": "q"}]}, "sharegpt", {"messages": "conversations"}),
        (
            {"messages": [{"role": "user", "content": "q"}], "label": True},
            "openai",
            {"messages": "messages", "kto_tag": "label"},
        ),
        ({"text": "doc"}, "alpaca", {"prompt": "text"}),
        ({"text": "doc", "label": "pos"}, "alpaca", {"prompt": "text", "label": "label"}),
    ],
)
def test_file_path_is_accepted_with_detected_format(
    tmp_path: Path, row: dict, formatting: str, columns: dict
) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(row) + "\n")
    attr = get_dataset_attr(str(path), tmp_path / "no-such-dir")
    assert attr.formatting == formatting and attr.columns == columns
    assert attr.path == path.resolve()


def test_txt_file_is_pretraining_text(tmp_path: Path) -> None:
    path = tmp_path / "corpus.txt"
    path.write_text("one\ntwo\n")
    assert get_dataset_attr(str(path), "data").columns == {"prompt": "text"}


def test_file_with_unknown_columns_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    path.write_text(json.dumps([{"question": "q", "answer": "a"}]))
    with pytest.raises(DataError, match="cannot tell the format.*answer, question"):
        get_dataset_attr(str(path), tmp_path)


def test_builtin_dir_is_inside_the_package() -> None:
    folder = resolve_dataset_dir("builtin")
    assert folder.parts[-3:] == ("tunelab", "resources", "data")
    assert resolve_dataset_dir("some/dir") == Path("some/dir")
