"""EDA (Wei & Zou 2019, "Easy Data Augmentation"): small random edits of a text that keep its label.

Random swap and random deletion need nothing; synonym replacement and random insertion need a
synonym source, used where one is installed (NLTK's WordNet corpus, English only) and skipped
otherwise (the result says so). Chinese text is split into words with jieba. Every edit is drawn
from a seeded generator, so the same seed gives the same copies.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import cache

__all__ = ["eda_variants", "synonym_source"]


@cache
def synonym_source() -> Callable[[str], list[str]] | None:
    """English synonyms from WordNet when NLTK and its corpus are installed, else None."""
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
    except (ImportError, LookupError, OSError):
        return None

    def synonyms(word: str) -> list[str]:
        names = {lemma.name().replace("_", " ") for syn in wordnet.synsets(word) for lemma in syn.lemmas()}
        return sorted(n for n in names if n.lower() != word.lower())

    return synonyms


def _words(text: str) -> tuple[list[str], str]:
    """Words and the joiner to put them back together ('' for Chinese, ' ' otherwise)."""
    if any("\u4e00" <= ch <= "\u9fff" for ch in text):
        import jieba

        jieba.setLogLevel(60)
        return [w for w in jieba.lcut(text) if w.strip()], ""
    return text.split(), " "


def _edit(
    words: list[str], rng: random.Random, alpha: float, synonyms: Callable[[str], list[str]] | None
) -> list[str]:
    n = max(1, round(alpha * len(words)))
    operations = ["swap", "delete"] + (["synonym", "insert"] if synonyms else [])
    op = rng.choice(operations)
    out = list(words)
    if op == "swap" and len(out) > 1:
        for _ in range(n):
            i, j = rng.sample(range(len(out)), 2)
            out[i], out[j] = out[j], out[i]
    elif op == "delete" and len(out) > 1:
        out = [w for w in out if rng.random() > alpha] or [rng.choice(out)]
    elif op in ("synonym", "insert") and synonyms is not None:
        candidates = [i for i, w in enumerate(out) if synonyms(w)]
        rng.shuffle(candidates)
        for i in candidates[:n]:
            choice = rng.choice(synonyms(out[i]))
            if op == "synonym":
                out[i] = choice
            else:
                out.insert(rng.randrange(len(out) + 1), choice)
    return out


def eda_variants(text: str, n: int, *, seed: int, alpha: float = 0.1) -> list[str]:
    """Up to ``n`` distinct edited copies of ``text`` (fewer when a text is too short to change)."""
    rng = random.Random(f"{seed}:{text}")
    words, joiner = _words(text)
    synonyms = synonym_source()
    seen, out = {text}, []
    for _ in range(4 * n):
        if len(out) == n or len(words) < 2:
            break
        variant = joiner.join(_edit(words, rng, alpha, synonyms))
        if variant not in seen:
            seen.add(variant)
            out.append(variant)
    return out
