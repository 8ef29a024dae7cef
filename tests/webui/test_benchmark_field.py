"""The Evaluate tab's benchmark field: the offered tasks, what one holds, and data that is not here."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunelab.webui.benchmark_field import LF_TASKS, benchmark_choices, check_benchmark, describe_benchmark
from tunelab.webui.context import UIContext
from tunelab.webui.forms import flat_to_form
from tunelab.webui.tabs.evaluate import EVAL_KEYS, start_eval

KEYS = [key for row in EVAL_KEYS for key in row]


@pytest.fixture
def ctx(ui_context: UIContext) -> UIContext:
    return ui_context


def _mmlu_folder(root: Path) -> Path:
    """A two-subject folder in MMLU's headerless layout: dev/ (few-shot) and test/ (scored)."""
    for split, n in (("dev", 2), ("test", 3)):
        folder = root / "mmlu" / split
        folder.mkdir(parents=True)
        for subject in ("anatomy", "astronomy"):
            rows = "".join(f"{subject} question {i}?,w,x,y,z,{'ABCD'[i % 4]}\n" for i in range(n))
            (folder / f"{subject}_{split}.csv").write_text(rows)
    return root


def test_builtin_offers_the_bundled_benchmark_then_llama_factory_names() -> None:
    assert benchmark_choices("builtin") == ["tunelab_mc", *LF_TASKS]
    assert benchmark_choices(None) == benchmark_choices("builtin")


def test_describing_the_bundled_benchmark() -> None:
    text = describe_benchmark("tunelab_mc", "builtin", "en")
    assert "tunelab_mc: 50 questions to score in 5 subject(s)" in text and "15 few-shot examples" in text
    assert "共 50 道待评分题目" in describe_benchmark("tunelab_mc", "builtin", "zh")
    assert describe_benchmark(None, "builtin", "en") == ""


def test_missing_llama_factory_data_names_the_files_and_the_folder(tmp_path: Path) -> None:
    for lang, words in (("en", "Put the unzipped mmlu/ folder in"), ("zh", "请把解压后的 mmlu/ 目录放到")):
        text = check_benchmark("mmlu_test", str(tmp_path), lang)
        assert text is not None and words in text and str(tmp_path.resolve()) in text and "dev/" in text
    assert "ceval/" in (check_benchmark("ceval_validation", "builtin", "en") or "")


def test_llama_factory_folder_once_present_is_described(tmp_path: Path) -> None:
    _mmlu_folder(tmp_path)
    assert check_benchmark("mmlu_test", str(tmp_path), "en") is None
    text = describe_benchmark("mmlu_test", str(tmp_path), "en")
    assert "6 questions to score in 2 subject(s) (anatomy, astronomy); 4 few-shot examples" in text


def test_unknown_task_says_what_is_registered(tmp_path: Path) -> None:
    text = check_benchmark("no_such_bench", "builtin", "zh")
    assert text is not None and "无法使用评测基准 no_such_bench" in text and "tunelab_mc" in text


def test_start_refuses_a_benchmark_without_its_data_before_a_job(ctx: UIContext, tmp_path: Path) -> None:
    values = flat_to_form(KEYS, {"task": "cmmlu_test", "task_dir": str(tmp_path), "n_shot": 3})
    job_id, status = start_eval(ctx, "en", "none", KEYS, values, [{"model_name_or_path": "tiny:llama"}])
    assert job_id is None and "cmmlu/" in status and str(tmp_path.resolve()) in status
    assert ctx.jobs.jobs() == []


def test_start_passes_task_n_shot_and_lang_to_the_eval_job(
    ctx: UIContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(ctx.jobs, "start", lambda kind, args, **kw: started.append(args) or _Job())
    _mmlu_folder(tmp_path)
    flat = {"task": "mmlu_test", "task_dir": str(tmp_path), "n_shot": 2, "lang": "en"}
    job_id, _ = start_eval(
        ctx, "en", "none", KEYS, flat_to_form(KEYS, flat), [{"model_name_or_path": "tiny:llama"}]
    )
    assert job_id == "job-1"
    (args,) = started
    assert args[0] == "eval"
    config = Path(args[1]).read_text()
    for line in ("task: mmlu_test", f"task_dir: {tmp_path}", "n_shot: 2", "lang: en"):
        assert line in config


class _Job:
    id = "job-1"
    command_line = "tunelab eval ..."
