"""Generate ``topics_synthetic.csv``: a small, learnable 3-class text classification task.

Each text talks about one topic (animals, space or cooking) through two or three topic words set
in a shared sentence frame, with neutral filler words around them; some three-word texts carry one
word of another topic as a distractor. The label is the topic of the majority of topic words, so a model must look at the words, not at the frame, and the task is learnable by a tiny
model within a few dozen steps (what the cls tests and examples/cls_tiny.yaml need).

Usage::

    python make_topics.py           # rewrite topics_synthetic.csv next to this file
    python make_topics.py --check   # exit 1 if the committed file differs from the output

Only ``random.Random(seed).random()`` is used, whose sequence Python keeps stable across versions,
so the script writes the same bytes everywhere.
"""

from __future__ import annotations

import argparse
import csv
import io
import random
import sys
from pathlib import Path

__all__ = ["LABELS", "OUTPUT_FILE", "SEED", "build_rows", "main", "render"]

SEED = 20241117
N_PER_CLASS = 100
OUTPUT_FILE = Path(__file__).with_name("topics_synthetic.csv")

TOPIC_WORDS = {
    "animals": "cat dog horse rabbit tiger eagle whale monkey lion sheep parrot wolf fox bear owl".split(),
    "space": "planet rocket comet galaxy orbit moon star telescope asteroid astronaut nebula mars saturn "
    "meteor satellite".split(),
    "cooking": "soup bread pasta oven recipe salad butter garlic onion pepper sauce pancake noodle kitchen "
    "spoon".split(),
}
LABELS = tuple(sorted(TOPIC_WORDS))
FILLER = "today yesterday morning quietly really often maybe still again later together very small big old new".split()
FRAMES = (
    "the {a} and the {b} were {f} in the news",
    "i read about a {a} {f} and then a {b}",
    "we talked about the {a} near the {b} {f}",
    "my friend likes the {a} more than the {b}",
    "{f} a story about the {a} the {b} and the {c}",
    "there was a {a} a {b} and a {c} {f}",
    "she drew a {a} next to a {b}",
    "the book has a {a} on every page and a {b} {f}",
)


def _pick(rng: random.Random, items: list[str] | tuple[str, ...]) -> str:
    return items[int(rng.random() * len(items))]


def _text(rng: random.Random, label: str) -> str:
    frame = _pick(rng, FRAMES)
    words = [_pick(rng, TOPIC_WORDS[label]) for _ in range(3)]
    if "{c}" in frame and rng.random() < 0.3:  # a distractor of another topic; 2 of 3 words still decide
        words[2] = _pick(rng, TOPIC_WORDS[_pick(rng, [t for t in LABELS if t != label])])
    return frame.format(a=words[0], b=words[1], c=words[2], f=_pick(rng, FILLER))


def build_rows(seed: int = SEED) -> list[dict[str, str]]:
    """``N_PER_CLASS`` distinct texts per topic (no text in two splits), in a seeded order."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for _ in range(N_PER_CLASS):
        for label in LABELS:
            text = _text(rng, label)
            while text in seen:
                text = _text(rng, label)
            seen.add(text)
            rows.append({"text": text, "label": label})
    order = sorted(range(len(rows)), key=lambda _: rng.random())
    return [rows[i] for i in order]


def render(rows: list[dict[str, str]]) -> str:
    """The CSV text (header text,label; Unix line endings)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["text", "label"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    parser.add_argument("--output", type=Path, default=OUTPUT_FILE)
    args = parser.parse_args(argv)
    text = render(build_rows())
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            print(f"{args.output} is stale: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {len(text.splitlines()) - 1} rows to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
