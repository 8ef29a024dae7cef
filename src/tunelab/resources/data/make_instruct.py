"""Generate ``instruct_en.json``: small, checkable tasks that a tiny model can learn in minutes.

Every answer is computed, never written by hand, so the data is correct by construction and a
test can recompute it. The tasks are short on purpose (reverse a word, add two numbers, sort
three numbers, ...): on a tiny random model the loss falls visibly within a few hundred steps,
which is what the demo and the tests need to show that training works.

Usage::

    python make_instruct.py           # rewrite instruct_en.json next to this file
    python make_instruct.py --check   # exit 1 if the committed file differs from the output

Records use LLaMA-Factory's alpaca shape with every key present in every record
(``instruction``, ``input``, ``output``, ``system``, ``history``), so that all records share one
schema when loaded into a table.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

__all__ = ["OUTPUT_FILE", "SEED", "build_records", "main", "render"]

SEED = 20240607
OUTPUT_FILE = Path(__file__).with_name("instruct_en.json")

# Short, common words with a few repeated letters, so that letter counting is not always 1.
_WORD_TEXT = """
    apple river garden silver planet window orange pencil rocket castle forest bridge candle
    dragon flower guitar harbor island jacket kitten ladder marble needle pepper rabbit
    saddle ticket violin walnut yellow banana butter cotton desert engine falcon hammer
    lemon mirror napkin paper puzzle tomato summer winter thunder cloud model token tensor
    matrix vector layer batch epoch kernel signal coffee pillow basket
    """
WORDS = tuple(_WORD_TEXT.split())
PHRASES = (
    "hello world",
    "good morning",
    "fine tuning is fun",
    "the cat sat on the mat",
    "learning rate",
    "small steps add up",
    "rain in the afternoon",
    "keep the loss low",
    "a cup of tea",
    "open the window",
    "read the logs first",
    "the river is wide",
    "bake the bread slowly",
    "one epoch at a time",
    "check your data",
    "the sky is clear",
    "save a checkpoint",
    "low rank adapter",
    "fresh basil and garlic",
    "evaluate on held out data",
    "soft rain on the roof",
    "batch size of eight",
    "the model is learning",
    "warm up the learning rate",
)
NUMBER_SYSTEMS = ("You are a careful calculator. Reply with the number only.", "Answer with a single number.")
TEXT_SYSTEMS = (
    "You are a text tool. Reply with the transformed text only.",
    "Answer as briefly as possible.",
)

Task = tuple[str, str, str]  # (instruction, input, output)


class _Rng:
    """Seeded choices built only on ``random.random()``.

    Python guarantees that ``Random(seed).random()`` yields the same sequence across versions;
    ``randint``/``choice``/``shuffle`` carry no such promise, so the committed file could drift.
    """

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def integer(self, low: int, high: int) -> int:
        """Return an integer in [low, high]."""
        return low + int(self._random.random() * (high - low + 1))

    def pick(self, items: Sequence[Any]) -> Any:
        return items[int(self._random.random() * len(items))]

    def chance(self, probability: float) -> bool:
        return self._random.random() < probability

    def shuffle(self, items: list[Any]) -> None:
        for i in range(len(items) - 1, 0, -1):
            j = int(self._random.random() * (i + 1))
            items[i], items[j] = items[j], items[i]

    def distinct(self, n: int, low: int, high: int) -> list[int]:
        values: list[int] = []
        while len(values) < n:
            value = self.integer(low, high)
            if value not in values:
                values.append(value)
        return values


def _join(numbers: Sequence[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def _unsorted_triple(rng: _Rng) -> list[int]:
    """Three distinct numbers not already in either order, so that sorting them is real work."""
    while True:
        numbers = rng.distinct(3, 1, 99)
        if numbers not in (sorted(numbers), sorted(numbers, reverse=True)):
            return numbers


def _reverse(rng: _Rng) -> Task:
    word = rng.pick(WORDS)
    form = rng.integer(0, 2)
    if form == 0:
        return f"Reverse the word: {word}", "", word[::-1]
    if form == 1:
        return f"Spell the word {word} backwards.", "", word[::-1]
    return "Reverse the letters of the word below.", word, word[::-1]


def _add(rng: _Rng) -> Task:
    a, b = rng.integer(2, 99), rng.integer(2, 99)
    form = rng.integer(0, 3)
    if form == 3:
        return "Add the two numbers.", f"{a}, {b}", str(a + b)
    text = ("Add {a} and {b}.", "What is {a} + {b}?", "Compute the sum of {a} and {b}.")[form]
    return text.format(a=a, b=b), "", str(a + b)


def _subtract(rng: _Rng) -> Task:
    a, b = sorted(rng.distinct(2, 5, 99), reverse=True)
    form = rng.integer(0, 2)
    if form == 2:
        return "Subtract the second number from the first.", f"{a}, {b}", str(a - b)
    text = ("Subtract {b} from {a}.", "What is {a} - {b}?")[form]
    return text.format(a=a, b=b), "", str(a - b)


def _multiply(rng: _Rng) -> Task:
    a, b = rng.integer(2, 12), rng.integer(2, 12)
    form = rng.integer(0, 2)
    if form == 2:
        return "Multiply the two numbers.", f"{a}, {b}", str(a * b)
    text = ("Multiply {a} by {b}.", "What is {a} times {b}?")[form]
    return text.format(a=a, b=b), "", str(a * b)


def _uppercase(rng: _Rng) -> Task:
    phrase = rng.pick(PHRASES)
    form = rng.integer(0, 2)
    if form == 2:
        return "Rewrite the text in capital letters.", phrase, phrase.upper()
    text = ("Uppercase: {p}", "Convert to upper case: {p}")[form]
    return text.format(p=phrase), "", phrase.upper()


def _lowercase(rng: _Rng) -> Task:
    shouted = rng.pick(PHRASES).upper()
    if rng.chance(0.5):
        return "Convert the text to lower case.", shouted, shouted.lower()
    return f"Lowercase: {shouted}", "", shouted.lower()


def _next_number(rng: _Rng) -> Task:
    start, step, length = rng.integer(1, 20), rng.integer(1, 9), rng.integer(3, 4)
    sequence = [start + step * i for i in range(length)]
    answer = str(start + step * length)
    form = rng.integer(0, 2)
    if form == 2:
        return "Give the next number in the sequence.", _join(sequence), answer
    text = ("What is the next number: {s}", "Continue the sequence with one number: {s}")[form]
    return text.format(s=_join(sequence)), "", answer


def _sort(rng: _Rng) -> Task:
    numbers = _unsorted_triple(rng)
    form = rng.integer(0, 2)
    if form == 0:
        return f"Sort in ascending order: {_join(numbers)}", "", _join(sorted(numbers))
    if form == 1:
        return f"Sort from largest to smallest: {_join(numbers)}", "", _join(sorted(numbers, reverse=True))
    return "Sort these numbers from smallest to largest.", _join(numbers), _join(sorted(numbers))


def _length(rng: _Rng) -> Task:
    word = rng.pick(WORDS)
    if rng.chance(0.5):
        return f"How many letters are in the word {word}?", "", str(len(word))
    return f"Count the letters in: {word}", "", str(len(word))


def _count_letter(rng: _Rng) -> Task:
    word = rng.pick(WORDS)
    # Mostly letters that occur (the interesting case), sometimes one that does not (answer 0).
    letter = rng.pick(word) if rng.chance(0.8) else rng.pick("abcdefghijklmnopqrstuvwxyz")
    return f"How many times does the letter {letter} appear in {word}?", "", str(word.count(letter))


def _parity(rng: _Rng) -> Task:
    n = rng.integer(1, 200)
    answer = "even" if n % 2 == 0 else "odd"
    if rng.chance(0.5):
        return "Is the number even or odd?", str(n), answer
    return f"Is {n} even or odd?", "", answer


def _compare(rng: _Rng) -> Task:
    a, b = rng.distinct(2, 1, 500)
    if rng.chance(0.5):
        return f"Which is larger, {a} or {b}?", "", str(max(a, b))
    return f"Which is smaller, {a} or {b}?", "", str(min(a, b))


def _spell(rng: _Rng) -> Task:
    word = rng.pick(WORDS)
    return f"Spell out the word {word} letter by letter, separated by hyphens.", "", "-".join(word)


def _chain(rng: _Rng) -> tuple[list[list[str]], str, str]:
    """Return (history, instruction, output) for a follow-up that depends on the earlier answers."""
    kind = rng.integer(0, 3)
    if kind == 0:
        a, b = rng.integer(2, 50), rng.integer(2, 50)
        return [[f"Add {a} and {b}.", str(a + b)]], "Now double that.", str(2 * (a + b))
    if kind == 1:
        a, b, k = rng.integer(2, 50), rng.integer(2, 50), rng.integer(1, 9)
        total = a + b
        history = [[f"Add {a} and {b}.", str(total)], ["Now double that.", str(2 * total)]]
        return history, f"Now subtract {k}.", str(2 * total - k)
    if kind == 2:
        word = rng.pick(WORDS)
        history = [[f"Reverse the word: {word}", word[::-1]]]
        return history, "Now write it in capital letters.", word[::-1].upper()
    numbers = _unsorted_triple(rng)
    history = [[f"Sort in ascending order: {_join(numbers)}", _join(sorted(numbers))]]
    return history, "Which of them is the largest?", str(max(numbers))


# (builder, number of records, system prompts that fit the answer style)
PLAN: tuple[tuple[Callable[[_Rng], Task], int, tuple[str, ...]], ...] = (
    (_reverse, 14, TEXT_SYSTEMS),
    (_add, 16, NUMBER_SYSTEMS),
    (_subtract, 12, NUMBER_SYSTEMS),
    (_multiply, 12, NUMBER_SYSTEMS),
    (_uppercase, 10, TEXT_SYSTEMS),
    (_lowercase, 6, TEXT_SYSTEMS),
    (_next_number, 12, NUMBER_SYSTEMS),
    (_sort, 12, TEXT_SYSTEMS),
    (_length, 8, NUMBER_SYSTEMS),
    (_count_letter, 8, NUMBER_SYSTEMS),
    (_parity, 8, TEXT_SYSTEMS),
    (_compare, 10, NUMBER_SYSTEMS),
    (_spell, 8, TEXT_SYSTEMS),
)
N_CHAINS = 14
SYSTEM_SHARE = 0.25


def _record(
    instruction: str, query: str, output: str, system: str, history: list[list[str]]
) -> dict[str, Any]:
    return {
        "instruction": instruction,
        "input": query,
        "output": output,
        "system": system,
        "history": history,
    }


def _draw_task(rng: _Rng, builder: Callable[[_Rng], Task], systems: tuple[str, ...]) -> dict[str, Any]:
    instruction, query, output = builder(rng)
    system = rng.pick(systems) if rng.chance(SYSTEM_SHARE) else ""
    return _record(instruction, query, output, system, [])


def _draw_chain(rng: _Rng) -> dict[str, Any]:
    history, instruction, output = _chain(rng)
    return _record(instruction, "", output, "", history)


def build_records(seed: int = SEED) -> list[dict[str, Any]]:
    """Return the instruct records for ``seed``: same seed, same records, on any Python 3.10+."""
    rng = _Rng(seed)
    draws = [
        partial(_draw_task, rng, builder, systems) for builder, count, systems in PLAN for _ in range(count)
    ]
    draws += [partial(_draw_chain, rng)] * N_CHAINS
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for draw in draws:
        # Redraw until the prompt is new, so that no record duplicates another.
        while True:
            record = draw()
            key = json.dumps([record["instruction"], record["input"], record["history"]])
            if key not in seen:
                break
        seen.add(key)
        records.append(record)
    rng.shuffle(records)
    return records


def render(records: list[dict[str, Any]]) -> str:
    """Return the file text exactly as committed: pretty-printed UTF-8 JSON with a final newline."""
    return json.dumps(records, ensure_ascii=False, indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) ``instruct_en.json``; return the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the committed file")
    parser.add_argument("--output", type=Path, default=OUTPUT_FILE, help="file to write or check")
    args = parser.parse_args(argv)
    text = render(build_records(SEED))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is out of date: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        print(f"{args.output} is up to date")
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
