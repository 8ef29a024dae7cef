"""Convert raw rows of LLaMA-Factory's formats (alpaca, sharegpt) into tunelab records.

What a record must hold depends on the stage (see :mod:`tunelab.data.records`):

- ``sft``: ``messages`` ending with the assistant's (or a function call's) turn.
- ``pt``: ``text``; alpaca/sharegpt data also works, its turns are joined with newlines.
- ``rm`` / ``dpo``: ``messages`` ending with the user's turn, plus ``chosen`` and ``rejected``.
- ``kto``: ``messages`` ending with the assistant's turn, plus ``kto_tag`` (desirable or not).
- ``ppo``: ``messages`` ending with the user's turn (the prompt; a response in the data is dropped,
  because ppo generates its own).
- ``cls``: ``text`` and ``label``.

Unlike LLaMA-Factory, which skips malformed examples with a warning, a malformed record is an
error naming the file, the record index (0-based, the same as in the record's ``source``) and the
field, so that bad data is fixed rather than silently shrinking the training set.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.data.records import new_record
from tunelab.data.registry import DatasetAttr
from tunelab.data.suggest import suggest_datasets
from tunelab.errors import DataError

__all__ = ["STAGES", "to_records"]

STAGES = ("pt", "sft", "rm", "dpo", "kto", "ppo", "cls", "kd")
_PAIRWISE = ("rm", "dpo")


@dataclass(frozen=True)
class _Where:
    """Where a record comes from, to build error messages."""

    file: Path
    index: int

    def error(self, what: str, hint: str = "") -> DataError:
        fix = f"fix record {self.index} (counted from 0) of {self.file}"
        return DataError(f"{self.file.name} record {self.index}: {what}", f"{hint}; {fix}" if hint else fix)


@dataclass
class _Conversation:
    messages: list[dict[str, str]]
    system: str = ""
    tools: str = ""
    chosen: str | None = None
    rejected: str | None = None
    kto_tag: bool | None = None


def to_records(
    rows: Sequence[dict[str, Any]],
    attr: DatasetAttr,
    stage: str,
    dataset_name: str,
    file: Path,
    *,
    indices: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Records for ``stage`` from the raw ``rows`` of ``file``.

    ``indices`` are the rows' places in the file (when only some rows are converted), used in
    error messages and in each record's ``source``.
    """
    if stage not in STAGES:
        raise DataError(f"unknown stage '{stage}'", f"use one of {', '.join(STAGES)}")
    stage = "sft" if stage == "kd" else stage  # kd (distillation) reads sft data
    present = set().union(*rows) if rows else set()
    convert = _converter(attr, stage, present, dataset_name, Path(file))
    records = []
    for position, row in enumerate(rows):
        index = indices[position] if indices is not None else position
        record = convert(row, _Where(Path(file), index))
        record["source"] = f"{dataset_name}#{index}"
        records.append(record)
    return records


def _converter(
    attr: DatasetAttr, stage: str, present: set[str], name: str, file: Path
) -> Callable[[dict[str, Any], _Where], dict[str, Any]]:
    """Check the dataset suits the stage as a whole, then pick the per-row conversion."""
    if stage == "cls":
        text_col = attr.columns.get("prompt", "text")
        label_col = attr.columns.get("label") or attr.columns.get("response") or "label"
        _require_columns([text_col, label_col], present, stage, name, file, "a text and a label column")
        return lambda row, where: new_record(
            text=_text(row, text_col, where), label=_label(row, label_col, where)
        )
    if stage == "pt":
        return _pt_converter(attr, present)
    _check_kind(attr, stage, present, name, file)
    parse = _parse_alpaca if attr.formatting == "alpaca" else _parse_sharegpt

    def convert(row: dict[str, Any], where: _Where) -> dict[str, Any]:
        conv = parse(row, attr, stage, where)
        return new_record(
            messages=conv.messages,
            system=conv.system,
            tools=conv.tools,
            chosen=conv.chosen,
            rejected=conv.rejected,
            kto_tag=conv.kto_tag,
        )

    return convert


