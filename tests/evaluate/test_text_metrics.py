"""BLEU-4 / ROUGE-1/2/L on pairs whose values are worked out by hand (or by sacrebleu on hand-segmented text)."""

from __future__ import annotations

import math

import pytest
import sacrebleu

from tunelab.evaluate.text_metrics import bleu4, rouge, score_generations, segment

ZH_PRED = "学习率决定了每一步更新的大小"
ZH_REF = "学习率决定每一步更新的幅度大小"
ZH_PRED_WORDS = ["学习", "率", "决定", "了", "每", "一步", "更新", "的", "大小"]
ZH_REF_WORDS = ["学习", "率", "决定", "每", "一步", "更新", "的", "幅度", "大小"]


def test_bleu_is_brevity_penalty_when_every_ngram_matches() -> None:
    # all 1-4-gram precisions are 1; the hypothesis is 6 words against 7: BP = exp(1 - 7/6)
    assert bleu4(["the cat sat on the mat"], ["the cat sat on the mat today"]) == pytest.approx(
        100 * math.exp(1 - 7 / 6), rel=1e-6
    )
    assert bleu4(["same words here and there"], ["same words here and there"]) == pytest.approx(100.0)
    assert bleu4(["completely different"], ["nothing in common at all"]) == 0.0


def test_chinese_is_segmented_with_jieba() -> None:
    assert segment("我爱北京天安门") == ["我", "爱", "北京", "天安门"]
    assert segment(ZH_PRED) == ZH_PRED_WORDS and segment(ZH_REF) == ZH_REF_WORDS
    assert segment("你好，世界！") == ["你好", "世界"]  # punctuation is not a word
    # BLEU of the Chinese pair = sacrebleu on the same words written with spaces
    expected = sacrebleu.corpus_bleu([" ".join(ZH_PRED_WORDS)], [[" ".join(ZH_REF_WORDS)]]).score
    assert bleu4([ZH_PRED], [ZH_REF]) == pytest.approx(expected) and 0 < expected < 100


def test_rouge_by_hand() -> None:
    # the cat sat on the mat / the cat is on the mat: 5 of 6 unigrams, 3 of 5 bigrams, LCS 5
    en = rouge(["the cat sat on the mat"], ["the cat is on the mat"])
    assert en["rouge-1"] == pytest.approx(100 * 5 / 6)
    assert en["rouge-2"] == pytest.approx(100 * 3 / 5)
    assert en["rouge-l"] == pytest.approx(100 * 5 / 6)
    # Chinese words: 8 of 9 shared, 5 of 8 bigrams, LCS 8 (without jieba rouge-score would see no words)
    zh = rouge([ZH_PRED], [ZH_REF])
    assert zh == pytest.approx({"rouge-1": 100 * 8 / 9, "rouge-2": 100 * 5 / 8, "rouge-l": 100 * 8 / 9})
    both = rouge(["the cat sat on the mat", ZH_PRED], ["the cat is on the mat", ZH_REF])
    assert both["rouge-2"] == pytest.approx((60.0 + 62.5) / 2)  # averaged over records


def test_score_generations_keys_and_empty_prediction() -> None:
    scores = score_generations(["", "hello world"], ["hello world", "hello world"])
    assert set(scores) == {"bleu-4", "rouge-1", "rouge-2", "rouge-l"}
    assert scores["rouge-1"] == pytest.approx(50.0)  # an empty answer scores 0, the exact one 100
    with pytest.raises(ValueError):
        score_generations(["a"], [])
