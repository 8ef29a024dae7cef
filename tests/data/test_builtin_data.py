"""tunelab's bundled datasets: valid, registered like LLaMA-Factory's, consistent and correct.

Users read these files to judge the tool and `make demo` trains on them, so the checks go beyond
"it parses": the persona facts agree everywhere, held-out questions really are held out, and every
computed answer in instruct_en.json is recomputed here independently of the script that made it.
"""

from __future__ import annotations

import itertools
import json
import re
import runpy
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tunelab

DATA_DIR = Path(tunelab.__file__).parent / "resources" / "data"
NOT_DATA = {"dataset_info.json", "README.md", "make_instruct.py", "make_preference.py", "make_topics.py"}
CJK = re.compile(r"[\u4e00-\u9fff]")

# LLaMA-Factory's entry keys and per-format column names (DatasetAttr in its data/parser.py).
ENTRY_KEYS = {
    "file_name",
    "formatting",
    "ranking",
    "subset",
    "split",
    "folder",
    "num_samples",
    "columns",
    "tags",
}
ALPACA_COLUMNS = {
    "prompt",
    "query",
    "response",
    "history",
    "system",
    "chosen",
    "rejected",
    "kto_tag",
    "images",
    "label",  # tunelab's stage cls (text + label); LLaMA-Factory ignores the key
}
SHAREGPT_COLUMNS = {"messages", "system", "tools", "chosen", "rejected", "kto_tag", "images"}
ALPACA_DEFAULTS = {"prompt": "instruction", "query": "input", "response": "output"}


def _registry() -> dict[str, dict[str, Any]]:
    return json.loads((DATA_DIR / "dataset_info.json").read_text(encoding="utf-8"))


