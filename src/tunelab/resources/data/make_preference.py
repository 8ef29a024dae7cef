"""Generate the bundled preference data: pairs for rm/dpo (alpaca and sharegpt) and tagged answers for kto.

The preference is one a tiny model can learn in a few dozen steps: the preferred answer is polite
and correct, the other is rude and, half of the time, also wrong or no answer at all. Rudeness is
always present in the rejected (undesirable) answer, so reward accuracy can rise on held-out data
from wording alone; correctness is the harder, additional signal. Computed answers (sums, reversed
words, letter counts, ...) are correct by construction and wrong ones are checked to differ.

Usage::

    python make_preference.py           # rewrite the three files next to this file
    python make_preference.py --check   # exit 1 if a committed file differs from the output

Only ``random.Random(seed).random()`` is used (see make_instruct.py), so the output is the same
on every Python version.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["OUTPUTS", "SEED", "build_files", "main", "render"]

SEED = 20240815
HERE = Path(__file__).parent
OUTPUTS = ("pref_polite_en.json", "pref_polite_sharegpt.json", "kto_polite_en.json")

WORDS = tuple(
    "apple river garden silver planet window orange pencil rocket castle forest bridge candle dragon "
    "flower guitar harbor island jacket kitten ladder marble pepper rabbit ticket violin walnut yellow "
    "banana butter cotton engine falcon hammer lemon mirror puzzle tomato summer winter coffee basket".split()
)
PHRASES = (
    "good morning",
    "thank you very much",
    "see you soon",
    "the train is late",
    "save the file",
    "happy birthday",
    "the soup is hot",
    "open the door",
)
OPENERS = ("Sure!", "Of course.", "Happy to help!", "Good question.", "Certainly!", "Gladly.")
CLOSERS = ("", "I hope this helps!", "Let me know if you need anything else.", "Have a nice day!")
RUDE = (
    "Ugh, {answer} Figure it out yourself next time.",
    "Why ask me? {answer} Stop wasting my time.",
    "{answer} Obviously. Use your head.",
    "Whatever. {answer}",
    "Seriously? {answer} Don't bother me again.",
    "Fine. {answer} Now go away.",
)
DISMISSALS = (
    "I don't care. Look it up yourself.",
    "Not my problem.",
    "Ask someone else, I'm busy.",
    "No. Do your own homework.",
    "Stop asking me silly questions.",
)
# (question, helpful answer): everyday questions whose "wrong" version is a rude dismissal.
EVERYDAY = (
    ("How do I make a cup of tea?", "Boil water, pour it over a tea bag and wait three minutes."),
    ("How long should I boil an egg?", "About eight minutes for a firm yolk, six for a soft one."),
    ("How can I sleep better?", "Go to bed at the same time every day and keep the room dark and cool."),
    (
        "What should I pack for a short trip?",
        "Clothes for each day, a toothbrush, a charger and your ticket.",
    ),
    ("How do I keep basil fresh?", "Keep the stems in a glass of water on the kitchen counter."),
    ("How do I water a cactus?", "Water it deeply once the soil is completely dry, about every two weeks."),
    ("How can I learn new words faster?", "Review them a little every day and use each one in a sentence."),
    ("What is a good way to start running?", "Start with short runs mixed with walking, three times a week."),
    ("How do I clean a coffee mug stain?", "Scrub it with a paste of baking soda and a little water."),
    ("How do I save a file?", "Press Ctrl and S, then choose a folder and a name."),
    ("How do I stay focused while studying?", "Work for twenty five minutes, then take a five minute break."),
    (
        "What can I cook with rice and eggs?",
        "Fried rice: fry the eggs, add the cooked rice and some soy sauce.",
    ),
    ("How do I fix a slow laptop?", "Close programs you do not use and restart it once in a while."),
    ("How do I write a thank you note?", "Name the gift or help, say how it mattered to you, and sign it."),
    (
        "How often should I water tomatoes?",
        "Water them deeply two or three times a week, more in hot weather.",
    ),
    ("How do I pick a ripe banana?", "Choose one that is yellow with a few brown spots."),
    ("How can I remember a password?", "Use a password manager, or a long phrase only you would think of."),
    ("What is a learning rate?", "It sets how big each training step is when a model updates its weights."),
    ("Why should I keep a validation set?", "It shows whether the model works on data it did not train on."),
    ("How do I make my bread rise more?", "Give the dough more time in a warm place before baking."),
    ("How do I calm down before a talk?", "Breathe slowly, practise the opening lines and drink some water."),
    (
        "What should I do if my plant has yellow leaves?",
        "Check the soil: yellow leaves often mean too much water.",
    ),
    ("How do I greet someone in French?", "Say bonjour during the day and bonsoir in the evening."),
    ("How can I drink more water?", "Keep a bottle on your desk and refill it after every meal."),
)
SYSTEMS = (
    "You are a friendly assistant.",
    "You are a helpful assistant. Be kind and correct.",
    "Answer politely and briefly.",
)
# (question, polite answer, rude answer): hand-written Chinese pairs for the sharegpt file.
CHINESE = (
    ("怎么煮鸡蛋？", "当然可以！把鸡蛋放进沸水里煮八分钟，再用冷水冲一下。", "自己查去，别烦我。"),
    (
        "怎样才能睡得更好？",
        "很高兴帮忙！每天固定时间睡觉，保持房间安静、凉爽。",
        "这种问题也问？随便睡就行。",
    ),
    ("三加五等于几？", "好的，三加五等于八。", "三加五等于九，别再问了。"),
    ("怎么泡一杯茶？", "没问题！把热水倒在茶叶上，等三分钟就好了。", "烦死了，你自己想办法。"),
    ("如何记住新单词？", "好问题！每天复习一点，并用每个词造一个句子。", "记不住就算了，关我什么事。"),
    ("学习率是什么？", "当然可以解释：学习率决定模型每一步更新权重的幅度。", "这都不懂？自己去看书。"),
    ("怎么保存文件？", "很乐意帮忙！按 Ctrl 加 S，然后选择文件夹和文件名。", "我很忙，问别人去。"),
    ("如何开始跑步？", "好的！先从短距离慢跑加步行开始，每周三次。", "跑不动就别跑，少废话。"),
    ("把 apple 倒过来怎么拼？", "当然：apple 倒过来是 elppa。", "apple 倒过来是 apple，笨。"),
    ("怎样多喝水？", "好主意！在桌上放一个水瓶，每顿饭后装满。", "渴了自然会喝，别问我。"),
)


class _Rng:
    """Seeded choices built only on ``random.random()`` (stable across Python versions)."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        return low + int(self._random.random() * (high - low + 1))

    def pick(self, items: Sequence[Any]) -> Any:
        return items[int(self._random.random() * len(items))]

    def chance(self, probability: float) -> bool:
        return self._random.random() < probability


