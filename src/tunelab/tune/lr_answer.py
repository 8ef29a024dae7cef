"""One learning-rate answer from up to three sources: the recipe, the LR range test, and a study.

Each source gives an `LrEstimate`: a learning rate and a band [low, high] in log space, read as
about ±2 standard deviations of ln(lr) (a ~95% band). The answer is decided in this order:

1. **study** — when a sweep or tune study of this config searched ``learning_rate``, its best
   trial's value wins: those trials trained the config to the end and were judged on held-out data,
   which is what both other sources only predict.
2. **recipe + lr-find, between them** — when the range test ran (`tunelab advise --measure`) and
   found a descent, and the run moves pretrained weights (full or freeze fine-tuning of a model that
   is not a ``tiny:`` random one). Here the two err in opposite directions. The range test is a
   short ramp on the training loss: it finds where the loss falls fastest and cannot see what a
   high rate does to pretrained features over a whole run (forgetting, overfitting a small set),
   so it overshoots; the published full fine-tuning recipes sit far below that point on purpose.
   Measured on all-MiniLM-L6-v2 full FT (lr_answer benchmark, advised config, 8 seeds, final eval
   loss): recipe 5.6e-5 -> mean 0.124 (median 0.095), range test 5.2e-4 -> mean 0.374 (median
   0.367), the weighted 3e-4 -> mean 0.144 (median 0.0019: below 0.004 on 6 seeds, 0.38 and 0.77 on
   the other two). Its mean is within seed noise of the recipe's, not yet better.
   So the two are combined by precision weighting in ln(lr) (below), and a disagreement does not
   hand the answer to either side.
3. **lr-find** — the same, when the run trains new weights (an adapter such as LoRA, or a model
   initialised at random) on a model below 1B parameters: the recipe's bands come from published
   runs of 1B-70B models (RoBERTa for classification) and reach a smaller model only through
   extrapolation (size factor, batch rule), and measured, that extrapolation runs low, not just
   noisy: 4.2x below a sweep's best (tiny:llama LoRA), 30x (tiny:qwen2 full FT from random init),
   4.6x (SmolLM2-135M LoRA), while the range test's suggestion lay within 1.2-3.5x of the sweep's
   best on all four tasks of benchmarks/lr_find_quality.py. Weighting the recipe in only pulled the
   answer low: with it, the answer lost to the range test alone on both tasks where it combined
   (SmolLM2 LoRA eval loss 0.92 vs 0.64, tiny:llama LoRA +0.016). The recipe is shown beside it.
4. **recipe + lr-find** — new weights on a model of 1B or more, where the recipe is inside its
   published range: precision weighting in ln(lr), the product of two log-normal beliefs, whose
   mean is the average of the two logs weighted by 1/sigma² and whose sigma is 1/sqrt(sum of the
   weights). The sharper source pulls harder; both stay visible. When the two disagree by more than
   2 combined standard deviations (|z| > 2), the answer is the range test's alone (source
   **lr-find**): it measured this model on this data. (Not benchmarked: a CPU cannot train a 1B
   model several times.) In every weighting the range test's sigma is floored at ``FIND_FLOOR``,
   so a sharp-looking curve cannot silence the prior.
5. **recipe** — advise's rule alone (no measurement, no study, or a range test that found no
   descent: `lr_find_estimate` marks it not informative and it is shown but not used).

How wide each band is (see `recipe_estimate` and `lr_find_estimate`) is what makes the weighting
mean something; both are derived from stated sources of error, not tuned to a benchmark.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "SOURCES",
    "LrAnswer",
    "LrEstimate",
    "answer_learning_rate",
    "combine",
    "describe_answer",
    "lr_find_estimate",
    "recipe_estimate",
    "source_label",
]

# what an answer's source can be; "recipe+lr-find" is the precision-weighted combination
SOURCES = ("recipe", "recipe+lr-find", "lr-find", "study")
_LABELS = {
    "recipe": ("recipe", "推荐规则"),
    "recipe+lr-find": ("recipe + lr-find", "推荐规则 + 学习率范围测试"),
    "lr-find": ("lr-find", "学习率范围测试"),
    "study": ("study", "超参搜索"),
}
# The best learning rate of one recipe moves about 3x either way from one dataset to the next (the
# recipes' own bands span 2-3x, and the sweeps in docs/benchmarks.md found flat optima ~3x wide): the
# prior is never narrower than that, whatever the published band says.
DATA_SPREAD = math.log(3.0)
# A range test reads a ramp over a noisy training loss: never trusted to better than ~1.4x (1 sigma).
FIND_FLOOR = math.log(2.0) / 2
CONFLICT_Z = 2.0  # beyond this many combined standard deviations the two sources disagree
MIN_DROP = 0.02  # a range test whose smoothed loss fell less than 2% found no descent
MIN_POSITION = 0.1  # ... nor one whose minimum lies in the first tenth of the ramp (in log lr)


def _sig(value: float) -> float:
    """Two significant digits: learning rates are not known more precisely than that."""
    return float(f"{value:.2g}")


@dataclass(frozen=True)
class LrEstimate:
    """One source's learning rate and its band (about ±2 sigma of ln(lr)), with a short note."""

    source: str
    value: float
    low: float
    high: float
    en: str = ""
    zh: str = ""
    informative: bool = True  # False: shown, but not used (a range test that found no descent)
    # a recipe's: carried below its published 1B-70B models / for a run that moves pretrained weights
    # (module docstring, sources 2 and 3)
    extrapolated: bool = False
    moves_pretrained: bool = False

    @property
    def sigma(self) -> float:
        """Standard deviation of ln(lr): a quarter of the band's width in ln."""
        return max(1e-9, (math.log(self.high) - math.log(self.low)) / 4)

    def note(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


def recipe_estimate(
    lr: float,
    *,
    band_low: float,
    band_high: float,
    size_factor: float,
    batch_ratio: float,
    moves_pretrained: bool = False,
) -> LrEstimate:
    """The recipe prior: ``lr`` (advise's rule) with a band from three independent sources of error.

    Half-widths in ln(lr), added in quadrature (independent errors) and read as 2 sigma:
    - the recipe band itself, at least ``DATA_SPREAD`` (ln 3): ln(high/low)/2 of the published band,
      but a dataset moves the optimum ~3x whatever the band;
    - the model-size extrapolation: half of ln(``size_factor``) (the GPT-3 n^-0.35 fit is a
      pre-training fit carried to fine-tuning; half of its reach is taken as unknown);
    - the batch rule: |ln(``batch_ratio``)|/2, the gap between the square-root (Adam) and linear
      (SGD) scaling rules for a batch ``batch_ratio`` times the recipe's — the literature's own
      disagreement about how far a learning rate moves with the batch.

    ``moves_pretrained``: the run fine-tunes pretrained weights in place (full or freeze), which
    decides how a range test is combined with this prior.
    """
    if lr <= 0 or band_low <= 0 or band_high < band_low or size_factor < 1 or batch_ratio <= 0:
        raise ValueError(
            "recipe_estimate needs lr > 0, 0 < band_low <= band_high, size_factor >= 1, batch_ratio > 0"
        )
    parts = {
        "band": max(math.log(band_high / band_low) / 2, DATA_SPREAD),
        "size": math.log(size_factor) / 2,
        "batch": abs(math.log(batch_ratio)) / 2,
    }
    half = math.sqrt(sum(v * v for v in parts.values()))
    en = (
        f"band x/{math.exp(half):.1f} (~2 sigma in log: recipe spread x{math.exp(parts['band']):.1f}, "
        f"size extrapolation x{math.exp(parts['size']):.1f}, sqrt-vs-linear batch rule x{math.exp(parts['batch']):.1f})"
    )
    zh = (
        f"区间 ×/÷{math.exp(half):.1f}（对数尺度约 2 个标准差：规则本身的离散 ×{math.exp(parts['band']):.1f}、"
        f"模型大小外推 ×{math.exp(parts['size']):.1f}、批大小平方根与线性规则之差 ×{math.exp(parts['batch']):.1f}）"
    )
    return LrEstimate(
        "recipe",
        lr,
        _sig(lr / math.exp(half)),
        _sig(lr * math.exp(half)),
        en,
        zh,
        extrapolated=size_factor > 1,
        moves_pretrained=moves_pretrained,
    )


def lr_find_estimate(
    suggestion: float, steepest: float, minimum: float, *, drop: float = 1.0, position: float = 0.5
) -> LrEstimate:
    """The range test's estimate: its suggestion, with sigma read off its own curve.

    The suggestion is the middle (in log) of the descending stretch from the steepest descent to the
    loss minimum; the stretch's half-width in ln(lr) is taken as ONE standard deviation (floored at
    ``FIND_FLOOR``), because in benchmarks/lr_find_quality.py the sweep-best learning rate lay about
    one half-width from the suggestion (0.8-1.1 half-widths on three of four tasks, 0.1 on the fourth). The band shown
    is ±2 sigma like the others, so it is wider than the stretch.

    A curve that never descended says nothing about the learning rate: when the smoothed loss fell
    by less than ``MIN_DROP`` of its start (``drop``) or its minimum sits in the first
    ``MIN_POSITION`` of the ramp in log(lr) (``position``; a ramp too short or too noisy), the
    estimate is marked not informative — shown, never used.
    """
    if min(suggestion, steepest, minimum) <= 0:
        raise ValueError("learning rates must be positive")
    sigma = max(abs(math.log(minimum / steepest)) / 2, FIND_FLOOR)
    informative = drop >= MIN_DROP and position >= MIN_POSITION
    if informative:
        en = f"descending stretch {steepest:.1e}-{minimum:.1e} of the range test"
        zh = f"范围测试中损失下降段 {steepest:.1e}-{minimum:.1e}"
    else:
        en = f"the range test found no descent (loss fell {100 * drop:.1f}%, minimum at {100 * position:.0f}% of the ramp): not used"
        zh = (
            f"范围测试未见损失下降（下降 {100 * drop:.1f}%，最小值位于区间 {100 * position:.0f}% 处）：不采用"
        )
    return LrEstimate(
        "lr-find",
        suggestion,
        _sig(suggestion * math.exp(-2 * sigma)),
        _sig(suggestion * math.exp(2 * sigma)),
        en,
        zh,
        informative,
    )


def combine(prior: LrEstimate, measured: LrEstimate, *, override: bool = True) -> tuple[LrEstimate, float]:
    """(the answer from ``prior`` and ``measured``, z): precision-weighted in ln(lr), or, with
    ``override``, the measurement alone when |z| > ``CONFLICT_Z`` (see the module docstring). z is the
    distance between the two logs in combined standard deviations."""
    lp, lm = math.log(prior.value), math.log(measured.value)
    wp, wm = 1 / prior.sigma**2, 1 / measured.sigma**2
    z = (lm - lp) / math.sqrt(prior.sigma**2 + measured.sigma**2)
    if override and abs(z) > CONFLICT_Z:
        return LrEstimate("lr-find", measured.value, measured.low, measured.high), z
    mean = (wp * lp + wm * lm) / (wp + wm)
    sigma = 1 / math.sqrt(wp + wm)
    value = _sig(math.exp(mean))
    return (
        LrEstimate(
            "recipe+lr-find", value, _sig(math.exp(mean - 2 * sigma)), _sig(math.exp(mean + 2 * sigma))
        ),
        z,
    )


@dataclass(frozen=True)
class LrAnswer:
    """The learning rate to use, where it came from, every source next to it, and why."""

    value: float
    source: str
    low: float
    high: float
    recipe: LrEstimate
    lr_find: LrEstimate | None = None
    study: LrEstimate | None = None
    en: str = ""
    zh: str = ""

    def why(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def answer_learning_rate(
    recipe: LrEstimate, lr_find: LrEstimate | None = None, study: LrEstimate | None = None
) -> LrAnswer:
    """The one answer from the sources given (precedence in the module docstring)."""
    if study is not None:
        en = f"a study trained this config to the end and judged it on held-out data: its best learning rate overrides the others ({study.en})"
        zh = f"超参搜索把本配置训练到结束并在验证集上评估：其最佳学习率优先于其他来源（{study.zh}）"
        chosen = study
    elif lr_find is not None and not lr_find.informative:
        chosen, en, zh = recipe, f"recipe kept: {lr_find.en}", f"保留推荐规则：{lr_find.zh}"
    elif lr_find is not None and recipe.moves_pretrained:
        chosen, z = combine(recipe, lr_find, override=False)
        en = (
            f"full fine-tuning moves pretrained weights: the range test ({lr_find.value:.2g}) overshoots, as "
            f"it cannot see forgetting over a whole run, the recipe ({recipe.value:.2g}) runs low on small "
            f"models; weighted by their certainty in log space, between them ({abs(z):.1f} standard deviations apart)"
        )
        zh = (
            f"全参微调会改动预训练权重：范围测试（{lr_find.value:.2g}）看不到整段训练中的遗忘，往往偏高；"
            f"推荐规则（{recipe.value:.2g}）在小模型上偏低；按各自确定性在对数尺度上加权，取两者之间（相差 {abs(z):.1f} 个标准差）"
        )
    elif lr_find is not None and recipe.extrapolated:
        chosen = lr_find
        en = (
            "measured on this model: the recipe is extrapolated from 1B-70B models and sat 4-30x below "
            "the trained-best learning rate on every sub-1B benchmark task, so it is shown, not mixed in"
        )
        zh = "以本模型实测为准：推荐规则由 1B-70B 模型外推而来，在所有小于 1B 的基准任务上都比训练得到的最佳学习率低 4-30 倍，因此仅作参考、不参与加权"
    elif lr_find is not None:
        chosen, z = combine(recipe, lr_find)
        if chosen.source == "lr-find":
            en = (
                f"the range test and the recipe disagree by {abs(z):.1f} standard deviations: the recipe's "
                "published runs do not describe this model, so the measurement is used"
            )
            zh = f"范围测试与推荐规则相差 {abs(z):.1f} 个标准差：规则依据的公开训练不适用于该模型，采用实测值"
        else:
            en = (
                f"recipe and range test agree ({abs(z):.1f} standard deviations apart): "
                "weighted by their certainty in log space"
            )
            zh = f"推荐规则与范围测试一致（相差 {abs(z):.1f} 个标准差）：按各自确定性在对数尺度上加权"
    elif recipe.extrapolated:
        chosen = recipe
        en, zh = (
            "recipe only, extrapolated below the 1B-70B models it comes from (on small models it has run "
            "low): `tunelab advise --measure` measures this model with the range test",
            "仅推荐规则，由 1B-70B 模型外推到更小的模型（在小模型上往往偏低）：`tunelab advise --measure` 用范围测试实测本模型",
        )
    else:
        chosen = recipe
        en, zh = (
            "recipe only: `tunelab advise --measure` adds the range test",
            "仅推荐规则：`tunelab advise --measure` 可加入范围测试",
        )
    return LrAnswer(chosen.value, chosen.source, chosen.low, chosen.high, recipe, lr_find, study, en, zh)


def source_label(source: str, lang: str) -> str:
    """The source's name in ``lang`` (recipe / recipe + lr-find / lr-find / study)."""
    en, zh = _LABELS[source]
    return zh if lang == "zh" else en


def _fmt(estimate: LrEstimate | None, source: str, lang: str, missing: tuple[str, str] = ("", "")) -> str:
    name = source_label(source, lang)
    if estimate is None:
        return f"{name} {missing[1] if lang == 'zh' else missing[0]}"
    unused = "" if estimate.informative else ("，未采用" if lang == "zh" else ", not used")
    return f"{name} {estimate.value:.2g} ({estimate.low:.2g}-{estimate.high:.2g}{unused})"


def describe_answer(answer: LrAnswer, lang: str = "en") -> str:
    """One line: the answer and its source first, then every source next to it, then why."""
    zh = lang == "zh"
    head = (
        f"{answer.value:.2g}，来源：{source_label(answer.source, lang)}"
        if zh
        else f"{answer.value:.2g}, source: {source_label(answer.source, lang)}"
    )
    parts = [
        _fmt(answer.recipe, "recipe", lang),
        _fmt(answer.lr_find, "lr-find", lang, ("not run", "未运行")),
        _fmt(answer.study, "study", lang, ("none found", "未找到")),
    ]
    sep = "；" if zh else "; "
    return head + ("（" if zh else " (") + sep.join(parts) + ("）" if zh else ")") + sep + answer.why(lang)