def _pt_converter(attr: DatasetAttr, present: set[str]) -> Callable[[dict[str, Any], _Where], dict[str, Any]]:
    """Pre-training text: the prompt column (default ``text``), else the conversation's turns joined."""
    text_col = attr.columns.get("prompt", "text")
    if text_col in present:
        return lambda row, where: new_record(text=_text(row, text_col, where))
    parse = _parse_alpaca if attr.formatting == "alpaca" else _parse_sharegpt
    kind = "dpo" if attr.ranking else "sft"

    def convert(row: dict[str, Any], where: _Where) -> dict[str, Any]:
        conv = parse(row, attr, kind, where)
        parts = [m["content"] for m in conv.messages] + ([conv.chosen] if conv.chosen else [])
        return new_record(text="\n".join(p for p in parts if p))

    return convert


def _check_kind(attr: DatasetAttr, stage: str, present: set[str], name: str, file: Path) -> None:
    """Refuse a dataset of the wrong kind for ``stage`` (e.g. sft data for dpo), naming the columns."""
    has = ", ".join(sorted(present)) or "none"
    label = f"dataset '{name}' ({file.name})"
    kto_col = attr.column("kto_tag")
    if stage in _PAIRWISE:
        chosen, rejected = attr.column("chosen") or "chosen", attr.column("rejected") or "rejected"
        pairwise_cols = {chosen, rejected} <= present or (
            attr.formatting == "alpaca" and attr.ranking and attr.column("response") in present
        )
        if not (attr.ranking and pairwise_cols):
            missing = "" if pairwise_cols else f"columns '{chosen}' and '{rejected}' and "
            raise DataError(
                f'{label} is not pairwise data: stage {stage} expects {missing}"ranking": true '
                f"in its dataset_info.json entry; its records have columns {has}",
                f"{suggest_datasets(stage, attr.dataset_dir)}; or train this one with stage sft"
                if not pairwise_cols
                else f'add "ranking": true and "columns": {{"chosen": "{chosen}", "rejected": "{rejected}"}} '
                f"to the '{name}' entry",
            )
    elif stage == "kto":
        if not kto_col or kto_col not in present:
            raise DataError(
                f"{label} has no kto_tag column: stage kto expects a column of true/false labels "
                f"(desirable or not) named in the entry's columns; its records have columns {has}",
                'add "kto_tag": "<column>" to the entry\'s columns, or use stage sft; '
                + suggest_datasets(stage, attr.dataset_dir),
            )
    elif stage == "sft":
        if attr.ranking:
            raise DataError(
                f'{label} is pairwise data ("ranking": true): stage sft expects one response per prompt',
                "train it with stage dpo or rm, or pick an sft dataset",
            )
        if kto_col and kto_col in present:
            raise DataError(
                f"{label} has a kto_tag column '{kto_col}': "
                "stage sft would learn its undesirable responses too",
                "train it with stage kto, or pick an sft dataset",
            )
    needed = (
        [attr.column("prompt"), attr.column("response")]
        if attr.formatting == "alpaca" and stage in ("sft", "kto")
        else [attr.column("prompt")]
        if attr.formatting == "alpaca"
        else [attr.column("messages")]
    )
    _require_columns([c for c in needed if c], present, stage, name, file, f"{attr.formatting} columns")


def _require_columns(
    columns: list[str], present: set[str], stage: str, name: str, file: Path, what: str
) -> None:
    missing = [c for c in columns if c not in present]
    if not missing:
        return
    looks_pt = "text" in present and stage != "cls"
    raise DataError(
        f"dataset '{name}' ({file.name}) has no column {', '.join(repr(c) for c in missing)}: "
        f"stage {stage} expects {what} ({', '.join(columns)}); its records have columns "
        f"{', '.join(sorted(present)) or 'none'}",
        "this looks like pre-training text: use stage pt"
        if looks_pt
        else 'map the columns in the entry\'s "columns" of dataset_info.json, '
        "or pick a dataset made for this stage",
    )