Task = tuple[str, str, str | None]  # (question, correct answer sentence, wrong answer sentence or None)


def _add(rng: _Rng) -> Task:
    a, b = rng.integer(2, 60), rng.integer(2, 60)
    wrong = a + b + rng.pick((-10, -3, -2, -1, 1, 2, 5, 10))
    question = rng.pick(
        ("What is {a} + {b}?", "Add {a} and {b}.", "What do you get when you add {a} and {b}?")
    )
    return question.format(a=a, b=b), f"{a} + {b} = {a + b}.", f"{a} + {b} = {wrong}."


def _reverse(rng: _Rng) -> Task:
    word = rng.pick(WORDS)
    wrong = word[1:] + word[0]
    question = rng.pick(
        ("Spell the word {w} backwards.", "Reverse the word {w}.", "What is {w} written backwards?")
    )
    return question.format(w=word), f"{word} backwards is {word[::-1]}.", f"{word} backwards is {wrong}."


def _upper(rng: _Rng) -> Task:
    phrase = rng.pick(PHRASES)
    question = rng.pick(("Write '{p}' in capital letters.", "Change '{p}' to upper case."))
    return (
        question.format(p=phrase),
        f"In capital letters: {phrase.upper()}.",
        f"In capital letters: {phrase.title()}.",
    )


def _count(rng: _Rng) -> Task:
    word = rng.pick(WORDS)
    wrong = len(word) + rng.pick((-2, -1, 1, 2))
    question = rng.pick(("How many letters does the word {w} have?", "Count the letters in {w}."))
    return (
        question.format(w=word),
        f"The word {word} has {len(word)} letters.",
        f"The word {word} has {wrong} letters.",
    )


