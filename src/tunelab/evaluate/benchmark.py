"""Multiple-choice benchmarks (MMLU / C-Eval / CMMLU layout) scored from the next-token log-probabilities.

Each question becomes a chat: `n_shot` solved questions of the same subject (user: question + choices,
assistant: the letter), then the question itself. The model's answer is the letter whose token it
finds most likely next; nothing is generated, so the score does not depend on decoding settings.

Accepted inputs (`task`): a name in `<task_dir>/benchmark_info.json` ('builtin': tunelab's bundled
benchmarks), a .csv/.json/.jsonl file, or a folder of such files (one per subject, as MMLU and C-Eval
ship them). Columns (any case): question, A, B, C, D (more letters allowed), answer, and optionally
subject, split (dev rows are the few-shot examples), id. Headerless CSVs are read as MMLU's
`question,A,B,C,D,answer`. A file's subject defaults to its name without `_dev/_val/_test`.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tunelab.errors import ConfigError, DataError

__all__ = [
    "LF_BENCHMARKS",
    "BenchmarkResult",
    "Question",
    "benchmark_dir",
    "build_messages",
    "choice_token_ids",
    "evaluate_benchmark",
    "load_benchmark",
    "pick_choices",
    "resolve_task",
    "split_benchmark",
]

LETTERS = "ABCDEFGHIJ"
REGISTRY_FILE = "benchmark_info.json"
_SPLIT_SUFFIXES = {"_dev": "dev", "_val": "val", "_validation": "val", "_test": "test"}
_HEADER = {
    "en": "The following are multiple choice questions (with answers) about {subject}.",
    "zh": "以下是关于{subject}的单项选择题，请选出正确答案。",
}
_ANSWER = {"en": "Answer:", "zh": "答案："}


@dataclass(frozen=True)
class Question:
    """One benchmark question; `answer` is a letter ('A'...), `split` 'dev' marks few-shot examples."""

    id: str
    subject: str
    question: str
    choices: tuple[str, ...]
    answer: str
    split: str = "test"

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.choices)]


# ---- loading --------------------------------------------------------------------------------------


def benchmark_dir(task_dir: str = "builtin") -> Path:
    """The folder a `task_dir` value names ('builtin': tunelab's bundled benchmarks)."""
    if task_dir == "builtin":
        return Path(str(resources.files("tunelab").joinpath("resources", "data", "benchmarks")))
    return Path(task_dir).expanduser()


def resolve_task(task: str, task_dir: str = "builtin") -> Path:
    """The file or folder `task` names: a registered benchmark name or a path."""
    path = Path(task).expanduser()
    if path.exists():
        return path
    folder = benchmark_dir(task_dir)
    registry = folder / REGISTRY_FILE
    entries: dict[str, Any] = {}
    if registry.is_file():
        try:
            entries = json.loads(registry.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise DataError(f"{registry} is not valid JSON: {err}", "fix the file") from None
    if task not in entries and (lf_folder := _lf_task_folder(folder, task)) is not None:
        return lf_folder
    if task not in entries:
        known = ", ".join(entries) or "none"
        bench, _, split = task.rpartition("_")
        if bench in LF_BENCHMARKS and split in ("test", "validation"):  # an LF eval config, data not here
            raise DataError(
                f"task={task!r} reads {folder / bench}, which does not exist (tunelab downloads no data)",
                f"set task_dir to a folder holding LLaMA-Factory's evaluation data ({bench}/ with its "
                f"dev/val/test CSVs), or use a registered benchmark: {known}",
            )
        raise ConfigError(
            f"task={task!r} is neither a file/folder nor a benchmark registered in {registry}",
            f"registered benchmarks: {known}; or give a path to a .csv/.json/.jsonl file or a folder",
        )
    target = folder / str(entries[task].get("file_name", ""))
    if not target.exists():
        raise DataError(f"benchmark {task!r}: {target} does not exist", f"fix file_name in {registry}")
    return target


LF_BENCHMARKS = ("mmlu", "ceval", "cmmlu")  # the benchmarks LLaMA-Factory's eval configs name


def _lf_task_folder(folder: Path, task: str) -> Path | None:
    """LLaMA-Factory's ``<benchmark>_<split>`` names (mmlu_test, ceval_validation) -> <task_dir>/<benchmark>.

    The split needs no filter: the test split is scored when it has answers, else the validation one.
    """
    name = task.rpartition("_")[0]
    target = folder / name
    if not name or not target.is_dir():
        return None
    if not any(target.rglob("*.csv")) and any(target.glob("*.zip")):
        raise DataError(
            f"task={task!r}: {target} holds only a zip archive (LLaMA-Factory's evaluation layout)",
            f"unzip it in place (cd {target} && unzip *.zip) so that {target} holds dev/ and test/ CSVs",
        )
    return target


def load_benchmark(task: str, task_dir: str = "builtin") -> list[Question]:
    """Every question of the benchmark `task` (see the module docstring for the accepted layouts)."""
    path = resolve_task(task, task_dir)
    files = (
        sorted(p for p in path.rglob("*") if p.suffix.lower() in (".csv", ".json", ".jsonl"))
        if path.is_dir()
        else [path]
    )
    questions = [q for f in files if f.name != REGISTRY_FILE for q in _read_file(f)]
    if not questions:
        raise DataError(f"benchmark {path} has no questions", "check the files hold rows with an answer")
    return questions


def _read_file(path: Path) -> list[Question]:
    subject, split = _name_parts(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            rows = _csv_rows(path)
        elif suffix == ".jsonl":
            rows = [
                json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
            ]
        else:
            rows = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, csv.Error, UnicodeDecodeError) as err:
        raise DataError(f"cannot read benchmark file {path}: {err}", "use UTF-8 CSV, JSON or JSONL") from None
    if not isinstance(rows, list):
        raise DataError(f"{path}: expected a list of questions", "write a JSON list of objects, or JSONL")
    return [q for i, row in enumerate(rows) if (q := _question(row, path, i, subject, split)) is not None]


def _name_parts(path: Path) -> tuple[str, str]:
    """(subject, split) from a file name like abstract_algebra_test.csv in a folder like dev/."""
    stem = path.stem
    split = path.parent.name.lower() if path.parent.name.lower() in ("dev", "val", "test") else "test"
    for suffix, name in _SPLIT_SUFFIXES.items():
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)], name
    return stem, split


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        table = list(csv.reader(handle))
    if not table:
        return []
    header = [h.strip() for h in table[0]]
    if {"question", "answer"} <= {h.lower() for h in header}:
        return [dict(zip(header, row)) for row in table[1:] if any(cell.strip() for cell in row)]
    # MMLU ships headerless files: question, choices..., answer
    return [
        {"question": row[0], **dict(zip(LETTERS, row[1:-1])), "answer": row[-1]}
        for row in table
        if len(row) >= 4
    ]


