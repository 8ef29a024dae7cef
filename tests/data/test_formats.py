"""alpaca / sharegpt rows become records of the shape each stage needs; bad rows are named precisely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.data.formats import to_records
from tunelab.data.registry import DatasetAttr
from tunelab.errors import DataError

FILE = Path("/data/mine.json")


def alpaca(**entry) -> DatasetAttr:
    return DatasetAttr(name="mine", dataset_dir=FILE.parent, file_name=FILE.name, **entry)


def sharegpt(**entry) -> DatasetAttr:
    return alpaca(formatting="sharegpt", **entry)


def convert(rows: list[dict], attr: DatasetAttr, stage: str = "sft") -> list[dict]:
    return to_records(rows, attr, stage, "mine", FILE)


def test_alpaca_instruction_and_input_form_the_user_turn() -> None:
    rows = [
        {"instruction": "Translate", "input": "bonjour", "output": "hello"},
        {"instruction": "Say hi", "input": "", "output": "hi"},
    ]
    first, second = convert(rows, alpaca())
    assert first["messages"] == [
        {"role": "user", "content": "Translate\nbonjour"},
        {"role": "assistant", "content": "hello"},
    ]
    assert second["messages"][0]["content"] == "Say hi"
    assert (first["source"], second["source"]) == ("mine#0", "mine#1")
    assert first["chosen"] is None and first["kto_tag"] is None and first["text"] == ""


def test_alpaca_history_becomes_earlier_turns_and_system_is_kept() -> None:
    row = {
        "instruction": "and 3+3?",
        "output": "6",
        "history": [["1+1?", "2"], ["2+2?", "4"]],
        "sys": "Be brief.",
    }
    (record,) = convert([row], alpaca(columns={"history": "history", "system": "sys"}))
    assert [m["role"] for m in record["messages"]] == ["user", "assistant"] * 3
    assert [m["content"] for m in record["messages"]] == ["1+1?", "2", "2+2?", "4", "and 3+3?", "6"]
    assert record["system"] == "Be brief."


def test_missing_output_names_file_record_and_field() -> None:
    rows = [{"instruction": "a", "output": "b"}] * 17 + [{"instruction": "a", "input": "x"}]
    with pytest.raises(DataError) as err:
        convert(rows, alpaca())
    assert err.value.message == "mine.json record 17: 'output' is missing"
    assert str(FILE) in err.value.hint


def test_bad_history_pair_is_named() -> None:
    row = {"instruction": "q", "output": "a", "history": [["only one"]]}
    with pytest.raises(DataError, match="record 0: 'history' item 0 should be a \\[user, assistant\\] pair"):
        convert([row], alpaca(columns={"history": "history"}))


def test_sharegpt_roles_system_and_tools() -> None:
    row = {
        "conversations": [
            {"from": "system", "value": "You can call tools."},
            {"from": "human", "value": "Weather in Paris?"},
            {"from": "function_call", "value": '{"name": "weather", "arguments": {"city": "Paris"}}'},
            {"from": "observation", "value": '{"temp": 21}'},
            {"from": "gpt", "value": "It is 21 degrees."},
        ],
        "tools": [{"name": "weather", "parameters": {}}],
    }
    (record,) = convert([row], sharegpt(columns={"messages": "conversations", "tools": "tools"}))
    assert record["system"] == "You can call tools."
    assert [m["role"] for m in record["messages"]] == ["user", "function", "observation", "assistant"]
    assert json.loads(record["tools"]) == [{"name": "weather", "parameters": {}}]


def test_openai_style_tags_from_the_entry() -> None:
    attr = sharegpt(
        columns={"messages": "messages"},
        tags={"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    )
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    assert convert([row], attr)[0]["messages"][1] == {"role": "assistant", "content": "hello"}


def test_sharegpt_turns_must_alternate() -> None:
    row = {"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]}
    with pytest.raises(DataError, match="record 0: turn 1 is 'user' where the assistant's turn is expected"):
        convert([row], sharegpt())


def test_sharegpt_unknown_role_and_missing_answer() -> None:
    row = {"conversations": [{"from": "bot", "value": "a"}]}
    with pytest.raises(DataError, match="message 0: unknown role 'bot'"):
        convert([row], sharegpt())
    row = {"conversations": [{"from": "human", "value": "a"}]}
    with pytest.raises(DataError, match="does not end with an assistant response"):
        convert([row], sharegpt())


def test_alpaca_pairwise_from_columns_or_response_pair() -> None:
    rows = [{"instruction": "q", "chosen": "good", "rejected": "bad"}]
    (record,) = convert(
        rows, alpaca(ranking=True, columns={"chosen": "chosen", "rejected": "rejected"}), "dpo"
    )
    assert (record["chosen"], record["rejected"]) == ("good", "bad")
    assert record["messages"] == [{"role": "user", "content": "q"}]
    (record,) = convert([{"instruction": "q", "output": ["good", "bad"]}], alpaca(ranking=True), "rm")
    assert (record["chosen"], record["rejected"]) == ("good", "bad")


def test_sharegpt_pairwise_takes_message_objects() -> None:
    row = {
        "conversations": [{"from": "human", "value": "q"}],
        "chosen": {"from": "gpt", "value": "good"},
        "rejected": {"from": "gpt", "value": "bad"},
    }
    (record,) = convert([row], sharegpt(ranking=True), "dpo")
    assert (record["chosen"], record["rejected"]) == ("good", "bad")
    row["rejected"] = {"from": "human", "value": "bad"}
    with pytest.raises(DataError, match="'rejected' has role 'human'"):
        convert([row], sharegpt(ranking=True), "dpo")


def test_sft_data_for_dpo_names_missing_columns_and_stage() -> None:
    with pytest.raises(DataError) as err:
        convert([{"instruction": "q", "input": "", "output": "a"}], alpaca(), "dpo")
    assert "stage dpo expects columns 'chosen' and 'rejected'" in err.value.message
    assert "instruction, output" in err.value.message


def test_kto_tags_accept_booleans_and_csv_text() -> None:
    attr = alpaca(columns={"kto_tag": "good"})
    rows = [
        {"instruction": "q", "output": "a", "good": True},
        {"instruction": "q", "output": "b", "good": "false"},
    ]
    first, second = convert(rows, attr, "kto")
    assert (first["kto_tag"], second["kto_tag"]) == (True, False)
    assert first["messages"][-1] == {"role": "assistant", "content": "a"}
    with pytest.raises(DataError, match="record 0: 'good' should be true or false, got 'maybe'"):
        convert([{"instruction": "q", "output": "a", "good": "maybe"}], attr, "kto")


def test_ppo_keeps_only_the_prompt() -> None:
    (record,) = convert([{"instruction": "q", "output": "a"}], alpaca(), "ppo")
    assert record["messages"] == [{"role": "user", "content": "q"}]


def test_pt_reads_text_column_or_joins_sft_turns() -> None:
    (doc,) = convert([{"text": "a document"}], alpaca(columns={"prompt": "text"}), "pt")
    assert doc["text"] == "a document" and doc["messages"] == []
    (joined,) = convert([{"instruction": "q", "input": "x", "output": "a"}], alpaca(), "pt")
    assert joined["text"] == "q\nx\na"


def test_cls_text_and_label_columns() -> None:
    rows = [{"sentence": "great film", "sentiment": 1}]
    (record,) = convert(rows, alpaca(columns={"prompt": "sentence", "label": "sentiment"}), "cls")
    assert (record["text"], record["label"]) == ("great film", "1")
    with pytest.raises(DataError, match="has no column 'label': stage cls expects"):
        convert([{"text": "x"}], alpaca(), "cls")


def test_pretraining_text_for_sft_points_at_stage_pt() -> None:
    with pytest.raises(DataError) as err:
        convert([{"text": "doc"}], alpaca(), "sft")
    assert "'instruction'" in err.value.message and "stage pt" in err.value.hint


def test_unknown_stage_is_refused() -> None:
    with pytest.raises(DataError, match="unknown stage 'grpo'"):
        convert([{"text": "doc"}], alpaca(), "grpo")