def _larger(rng: _Rng) -> Task:
    a, b = rng.integer(1, 99), rng.integer(1, 99)
    while a == b:
        b = rng.integer(1, 99)
    question = rng.pick(("Which number is larger, {a} or {b}?", "Which is bigger: {a} or {b}?"))
    return question.format(a=a, b=b), f"{max(a, b)} is larger.", f"{min(a, b)} is larger."


def _next(rng: _Rng) -> Task:
    start, step = rng.integer(1, 20), rng.integer(2, 9)
    seq = [start + step * i for i in range(3)]
    answer = start + step * 3
    text = ", ".join(map(str, seq))
    return (
        f"What number comes next: {text}?",
        f"The next number is {answer}.",
        f"The next number is {answer + 1}.",
    )


def _everyday(rng: _Rng) -> Task:
    question, answer = rng.pick(EVERYDAY)
    return question, answer, None


FAMILIES: tuple[Callable[[_Rng], Task], ...] = (
    _add,
    _reverse,
    _upper,
    _count,
    _larger,
    _next,
    _everyday,
    _everyday,
)


def _polite(rng: _Rng, answer: str) -> str:
    closer = rng.pick(CLOSERS)
    return " ".join(part for part in (rng.pick(OPENERS), answer, closer) if part)


def _rude(rng: _Rng, correct: str, wrong: str | None) -> str:
    """Always rude; half of the time also wrong (or, for everyday questions, no answer at all)."""
    if rng.chance(0.5):
        return rng.pick(DISMISSALS) if wrong is None else rng.pick(RUDE).format(answer=wrong)
    return rng.pick(RUDE).format(answer=correct)


def _unique_tasks(rng: _Rng, n: int, seen: set[str]) -> list[Task]:
    tasks: list[Task] = []
    while len(tasks) < n:
        task = rng.pick(FAMILIES)(rng)
        if task[0] not in seen:
            seen.add(task[0])
            tasks.append(task)
    return tasks


def build_files(seed: int = SEED) -> dict[str, list[dict[str, Any]]]:
    """File name -> records of every generated file."""
    rng = _Rng(seed)
    seen: set[str] = set()
    pairs = [
        {"instruction": q, "input": "", "chosen": _polite(rng, good), "rejected": _rude(rng, good, bad)}
        for q, good, bad in _unique_tasks(rng, 100, seen)
    ]
    sharegpt = []
    for q, good, bad in _unique_tasks(rng, 30, seen):
        turns = []
        if rng.chance(0.3):
            turns.append({"from": "system", "value": rng.pick(SYSTEMS)})
        if rng.chance(0.3):
            first_q, first_a = rng.pick(EVERYDAY)
            turns += [{"from": "human", "value": first_q}, {"from": "gpt", "value": _polite(rng, first_a)}]
        turns.append({"from": "human", "value": q})
        sharegpt.append(
            {
                "conversations": turns,
                "chosen": {"from": "gpt", "value": _polite(rng, good)},
                "rejected": {"from": "gpt", "value": _rude(rng, good, bad)},
            }
        )
    for q, good, bad in CHINESE:
        sharegpt.append(
            {
                "conversations": [{"from": "human", "value": q}],
                "chosen": {"from": "gpt", "value": good},
                "rejected": {"from": "gpt", "value": bad},
            }
        )
    kto = []
    for q, good, bad in _unique_tasks(rng, 100, seen):
        desirable = rng.chance(0.56)
        output = _polite(rng, good) if desirable else _rude(rng, good, bad)
        kto.append({"instruction": q, "input": "", "output": output, "label": desirable})
    return dict(zip(OUTPUTS, (pairs, sharegpt, kto)))


def render(records: list[dict[str, Any]]) -> str:
    """The file text: pretty-printed UTF-8 JSON, as every bundled .json file."""
    return json.dumps(records, ensure_ascii=False, indent=2) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file is stale")
    parser.add_argument(
        "--dir", type=Path, default=HERE, help="where the files are (default: next to this script)"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, records in build_files().items():
        path, text = args.dir / name, render(records)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run python {Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