def _question(row: Any, path: Path, index: int, subject: str, split: str) -> Question | None:
    if not isinstance(row, dict):
        raise DataError(f"{path} row {index + 1}: expected an object with question, A-D, answer", "")
    lower = {str(k).strip().lower(): v for k, v in row.items()}
    upper = {str(k).strip(): v for k, v in row.items() if str(k).strip() in LETTERS}
    choices = []
    for letter in LETTERS:
        value = upper.get(letter, lower.get(letter.lower()))
        if value is None or str(value).strip() == "":
            break
        choices.append(str(value).strip())
    where = f"{path} row {index + 1}"
    if "question" not in lower or len(choices) < 2:
        raise DataError(
            f"{where}: needs a question and at least choices A and B", "columns: question, A, B, C, D, answer"
        )
    answer = str(lower.get("answer") or "").strip().upper()
    if answer == "":
        return None  # e.g. C-Eval's test split ships without answers: nothing to score
    if answer.isdigit() and int(answer) < len(choices):  # some exports store the index
        answer = LETTERS[int(answer)]
    if answer not in LETTERS[: len(choices)]:
        raise DataError(
            f"{where}: answer {answer!r} is not one of {', '.join(LETTERS[: len(choices)])}",
            "the answer column holds the letter of the correct choice",
        )
    return Question(
        id=str(lower.get("id") or f"{subject}-{index + 1}"),
        subject=str(lower.get("subject") or lower.get("category") or subject),
        question=str(lower["question"]).strip(),
        choices=tuple(choices),
        answer=answer,
        split=str(lower.get("split") or split).lower(),
    )


# ---- prompting and scoring ------------------------------------------------------------------------


def split_benchmark(questions: Sequence[Question]) -> tuple[list[Question], dict[str, list[Question]]]:
    """Questions to score (test split if present, else every non-dev one) and dev examples per subject."""
    dev: dict[str, list[Question]] = defaultdict(list)
    for q in questions:
        if q.split == "dev":
            dev[q.subject].append(q)
    rest = [q for q in questions if q.split != "dev"]
    scored = [q for q in rest if q.split == "test"] or rest
    return scored, dev


def _language(question: Question, lang: str) -> str:
    if lang != "auto":
        return lang
    from tunelab.evaluate.text_metrics import has_cjk

    return "zh" if has_cjk(question.question) else "en"


