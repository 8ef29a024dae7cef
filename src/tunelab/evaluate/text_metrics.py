"""BLEU-4 and ROUGE-1/2/L of generated answers against references, with Chinese segmented by jieba.

BLEU-4 is sacrebleu's corpus BLEU (the standard figure, 0-100). ROUGE is rouge-score's F1 averaged
over records (x 100). rouge-score's own tokenizer keeps only [a-z0-9], so Chinese text would vanish;
text that contains CJK characters is therefore segmented into words with jieba first, for both
metrics. English text keeps each library's standard tokenization, so figures match published ones.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["bleu4", "has_cjk", "rouge", "score_generations", "segment"]

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[0-9a-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def has_cjk(text: str) -> bool:
    """True when `text` contains Chinese characters."""
    return bool(_CJK.search(text))


@lru_cache(maxsize=1)
def _jieba():  # noqa: ANN202 - the jieba module
    import jieba

    jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter goes to stderr otherwise
    return jieba


def segment(text: str) -> list[str]:
    """Words of `text` as the metrics count them: jieba words for Chinese text, else rouge-score's tokens.

    Chinese words are lowercased and punctuation/whitespace pieces dropped, as rouge-score does for English.
    """
    if not has_cjk(text):
        from rouge_score import tokenize

        return tokenize.tokenize(text, None)
    words = (w.strip().lower() for w in _jieba().lcut(text))
    return [w for w in words if w and _WORD.search(w)]


def _bleu_text(text: str) -> str:
    """Text as BLEU sees it: Chinese pre-segmented into space-separated words, other text unchanged."""
    return " ".join(_jieba().lcut(text)) if has_cjk(text) else text


def bleu4(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 (sacrebleu, 13a tokenization, 0-100) of predictions against one reference each."""
    import sacrebleu

    _check_lengths(predictions, references)
    hyps = [_bleu_text(p) for p in predictions]
    refs = [_bleu_text(r) for r in references]
    return float(sacrebleu.corpus_bleu(hyps, [refs]).score)


class _Segmenter:
    """rouge-score tokenizer interface (`tokenize(text) -> list[str]`)."""

    def tokenize(self, text: str) -> list[str]:
        return segment(text)


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 (x 100) over the pairs: {"rouge-1": ..., "rouge-2": ..., "rouge-l": ...}."""
    from rouge_score import rouge_scorer

    _check_lengths(predictions, references)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_Segmenter())
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)  # rouge-score takes (target, prediction)
        for key in totals:
            totals[key] += scores[key].fmeasure
    n = max(len(predictions), 1)
    return {
        "rouge-1": 100 * totals["rouge1"] / n,
        "rouge-2": 100 * totals["rouge2"] / n,
        "rouge-l": 100 * totals["rougeL"] / n,
    }


def score_generations(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """{"bleu-4", "rouge-1", "rouge-2", "rouge-l"} of generated answers (all 0-100)."""
    return {"bleu-4": bleu4(predictions, references), **rouge(predictions, references)}


def _check_lengths(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