def _parse_alpaca(row: dict[str, Any], attr: DatasetAttr, stage: str, where: _Where) -> _Conversation:
    """instruction (+ "\\n" + input) is the user turn; history pairs come before it."""
    messages = _history(row, attr.column("history"), where) if attr.has_column("history") else []
    prompt_col, query_col = attr.column("prompt"), attr.column("query")
    if prompt_col and prompt_col not in row:
        raise where.error(f"'{prompt_col}' is missing")
    parts = [_text(row, c, where, optional=True) for c in (prompt_col, query_col) if c]
    messages.append({"role": "user", "content": "\n".join(p for p in parts if p)})
    conv = _Conversation(messages=messages, system=_optional(row, attr, "system", where))
    conv.tools = _tools(row, attr.column("tools"), where) if attr.has_column("tools") else ""
    response_col = attr.column("response")
    if stage in _PAIRWISE:
        if {attr.column("chosen") or "chosen", attr.column("rejected") or "rejected"} <= set(row):
            conv.chosen = _text(row, attr.column("chosen") or "chosen", where)
            conv.rejected = _text(row, attr.column("rejected") or "rejected", where)
        else:
            pair = row.get(response_col)
            if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
                raise where.error(
                    f"'{response_col}' should be a [chosen, rejected] pair of texts, got {_kind(pair)}",
                    "or give separate chosen/rejected columns",
                )
            conv.chosen, conv.rejected = pair
    elif stage in ("sft", "kto"):
        messages.append({"role": "assistant", "content": _text(row, response_col, where)})
    if stage == "kto":
        conv.kto_tag = _kto_tag(row, attr.column("kto_tag"), where)
    return conv


def _parse_sharegpt(row: dict[str, Any], attr: DatasetAttr, stage: str, where: _Where) -> _Conversation:
    """Map role tags onto roles; a leading system turn becomes ``system``; turns must alternate."""
    column = attr.column("messages")
    raw = row.get(column)
    if raw is None:
        raise where.error(f"'{column}' is missing")
    if not isinstance(raw, list):
        raise where.error(f"'{column}' should be a list of messages, got {_kind(raw)}")
    role_tag, content_tag = attr.tag("role_tag"), attr.tag("content_tag")
    roles = {attr.tag(f"{r}_tag"): r for r in ("user", "assistant", "observation", "system")}
    roles[attr.tag("function_tag")] = "function"
    turns = []
    for j, message in enumerate(raw):
        if not isinstance(message, dict) or role_tag not in message or content_tag not in message:
            raise where.error(
                f"message {j} of '{column}' should be an object with '{role_tag}' and '{content_tag}', "
                f"got {_kind(message)}",
                'if the data uses other keys, set role_tag/content_tag in the entry\'s "tags"',
            )
        if message[role_tag] not in roles:
            raise where.error(
                f"message {j}: unknown role '{message[role_tag]}'",
                f"known roles here: {', '.join(roles)}; "
                'set user_tag/assistant_tag/... in the entry\'s "tags"',
            )
        content = message[content_tag]
        if not isinstance(content, str):
            raise where.error(f"message {j}: '{content_tag}' should be text, got {_kind(content)}")
        turns.append({"role": roles[message[role_tag]], "content": content})
    system = _optional(row, attr, "system", where)
    if turns and turns[0]["role"] == "system":
        system, turns = turns[0]["content"], turns[1:]
    for j, turn in enumerate(turns):
        expected = ("user", "observation") if j % 2 == 0 else ("assistant", "function")
        if turn["role"] not in expected:
            raise where.error(
                f"turn {j} is '{turn['role']}' where the {expected[0]}'s turn is expected",
                "turns must alternate user/assistant (a function call takes the assistant's place, "
                "an observation the user's), after at most one leading system message",
            )
    conv = _Conversation(messages=turns, system=system)
    conv.tools = _tools(row, attr.column("tools"), where) if attr.column("tools") else ""
    ends_with_user = len(turns) % 2 == 1
    if stage in _PAIRWISE:
        if not ends_with_user:
            raise where.error(
                f"'{column}' has {len(turns)} turns ending with the assistant; pairwise data ends with "
                "the user's turn, followed by the chosen and rejected responses"
            )
        conv.chosen = _response(row, attr.column("chosen") or "chosen", attr, roles, where)
        conv.rejected = _response(row, attr.column("rejected") or "rejected", attr, roles, where)
    elif stage == "ppo":
        conv.messages = turns if ends_with_user else turns[:-1]
        if not conv.messages:
            raise where.error(f"'{column}' has no user turn to use as a prompt")
    elif not turns or ends_with_user:
        raise where.error(
            f"'{column}' has {len(turns)} turns and does not end with an assistant response",
            f"stage {stage} learns the last assistant turn, so each conversation must end with one",
        )
    if stage == "kto":
        conv.kto_tag = _kto_tag(row, attr.column("kto_tag"), where)
    return conv


