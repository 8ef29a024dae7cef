"""Record-level detectors of a data check: empty fields, conflicting answers, chosen == rejected, scripts.

Each takes the records of one stage with their places and returns findings; none of them needs a
model or a tokenizer, so they run in seconds on data of any size that fits in memory.
"""

from __future__ import annotations

import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from tunelab.quality.scan import Finding, RecordRef
from tunelab.quality.textkey import normalize, record_text

__all__ = [
    "conflict_key",
    "conflicting_answers",
    "dominant_script",
    "empty_fields",
    "identical_pairs",
    "script_mix",
]


def empty_fields(records: Sequence[dict[str, Any]], refs: Sequence[RecordRef], stage: str) -> list[Finding]:
    """Records whose prompt or response is empty or only whitespace (a response only where one is learned)."""
    findings = []
    for record, ref in zip(records, refs):
        text = record_text(record, stage)
        missing = []
        if not text.prompt.strip():
            missing.append("text" if stage in ("pt", "cls") else "prompt")
        if stage in ("sft", "kto") and not text.response.strip():
            missing.append("response")
        if stage in ("rm", "dpo"):
            missing += [k for k in ("chosen", "rejected") if not (record.get(k) or "").strip()]
        if missing:
            findings.append(Finding("empty", ref, f"empty {', '.join(missing)}"))
    return findings


def identical_pairs(records: Sequence[dict[str, Any]], refs: Sequence[RecordRef]) -> list[Finding]:
    """Preference pairs whose chosen and rejected answers are the same text: nothing to learn from them."""
    return [
        Finding("chosen_eq_rejected", ref, "chosen and rejected are the same text")
        for record, ref in zip(records, refs)
        if record.get("chosen") is not None
        and normalize(record["chosen"]) == normalize(record["rejected"] or "")
    ]


def conflict_key(record: dict[str, Any], stage: str) -> tuple[tuple[str, ...], str]:
    """(what is asked, what is answered) of a record: two records conflict when the first matches and the second does not."""
    text = record_text(record, stage)
    if stage == "kto":
        return (normalize(text.prompt), normalize(text.response)), str(bool(record.get("kto_tag")))
    if stage in ("rm", "dpo"):
        pair = (normalize(record.get("chosen") or ""), normalize(record.get("rejected") or ""))
        return (normalize(text.prompt), *sorted(pair)), pair[0]
    return (normalize(text.prompt),), normalize(text.response)


def conflicting_answers(
    records: Sequence[dict[str, Any]], refs: Sequence[RecordRef], stage: str
) -> list[Finding]:
    """Records that ask the same thing as an earlier record and get a different answer.

    sft: same prompt, different response; cls: same text, different label; kto: same prompt and
    response, opposite desirability; rm/dpo: the same pair with chosen and rejected swapped. Each
    finding names the earliest record of its group as ``other``.
    """
    if stage in ("pt", "ppo"):
        return []
    first: dict[tuple[str, ...], int] = {}
    answers: dict[tuple[str, ...], set[str]] = defaultdict(set)
    keyed: list[tuple[str, ...]] = []
    for i, record in enumerate(records):
        key, answer = conflict_key(record, stage)
        first.setdefault(key, i)
        answers[key].add(answer)
        keyed.append(key)
    findings = []
    for i, key in enumerate(keyed):
        if len(answers[key]) > 1 and first[key] != i:
            kind = {"cls": "label", "kto": "desirability", "rm": "preference", "dpo": "preference"}
            what = kind.get(stage, "answer")
            findings.append(
                Finding("conflicts", refs[i], f"same prompt, different {what}", other=refs[first[key]])
            )
    return findings


def _script_of(char: str) -> str | None:
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    word = name.split(" ", 1)[0]
    if word in ("CJK", "HIRAGANA", "KATAKANA", "HANGUL"):
        return {"CJK": "Han", "HIRAGANA": "Kana", "KATAKANA": "Kana", "HANGUL": "Hangul"}[word]
    return word.title() if word else None


def dominant_script(text: str) -> tuple[str, bool]:
    """(the script most letters of ``text`` are written in, whether another script has >= 20%)."""
    counts = Counter(s for s in map(_script_of, text) if s)
    if not counts:
        return "none", False
    (top, n_top), *rest = counts.most_common()
    total = sum(counts.values())
    return top, bool(rest) and rest[0][1] >= 0.2 * total


def script_mix(records: Sequence[dict[str, Any]], stage: str) -> dict[str, Any]:
    """Share of records per dominant script (Latin, Han, Cyrillic, ...) and the share that mixes two."""
    scripts, mixed = Counter(), 0
    for record in records:
        top, is_mixed = dominant_script(record_text(record, stage).full)
        scripts[top] += 1
        mixed += is_mixed
    n = max(1, len(records))
    return {
        "scripts": {k: round(v / n, 4) for k, v in scripts.most_common()},
        "mixed_share": round(mixed / n, 4),
    }