def _load(name: str) -> Any:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def _normalize(question: str) -> str:
    """Casefold and drop punctuation/spaces, so "Who are you?" and "who are you" compare equal."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return "".join(ch for ch in text if ch.isalnum())


def _user_turns(record: dict[str, Any]) -> list[str]:
    if "conversations" in record:
        return [m["value"] for m in record["conversations"] if m["from"] == "human"]
    turns = [pair[0] for pair in record.get("history", [])]
    return [*turns, record["instruction"] + (("\n" + record["input"]) if record["input"] else "")]


# ---------------------------------------------------------------- registry and file shape


def test_registry_lists_every_data_file_and_only_existing_ones() -> None:
    registry = _registry()
    assert set(registry) == {
        "identity_en",
        "identity_zh",
        "identity_heldout",
        "instruct_en",
        "chat_sharegpt",
        "pretrain_text",
        "pretrain_jsonl",
        "pref_polite_en",
        "pref_polite_sharegpt",
        "kto_polite_en",
        "topics_synthetic",
        "sentiment_en",
        "sentiment_zh",
    }
    registered = {entry["file_name"] for entry in registry.values()}
    on_disk = {p.name for p in DATA_DIR.iterdir() if p.is_file() and p.name not in NOT_DATA}
    assert registered == on_disk


def test_registry_entries_have_llamafactory_shape() -> None:
    for name, entry in _registry().items():
        assert set(entry) <= ENTRY_KEYS, name
        formatting = entry.get("formatting", "alpaca")
        assert formatting in {"alpaca", "sharegpt"}, name
        allowed = ALPACA_COLUMNS if formatting == "alpaca" else SHAREGPT_COLUMNS
        assert set(entry.get("columns", {})) <= allowed, name
        assert all(isinstance(v, str) for v in entry.get("columns", {}).values()), name


@pytest.mark.parametrize("name", ["identity_en", "identity_zh", "identity_heldout", "instruct_en"])
def test_alpaca_files_have_the_columns_their_entry_names(name: str) -> None:
    entry = _registry()[name]
    columns = {**ALPACA_DEFAULTS, **entry.get("columns", {})}
    records = _load(entry["file_name"])
    assert isinstance(records, list) and records
    for i, record in enumerate(records):
        where = f"{name}#{i}"
        for role in ("prompt", "query", "response", "system"):
            if role in columns:
                assert isinstance(record[columns[role]], str), where
        assert record[columns["prompt"]].strip() and record[columns["response"]].strip(), where
        if "history" in columns:
            history = record[columns["history"]]
            assert isinstance(history, list), where
            assert all(len(pair) == 2 and all(isinstance(t, str) and t for t in pair) for pair in history), (
                where
            )
        else:
            assert set(record) == {"instruction", "input", "output"}, where


def test_sharegpt_conversations_alternate_human_and_gpt() -> None:
    entry = _registry()["chat_sharegpt"]
    assert entry["formatting"] == "sharegpt"
    for i, record in enumerate(_load(entry["file_name"])):
        turns = record[entry["columns"]["messages"]]
        if turns[0]["from"] == "system":
            turns = turns[1:]
        assert len(turns) >= 2 and len(turns) % 2 == 0, f"chat_sharegpt#{i}"
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2), f"chat_sharegpt#{i}"
        assert all(set(t) == {"from", "value"} and t["value"].strip() for t in turns), f"chat_sharegpt#{i}"


def test_pretraining_files_hold_one_document_per_line() -> None:
    registry = _registry()
    for name in ("pretrain_text", "pretrain_jsonl"):
        assert registry[name]["columns"] == {"prompt": "text"}
    lines = (DATA_DIR / registry["pretrain_text"]["file_name"]).read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and all(line.strip() for line in lines[:-1])
    for i, line in enumerate(
        (DATA_DIR / registry["pretrain_jsonl"]["file_name"]).read_text(encoding="utf-8").splitlines()
    ):
        row = json.loads(line)
        assert set(row) == {"text"} and isinstance(row["text"], str) and row["text"].strip(), (
            f"pretrain.jsonl:{i + 1}"
        )


def test_json_files_are_pretty_printed_utf8() -> None:
    for path in sorted(DATA_DIR.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), ensure_ascii=False, indent=2) + "\n", path.name


def test_counts_match_the_readme() -> None:
    readme = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    pretrain_lines = (DATA_DIR / "pretrain_text.txt").read_text(encoding="utf-8").splitlines()
    counts = {
        "identity_en.json": len(_load("identity_en.json")),
        "identity_zh.json": len(_load("identity_zh.json")),
        "identity_heldout.json": len(_load("identity_heldout.json")),
        "instruct_en.json": len(_load("instruct_en.json")),
        "chat_sharegpt.json": len(_load("chat_sharegpt.json")),
        "pretrain_text.txt": len(pretrain_lines),
        "pretrain.jsonl": len((DATA_DIR / "pretrain.jsonl").read_text(encoding="utf-8").splitlines()),
    }
    assert 55 <= counts["identity_en.json"] <= 65 and 35 <= counts["identity_zh.json"] <= 45
    assert 140 <= counts["instruct_en.json"] <= 160 and 35 <= counts["chat_sharegpt.json"] <= 45
    assert 90 <= counts["pretrain_text.txt"] <= 110 and 45 <= counts["pretrain.jsonl"] <= 55
    assert 15 <= sum(bool(CJK.search(line)) for line in pretrain_lines) <= 30
    for file_name, n in counts.items():
        assert re.search(rf"`{re.escape(file_name)}`[^\n]*\| {n} \|", readme), f"README count for {file_name}"


def test_bundle_stays_small() -> None:
    assert sum(p.stat().st_size for p in DATA_DIR.iterdir() if p.is_file()) < 300_000


def test_files_load_as_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a loader does with them: one consistent arrow schema per file, every row kept."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    import datasets

    for name, entry in _registry().items():
        path = DATA_DIR / entry["file_name"]
        builder = {".txt": "text", ".csv": "csv"}.get(path.suffix, "json")
        table = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=str(tmp_path))
        expected = (
            len(path.read_text(encoding="utf-8").splitlines()) - (path.suffix == ".csv")  # csv header
            if path.suffix != ".json"
            else len(_load(path.name))
        )
        assert table.num_rows == expected, name


# ---------------------------------------------------------------- identity persona


def _identity_answers() -> list[tuple[str, str]]:
    return [
        (f"{name}#{i}", r["output"])
        for name in ("identity_en.json", "identity_zh.json", "identity_heldout.json")
        for i, r in enumerate(_load(name))
    ]


def test_every_identity_answer_names_tuna_and_tunelab() -> None:
    for where, answer in _identity_answers():
        assert "Tuna" in answer and "tunelab" in answer, where
        assert not re.search(r"tunelab", answer.replace("tunelab", ""), re.IGNORECASE), f"{where}: spelling"


def test_identity_answers_agree_on_who_made_tuna() -> None:
    for where, answer in _identity_answers():
        for maker in re.findall(r"\bby the (\S+) team", answer) + re.findall(r"由\s*(\S+?)\s*团队", answer):
            assert maker == "tunelab", where
        others = re.findall(
            r"ChatGPT|OpenAI|Claude|Gemini|GPT-4|Llama|Google|Siri|Copilot|文心一言|通义千问", answer
        )
        if others:
            assert re.search(r"\bNo\b|\bnot\b|不是|没有", answer), (
                f"{where} mentions {others} without denying it"
            )


def test_identity_answers_are_short_and_in_the_question_language() -> None:
    for name in ("identity_en.json", "identity_zh.json", "identity_heldout.json"):
        for i, record in enumerate(_load(name)):
            question, answer = record["instruction"], record["output"]
            assert record["input"] == "", f"{name}#{i}"
            if CJK.search(question):
                assert CJK.search(answer) and len(re.findall(r"[。！？]", answer)) <= 2, f"{name}#{i}"
            else:
                assert not CJK.search(answer) and len(re.findall(r"[.!?](?:\s|$)", answer)) <= 2, (
                    f"{name}#{i}"
                )
    assert not any(CJK.search(r["instruction"]) for r in _load("identity_en.json"))
    assert all(CJK.search(r["instruction"]) for r in _load("identity_zh.json"))


def test_identity_questions_are_unique() -> None:
    questions = [
        _normalize(r["instruction"]) for n in ("identity_en.json", "identity_zh.json") for r in _load(n)
    ]
    assert len(questions) == len(set(questions))


def test_heldout_questions_are_not_in_any_training_file() -> None:
    heldout = _load("identity_heldout.json")
    assert sum(not CJK.search(r["instruction"]) for r in heldout) >= 10
    assert sum(bool(CJK.search(r["instruction"])) for r in heldout) >= 5
    seen = {
        _normalize(turn)
        for name in ("identity_en.json", "identity_zh.json", "instruct_en.json", "chat_sharegpt.json")
        for record in _load(name)
        for turn in _user_turns(record)
    }
    leaked = [r["instruction"] for r in heldout if _normalize(r["instruction"]) in seen]
    assert not leaked
    assert len({_normalize(r["instruction"]) for r in heldout}) == len(heldout)


# ---------------------------------------------------------------- chat content


def test_chat_has_systems_multi_turn_and_chinese() -> None:
    chats = [r["conversations"] for r in _load("chat_sharegpt.json")]
    assert sum(c[0]["from"] == "system" for c in chats) >= 5
    n_turns = [sum(m["from"] == "human" for m in c) for c in chats]
    assert sum(n >= 2 for n in n_turns) >= 8 and max(n_turns) == 3
    assert sum(bool(CJK.search(c[-1]["value"])) for c in chats) >= 8


# ---------------------------------------------------------------- instruct_en.json and its generator


@pytest.fixture(scope="module")
def make_instruct() -> dict[str, Any]:
    # run_path compiles from source without writing __pycache__ into the package data folder.
    return runpy.run_path(str(DATA_DIR / "make_instruct.py"), run_name="make_instruct")


def test_make_instruct_is_deterministic_and_matches_the_committed_file(make_instruct: dict[str, Any]) -> None:
    build, render = make_instruct["build_records"], make_instruct["render"]
    first, second = build(), build()
    assert first == second
    assert render(first) == (DATA_DIR / "instruct_en.json").read_text(encoding="utf-8")
    assert build(make_instruct["SEED"] + 1) != first  # the seed really drives the content


def test_make_instruct_check_mode_detects_a_stale_file(make_instruct: dict[str, Any], tmp_path: Path) -> None:
    stale = tmp_path / "instruct_en.json"
    stale.write_text("[]\n", encoding="utf-8")
    assert make_instruct["main"](["--check", "--output", str(stale)]) == 1
    assert make_instruct["main"](["--output", str(stale)]) == 0
    assert make_instruct["main"](["--check", "--output", str(stale)]) == 0


def _numbers(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]


def _next_in_progression(text: str) -> str:
    values = _numbers(text)
    steps = {b - a for a, b in itertools.pairwise(values)}
    assert len(steps) == 1, f"not an arithmetic progression: {text}"
    return str(values[-1] + steps.pop())


Solver = Callable[[re.Match[str], str, str | None], str]
# Each rule: the instruction's full text -> the answer, from the match, the input and the previous answer.
SOLVERS: list[tuple[str, Solver]] = [
    (r"Reverse the word: (\w+)|Spell the word (\w+) backwards\.", lambda m, q, p: (m[1] or m[2])[::-1]),
    (r"Reverse the letters of the word below\.", lambda m, q, p: q[::-1]),
    (
        r"Add (\d+) and (\d+)\.|What is (\d+) \+ (\d+)\?|Compute the sum of (\d+) and (\d+)\.",
        lambda m, q, p: str(sum(_numbers(m[0]))),
    ),
    (r"Add the two numbers\.", lambda m, q, p: str(sum(_numbers(q)))),
    (r"Subtract (\d+) from (\d+)\.", lambda m, q, p: str(int(m[2]) - int(m[1]))),
    (r"What is (\d+) - (\d+)\?", lambda m, q, p: str(int(m[1]) - int(m[2]))),
    (r"Subtract the second number from the first\.", lambda m, q, p: str(_numbers(q)[0] - _numbers(q)[1])),
    (
        r"Multiply (\d+) by (\d+)\.|What is (\d+) times (\d+)\?",
        lambda m, q, p: str(_numbers(m[0])[0] * _numbers(m[0])[1]),
    ),
    (r"Multiply the two numbers\.", lambda m, q, p: str(_numbers(q)[0] * _numbers(q)[1])),
    (r"(?:Uppercase|Convert to upper case): (.+)", lambda m, q, p: m[1].upper()),
    (r"Rewrite the text in capital letters\.", lambda m, q, p: q.upper()),
    (r"Lowercase: (.+)", lambda m, q, p: m[1].lower()),
    (r"Convert the text to lower case\.", lambda m, q, p: q.lower()),
    (
        r"(?:What is the next number|Continue the sequence with one number): (.+)",
        lambda m, q, p: _next_in_progression(m[1]),
    ),
    (r"Give the next number in the sequence\.", lambda m, q, p: _next_in_progression(q)),
    (r"Sort in ascending order: (.+)", lambda m, q, p: ", ".join(map(str, sorted(_numbers(m[1]))))),
    (
        r"Sort these numbers from smallest to largest\.",
        lambda m, q, p: ", ".join(map(str, sorted(_numbers(q)))),
    ),
    (
        r"Sort from largest to smallest: (.+)",
        lambda m, q, p: ", ".join(map(str, sorted(_numbers(m[1]), reverse=True))),
    ),
    (
        r"How many letters are in the word (\w+)\?|Count the letters in: (\w+)",
        lambda m, q, p: str(len(m[1] or m[2])),
    ),
    (r"How many times does the letter (\w) appear in (\w+)\?", lambda m, q, p: str(m[2].count(m[1]))),
    (r"Is (\d+) even or odd\?", lambda m, q, p: "odd" if int(m[1]) % 2 else "even"),
    (r"Is the number even or odd\?", lambda m, q, p: "odd" if int(q) % 2 else "even"),
    (r"Which is larger, (\d+) or (\d+)\?", lambda m, q, p: str(max(int(m[1]), int(m[2])))),
    (r"Which is smaller, (\d+) or (\d+)\?", lambda m, q, p: str(min(int(m[1]), int(m[2])))),
    (r"Spell out the word (\w+) letter by letter, separated by hyphens\.", lambda m, q, p: "-".join(m[1])),
    # follow-ups: they need the previous answer
    (r"Now double that\.", lambda m, q, p: str(2 * int(p))),
    (r"Now subtract (\d+)\.", lambda m, q, p: str(int(p) - int(m[1]))),
    (r"Now write it in capital letters\.", lambda m, q, p: p.upper()),
    (r"Which of them is the largest\?", lambda m, q, p: str(max(_numbers(p)))),
]
FOLLOW_UPS = 4  # the last rules above


def _solve(instruction: str, query: str, previous: str | None) -> str:
    for index, (pattern, solver) in enumerate(SOLVERS):
        match = re.fullmatch(pattern, instruction)
        if match:
            is_follow_up = index >= len(SOLVERS) - FOLLOW_UPS
            assert is_follow_up == (previous is not None), f"follow-up out of place: {instruction!r}"
            return solver(match, query, previous)
    raise AssertionError(f"no solver for instruction {instruction!r}: add one when adding a template")


def test_every_instruct_answer_is_recomputed_correctly() -> None:
    records = _load("instruct_en.json")
    for i, record in enumerate(records):
        previous: str | None = None
        for question, answer in record["history"]:
            assert _solve(question, "", previous) == answer, f"instruct_en#{i} history {question!r}"
            previous = answer
        expected = _solve(record["instruction"], record["input"], previous)
        assert expected == record["output"], (
            f"instruct_en#{i}: {record['instruction']!r} -> {record['output']!r}"
        )


def test_solver_rejects_a_wrong_answer() -> None:
    # Guards the check above against solvers that echo whatever they are given.
    assert _solve("Add 17 and 25.", "", None) == "42"
    assert _solve("Now subtract 3.", "", "10") == "7"
    assert _solve("What is the next number: 2, 4, 6", "", None) == "8"


def test_instruct_mixes_inputs_systems_and_history() -> None:
    records = _load("instruct_en.json")
    assert sum(bool(r["input"]) for r in records) >= 15
    assert sum(bool(r["system"]) for r in records) >= 15
    assert sum(bool(r["history"]) for r in records) >= 8
    keys = {json.dumps([r["instruction"], r["input"], r["history"]]) for r in records}
    assert len(keys) == len(records)
    # A sorting prompt whose numbers are already in order teaches nothing.
    for record in records:
        for question, query in [
            *((q, "") for q, _ in record["history"]),
            (record["instruction"], record["input"]),
        ]:
            if question.startswith("Sort"):
                numbers = _numbers(query or question)
                assert numbers not in (sorted(numbers), sorted(numbers, reverse=True)), question