def _response(
    row: dict[str, Any], column: str, attr: DatasetAttr, roles: dict[str, str], where: _Where
) -> str:
    """A chosen/rejected response: a message object in the assistant's place, or plain text."""
    value = row.get(column)
    if isinstance(value, str):
        return value
    if value is None:
        raise where.error(f"'{column}' is missing")
    content_tag, role_tag = attr.tag("content_tag"), attr.tag("role_tag")
    if not isinstance(value, dict) or not isinstance(value.get(content_tag), str):
        raise where.error(
            f"'{column}' should be a message object with text '{content_tag}', got {_kind(value)}"
        )
    if roles.get(value.get(role_tag, "")) not in ("assistant", "function"):
        raise where.error(f"'{column}' has role '{value.get(role_tag)}', expected the assistant's")
    return value[content_tag]


def _history(row: dict[str, Any], column: str | None, where: _Where) -> list[dict[str, str]]:
    """alpaca ``history``: [[user, assistant], ...] pairs before the current turn."""
    value = row.get(column) if column else None
    if value is None:
        return []
    if not isinstance(value, list):
        raise where.error(f"'{column}' should be a list of [user, assistant] pairs, got {_kind(value)}")
    messages = []
    for j, pair in enumerate(value):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            raise where.error(
                f"'{column}' item {j} should be a [user, assistant] pair of texts, got {_kind(pair)}"
            )
        messages += [{"role": "user", "content": pair[0]}, {"role": "assistant", "content": pair[1]}]
    return messages


def _text(row: dict[str, Any], column: str, where: _Where, *, optional: bool = False) -> str:
    value = row.get(column)
    if value is None:
        if optional:
            return ""
        raise where.error(f"'{column}' is missing")
    if not isinstance(value, str):
        raise where.error(f"'{column}' should be text, got {_kind(value)}")
    return value


def _optional(row: dict[str, Any], attr: DatasetAttr, key: str, where: _Where) -> str:
    """An optional text column named in the entry (system), or ``""``."""
    column = attr.column(key)
    return _text(row, column, where, optional=True) if column else ""


def _tools(row: dict[str, Any], column: str | None, where: _Where) -> str:
    """Tool definitions as a JSON string (some datasets store them as JSON values, not strings)."""
    value = row.get(column) if column else None
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    raise where.error(f"'{column}' should be a JSON string or list of tools, got {_kind(value)}")


def _kto_tag(row: dict[str, Any], column: str | None, where: _Where) -> bool:
    """True/false; csv files give text, so "true"/"false"/"1"/"0" are accepted too."""
    value = row.get(column) if column else None
    if isinstance(value, bool):
        return value
    spelled = {"true": True, "1": True, "false": False, "0": False}
    if isinstance(value, (str, int)) and str(value).strip().lower() in spelled:
        return spelled[str(value).strip().lower()]
    raise where.error(f"'{column}' should be true or false, got {value!r}")


def _label(row: dict[str, Any], column: str, where: _Where) -> str:
    value = row.get(column)
    if value is None or value == "":
        raise where.error(f"'{column}' is missing")
    if isinstance(value, (str, int, bool)):
        return str(value)
    raise where.error(f"'{column}' should be a class name or number, got {_kind(value)}")


def _kind(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"
