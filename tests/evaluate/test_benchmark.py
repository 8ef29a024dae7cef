"""Multiple-choice benchmarks: the accepted layouts, the scoring rule, accuracy on a model with a known bias."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tunelab.errors import ConfigError, DataError
from tunelab.evaluate.benchmark import (
    Question,
    build_messages,
    choice_token_ids,
    evaluate_benchmark,
    load_benchmark,
    pick_choices,
)


def test_bundled_benchmark_is_registered() -> None:
    questions = load_benchmark("tunelab_mc")
    test = [q for q in questions if q.split == "test"]
    subjects = {q.subject for q in questions}
    assert len(questions) == 65 and len(test) == 50 and len(subjects) == 5
    assert all(sum(q.subject == s for q in test) == 10 for s in subjects)
    assert any("北京" in q.question or "北京" in "".join(q.choices) for q in questions)  # zh subjects too
    with pytest.raises(ConfigError, match="tunelab_mc"):
        load_benchmark("no_such_benchmark")


def test_mmlu_and_ceval_layouts(tmp_path: Path) -> None:
    # MMLU: headerless CSVs in dev/ and test/ folders, subject from the file name
    (tmp_path / "mmlu" / "dev").mkdir(parents=True)
    (tmp_path / "mmlu" / "test").mkdir()
    (tmp_path / "mmlu" / "dev" / "astronomy_dev.csv").write_text(
        "What is the Sun?,A star,A planet,A moon,A comet,A\n"
    )
    (tmp_path / "mmlu" / "test" / "astronomy_test.csv").write_text(
        '"Closest planet to the Sun, by orbit?",Venus,Mercury,Mars,Earth,B\n'
    )
    mmlu = load_benchmark(str(tmp_path / "mmlu"))
    assert [(q.subject, q.split, q.answer) for q in mmlu] == [
        ("astronomy", "dev", "A"),
        ("astronomy", "test", "B"),
    ]
    assert mmlu[1].question == "Closest planet to the Sun, by orbit?"
    # C-Eval: header with id/explanation; the test split ships without answers (skipped)
    ceval = tmp_path / "ceval_test.csv"
    ceval.write_text("id,question,A,B,C,D,answer,explanation\n0,1+1=?,1,2,3,4,,\n", encoding="utf-8")
    with pytest.raises(DataError, match="no questions"):
        load_benchmark(str(ceval))
    # JSONL with an index answer and five choices
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text(
        json.dumps({"question": "q", "A": "a", "B": "b", "C": "c", "D": "d", "E": "e", "answer": 4}) + "\n"
    )
    (q,) = load_benchmark(str(jsonl))
    assert q.answer == "E" and q.letters == "ABCDE" and q.subject == "b"
    jsonl.write_text(json.dumps({"question": "q", "A": "a", "B": "b", "answer": "C"}) + "\n")
    with pytest.raises(DataError, match="answer 'C'"):
        load_benchmark(str(jsonl))


def test_lf_eval_task_without_its_data_names_the_folder_to_provide(tmp_path: Path) -> None:
    """LLaMA-Factory's eval configs say task: mmlu_test; the data is not shipped, so say where it goes."""
    with pytest.raises(DataError) as caught:
        load_benchmark("mmlu_test", str(tmp_path))
    assert str(tmp_path / "mmlu") in caught.value.message and "set task_dir" in caught.value.hint
    with pytest.raises(ConfigError, match="neither a file/folder"):  # other unknown names: as before
        load_benchmark("mmlu_typo", str(tmp_path))


def test_pick_choices_takes_each_letters_best_spelling() -> None:
    # letters A, B, C with two spellings each ("A", " A"): B's second spelling is the most likely token
    logprobs = [-3.0, -5.0, -9.0, -0.5, -2.0, -2.5]
    index, probs = pick_choices(logprobs, [[1, 2], [3, 4], [5, 6]])
    assert index == 1
    assert sum(probs) == pytest.approx(1.0) and probs[1] == max(probs)
    assert probs[0] / probs[2] == pytest.approx(torch.tensor(-3.0 - -2.0).exp().item())


def test_prompt_layout(tiny_tokenizer) -> None:
    shot = Question("1", "world_geography", "Capital of France?", ("Berlin", "Paris"), "B", "dev")
    q = Question("2", "world_geography", "Capital of Italy?", ("Rome", "Milan"), "A")
    messages = build_messages(q, [shot])
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0]["content"].startswith(
        "The following are multiple choice questions (with answers) about world geography."
    )
    assert messages[1]["content"] == "B" and messages[2]["content"].endswith("A. Rome\nB. Milan\nAnswer:")
    zh = Question("3", "常识", "中国的首都是？", ("上海", "北京"), "B")
    assert build_messages(zh, [])[0]["content"].endswith("答案：")
    groups = choice_token_ids(tiny_tokenizer, "AB")
    assert len(groups) == 2 and set(groups[0]).isdisjoint(groups[1])


def test_accuracy_per_subject_with_a_model_that_always_says_b(tiny_engine, tmp_path: Path) -> None:
    rows = [
        ("s1", "dev", "B"),
        ("s1", "test", "B"),
        ("s1", "test", "A"),
        ("s1", "test", "B"),
        ("s1", "test", "C"),
        ("s2", "test", "D"),
        ("s2", "test", "B"),
    ]
    lines = ["subject,split,question,A,B,C,D,answer"]
    lines += [f"{s},{split},Question {i}?,one,two,three,four,{a}" for i, (s, split, a) in enumerate(rows)]
    path = tmp_path / "bench.csv"
    path.write_text("\n".join(lines) + "\n")

    bias = torch.zeros(len(tiny_engine.tokenizer))
    for token in choice_token_ids(tiny_engine.tokenizer, "B")[0]:
        bias[token] = 100.0  # whatever the hidden state, "B" is the next token
    head = tiny_engine.model.get_output_embeddings()
    hook = head.register_forward_hook(lambda module, args, out: out + bias.to(out.dtype))
    try:
        result = evaluate_benchmark(tiny_engine, load_benchmark(str(path)), n_shot=1)
    finally:
        hook.remove()
    assert result.total == 6  # the dev row is a few-shot example, not scored
    assert result.subjects == {"s1": (2, 4), "s2": (1, 2)}
    assert result.metrics()["mc_accuracy"] == pytest.approx(100 * 3 / 6)
    assert result.metrics()["mc_accuracy/s1"] == pytest.approx(50.0)
    assert all(r["predict"] == "B" and r["probs"]["B"] > 0.99 for r in result.rows)
    # without the bias the real model answers, and the same questions give valid letters
    plain = evaluate_benchmark(tiny_engine, load_benchmark(str(path)), n_shot=1)
    assert plain.total == 6 and all(r["predict"] in "ABCD" for r in plain.rows)
