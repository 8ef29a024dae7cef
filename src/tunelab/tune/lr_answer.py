"""One learning-rate answer from up to three sources: the recipe, the LR range test, and a study.

Each source gives an `LrEstimate`: a learning rate and a band [low, high] in log space, read as
about ±2 standard deviations of ln(lr) (a ~95% band). The answer is decided in this order:

1. **study** — when a sweep or tune study of this config searched ``learning_rate``, its best
   trial's value wins: those trials trained the config to the end and were judged on held-out data,
   which is what both other sources only predict.
2. **recipe + lr-find** — when the range test ran (`tunelab advise --measure`), its suggestion and
   the recipe prior are combined by precision weighting in ln(lr): the product of two log-normal
   beliefs, whose mean is the average of the two logs weighted by 1/sigma² and whose sigma is
   1/sqrt(sum of the weights). The sharper source pulls harder; both stay visible.
   When the two disagree by more than 2 combined standard deviations (|z| > 2), one of them is
   wrong, and it is the recipe: its bands come from published runs of pretrained 1B-70B models and
   reach this model only through extrapolation (size factor, batch rule), while the range test
   measured this model on this data. The answer is then the range test's alone (source
   **lr-find**). The combination is deliberately *not* clipped to the prior's band: in
   docs/benchmarks.md the recipe sat 30x below the sweep-best learning rate for a randomly
   initialised tiny model (tiny:qwen2 full fine-tuning: advise 1.8e-4, sweep best 5.5e-3), exactly
   the case where a measurement must be allowed to overrule it. What is clipped is the range test's
   own certainty: its sigma never falls below ``FIND_FLOOR``, so a sharp-looking curve cannot
   silence the prior.
3. **recipe** — advise's rule alone (no measurement, no study, or a range test that found no
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

    @property
    def sigma(self) -> float:
        """Standard deviation of ln(lr): a quarter of the band's width in ln."""
        return max(1e-9, (math.log(self.high) - math.log(self.low)) / 4)

    def note(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


def recipe_estimate(
    lr: float, *, band_low: float, band_high: float, size_factor: float, batch_ratio: float
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
    return LrEstimate("recipe", lr, _sig(lr / math.exp(half)), _sig(lr * math.exp(half)), en, zh)


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


def combine(prior: LrEstimate, measured: LrEstimate) -> tuple[LrEstimate, float]:
    """(the answer from ``prior`` and ``measured``, z): precision-weighted in ln(lr), or the
    measurement alone when |z| > ``CONFLICT_Z`` (see the module docstring). z is the distance between
    the two logs in combined standard deviations."""
    lp, lm = math.log(prior.value), math.log(measured.value)
    wp, wm = 1 / prior.sigma**2, 1 / measured.sigma**2
    z = (lm - lp) / math.sqrt(prior.sigma**2 + measured.sigma**2)
    if abs(z) > CONFLICT_Z:
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