def _format(question: Question, lang: str) -> str:
    lines = [question.question, *(f"{letter}. {text}" for letter, text in zip(LETTERS, question.choices))]
    return "\n".join(lines) + "\n" + _ANSWER[lang]


def build_messages(question: Question, shots: Sequence[Question], lang: str = "auto") -> list[dict[str, str]]:
    """The chat asking `question` after the solved `shots` (subject header in the first message)."""
    lang = _language(question, lang)
    header = _HEADER[lang].format(subject=question.subject.replace("_", " "))
    messages: list[dict[str, str]] = []
    for shot in shots:
        messages.append({"role": "user", "content": _format(shot, lang)})
        messages.append({"role": "assistant", "content": shot.answer})
    messages.append({"role": "user", "content": _format(question, lang)})
    messages[0] = {"role": "user", "content": f"{header}\n\n{messages[0]['content']}"}
    return messages


def choice_token_ids(tokenizer: Any, letters: str) -> list[list[int]]:
    """Per letter, the tokens that say it next: "A" right after the prompt, and " A" after a space."""
    ids = []
    for letter in letters:
        found = {tokenizer.encode(text, add_special_tokens=False)[-1] for text in (letter, " " + letter)}
        ids.append(sorted(found))
    return ids


def pick_choices(logprobs: Sequence[float], groups: Sequence[Sequence[int]]) -> tuple[int, list[float]]:
    """(index of the chosen letter, probability of each letter renormalised over the letters).

    `logprobs[j]` belongs to the j-th id of the flattened `groups`; a letter scores its best spelling.
    """
    scores, at = [], 0
    for group in groups:
        scores.append(max(logprobs[at : at + len(group)]))
        at += len(group)
    top = max(scores)
    weights = [math.exp(s - top) for s in scores]
    total = sum(weights)
    return scores.index(top), [w / total for w in weights]


@dataclass
class BenchmarkResult:
    """Accuracy overall (micro: every question counts once) and per subject, with per-question rows."""

    correct: int
    total: int
    subjects: dict[str, tuple[int, int]]  # subject -> (correct, total)
    rows: list[dict[str, Any]] = field(default_factory=list)
    n_shot: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def metrics(self) -> dict[str, float]:
        """Flat metrics for metrics.json: mc_accuracy, mc_n, mc_accuracy/<subject> (0-100)."""
        out: dict[str, float] = {"mc_accuracy": 100 * self.accuracy, "mc_n": float(self.total)}
        for subject, (right, n) in sorted(self.subjects.items()):
            out[f"mc_accuracy/{subject}"] = 100 * right / n if n else 0.0
        return out


def evaluate_benchmark(
    engine: Any,
    questions: Sequence[Question],
    *,
    n_shot: int = 5,
    lang: str = "auto",
    batch_size: int = 8,
    progress: Callable[[int], Any] | None = None,
) -> BenchmarkResult:
    """Score every non-dev question with `n_shot` examples; fewer shots where the context is too short."""
    from tunelab.infer.engine import InputTooLongError

    scored, dev = split_benchmark(questions)
    prompts, groups_of = [], []
    for q in scored:
        pool = dev.get(q.subject) or [o for o in scored if o.subject == q.subject and o.id != q.id]
        shots = list(pool[:n_shot])
        while True:
            ids = engine.encode_chat(build_messages(q, shots, lang))
            if len(ids) < engine.max_context or not shots:
                break
            shots = shots[1:]
        if len(ids) >= engine.max_context:
            raise InputTooLongError(len(ids), engine.max_context)
        prompts.append(ids)
        groups_of.append(choice_token_ids(engine.tokenizer, q.letters))

    # one forward pass per batch; questions with the same letters share one id list
    flat_ids = sorted({i for groups in groups_of for group in groups for i in group})
    position = {token: k for k, token in enumerate(flat_ids)}
    logprobs = engine.next_token_logprobs(prompts, flat_ids, batch_size=batch_size, progress=progress)

    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    rows, correct = [], 0
    for q, groups, row in zip(scored, groups_of, logprobs):
        picked, probs = pick_choices([row[position[i]] for g in groups for i in g], groups)
        predicted = q.letters[picked]
        hit = predicted == q.answer
        correct += hit
        tally[q.subject][0] += hit
        tally[q.subject][1] += 1
        rows.append(
            {
                "id": q.id,
                "subject": q.subject,
                "answer": q.answer,
                "predict": predicted,
                "correct": hit,
                "probs": {letter: round(p, 4) for letter, p in zip(q.letters, probs)},
            }
        )
    subjects = {s: (v[0], v[1]) for s, v in tally.items()}
    return BenchmarkResult(correct, len(scored), subjects, rows, n_shot=n_shot)
