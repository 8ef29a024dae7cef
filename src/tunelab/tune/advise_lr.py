"""advise's learning rate: the recipe rule with its band, then the range test and a study on top.

`recipe_learning_rate` is the rule (a published band for the task and method, a position in it by
model size, a factor for models under 1B, the batch scaling rule) and returns the value, the reason
and the prior of `tunelab.tune.lr_answer`. `settle_learning_rate` then asks the other two sources —
the LR range test when ``measure`` is set, a study of this config when one exists — and writes the
one answer, with its source and every other source, into the advice.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.config import RunConfig
from tunelab.tune import recipes
from tunelab.tune.lr_answer import (
    LrAnswer,
    LrEstimate,
    answer_learning_rate,
    describe_answer,
    lr_find_estimate,
    recipe_estimate,
)
from tunelab.tune.scaling import lr_scaling_rule, scale_learning_rate
from tunelab.tune.shape import fmt_params

if TYPE_CHECKING:
    from tunelab.tune.advise import Advice
    from tunelab.tune.lr_find import LRFindResult

__all__ = [
    "advise_learning_rate",
    "estimate_from_lr_find",
    "is_random_init",
    "lr_find_answer",
    "recipe_learning_rate",
    "recipe_prior",
    "settle_learning_rate",
    "study_answer",
]


def recipe_learning_rate(
    task: str, method: str, n_params: float, batch: int, optim: str, *, from_scratch: bool = False
) -> tuple[LrEstimate, str, str]:
    """(the recipe prior, its reason in English, in Chinese) for an effective batch of ``batch``;
    ``from_scratch``: the model's weights are random (a ``tiny:`` preset), so full fine-tuning of it
    trains new weights rather than moving pretrained ones."""
    band = recipes.lr_range(task, method)
    size = fmt_params(n_params)
    position = recipes.position_in_band(n_params)
    lr = band.high * (band.low / band.high) ** position
    en = [
        f"{method} {task} on a {size} model: {band.low:.0e}-{band.high:.0e} at batch {band.ref_batch} ({band.source}); {lr:.2g} for this size"
    ]
    zh = [
        f"{size} 模型上做 {task}（{method}）：批大小 {band.ref_batch} 时 {band.low:.0e}-{band.high:.0e}（{band.source}）；按模型大小取 {lr:.2g}"
    ]
    factor = recipes.model_size_factor(n_params)
    if factor > 1:
        lr *= factor
        en.append(f"x{factor:.2g} for a model under 1B (smaller models take larger steps, GPT-3 Table 2.1)")
        zh.append(f"小于 1B 的模型乘以 {factor:.2g}（模型越小步长越大，GPT-3 表 2.1）")
    if method != "lora" and n_params >= recipes.FULL_FT_LARGE_PARAMS and lr > recipes.FULL_FT_LARGE_CAP:
        lr = recipes.FULL_FT_LARGE_CAP
        en.append("capped at 1e-4 (full fine-tuning of a 6B+ model)")
        zh.append("上限 1e-4（6B 以上模型全参微调）")
    if batch != band.ref_batch:
        rule = lr_scaling_rule(optim)
        scaled = scale_learning_rate(lr, band.ref_batch, batch, optim)
        how_en = f"sqrt({batch}/{band.ref_batch})" if rule == "sqrt" else f"{batch}/{band.ref_batch}"
        en.append(
            f"x{scaled / lr:.2f} = {how_en} for effective batch {batch} ({'square-root rule for Adam-family' if rule == 'sqrt' else 'linear rule for SGD'})"
        )
        zh.append(
            f"有效批大小 {batch}：乘以 {scaled / lr:.2f} = {how_en}（{'Adam 类优化器用平方根规则' if rule == 'sqrt' else 'SGD 用线性规则'}）"
        )
        lr = scaled
    prior = recipe_estimate(
        float(f"{lr:.2g}"),  # two significant digits: learning rates are not known more precisely
        band_low=band.low,
        band_high=band.high,
        size_factor=factor,
        batch_ratio=batch / band.ref_batch,
        moves_pretrained=method in ("full", "freeze") and not from_scratch,
    )
    en.append(prior.en)
    zh.append(prior.zh)
    return prior, "; ".join(en), "；".join(zh)


def advise_learning_rate(
    advice: Advice, method: str, n_params: float, batch: int, optim: str, *, from_scratch: bool = False
) -> float:
    """Add the recipe's learning rate to ``advice`` (source: recipe) and return it."""
    prior, en, zh = recipe_learning_rate(
        advice.task, method, n_params, batch, optim, from_scratch=from_scratch
    )
    advice.rule_lr = (en, zh)
    _write(advice, answer_learning_rate(prior))
    return prior.value


def _write(advice: Advice, answer: LrAnswer) -> None:
    """The learning_rate row: the answer and its sources first, the recipe's own reasoning after."""
    advice.lr = answer
    rule_en, rule_zh = advice.rule_lr
    advice.put(
        "learning_rate",
        answer.value,
        f"{describe_answer(answer, 'en')} | recipe rule: {rule_en}",
        f"{describe_answer(answer, 'zh')} | 推荐规则：{rule_zh}",
    )


def recipe_prior(config: RunConfig, *, task: str | None = None, world_size: int = 1) -> LrEstimate:
    """The recipe prior for ``config`` as it stands (its own method, optimizer and effective batch):
    what `tunelab lr-find` and the study summaries show next to their own learning rate."""
    from tunelab.tune.estimate import model_shape_for

    t = config.training
    batch = t.per_device_train_batch_size * t.gradient_accumulation_steps * world_size
    task = task or recipes.task_for_stage(config.finetuning.stage)
    method = config.finetuning.finetuning_type
    n_params = model_shape_for(config).n_params
    return recipe_learning_rate(task, method, n_params, batch, t.optim, from_scratch=is_random_init(config))[
        0
    ]


def is_random_init(config: RunConfig) -> bool:
    """Whether the model's weights are random (a ``tiny:`` preset): nothing pretrained to move."""
    from tunelab.model.resolve import is_tiny_name

    return is_tiny_name(config.model.model_name_or_path)


def estimate_from_lr_find(result: LRFindResult) -> LrEstimate:
    """The range test's `LrEstimate` (see `lr_answer.lr_find_estimate`)."""
    import math

    s, curve, lrs = result.suggestions, result.smoothed, result.lrs
    drop = (curve[0] - min(curve)) / abs(curve[0]) if curve and curve[0] else 0.0
    span = math.log(lrs[-1] / lrs[0]) if len(lrs) > 1 else 0.0
    position = math.log(s["minimum"] / lrs[0]) / span if span > 0 else 0.0
    return lr_find_estimate(result.suggestion, s["steepest"], s["minimum"], drop=drop, position=position)


def settle_learning_rate(
    advice: Advice,
    config: RunConfig,
    *,
    measure: bool = False,
    measure_steps: int = 100,
    lr_dir: str | Path | None = None,
    config_path: str | Path | None = None,
    study: str | Path | None = None,
    console: Any = None,
) -> LrAnswer:
    """Ask the range test (``measure``) and a study of ``config`` (``study``, or one found beside the
    config's runs), then write the one answer into ``advice``.

    The range test runs on ``config`` with the advised values applied (batch, precision, cutoff), so
    its suggestion belongs to the same effective batch as the recipe prior it is combined with; its
    plot and JSON go to ``lr_dir`` (default runs/lr-find-<time>).
    """
    from tunelab.tune.lr_study import find_study, study_estimate

    measured = None
    if measure:
        from tunelab.tune.advise import apply_updates
        from tunelab.tune.lr_find import lr_find

        candidate = apply_updates(config, advice.updates())
        result = lr_find(candidate, num_steps=measure_steps, output_dir=lr_dir, console=console)
        measured = estimate_from_lr_find(result)
    found = find_study(config, config_path=config_path, study=study)
    from_study = study_estimate(found) if found is not None else None
    answer = answer_learning_rate(advice.lr.recipe, measured, from_study)
    _write(advice, answer)
    return answer


def lr_find_answer(
    config: RunConfig, result: LRFindResult, *, config_path: str | Path | None = None
) -> LrAnswer:
    """What `tunelab lr-find` shows next to its suggestion: the recipe prior for the same config and
    effective batch, their combination, and a study of the config when one exists."""
    from tunelab.tune.lr_study import find_study, study_estimate

    found = find_study(config, config_path=config_path)
    study = study_estimate(found) if found is not None else None
    return answer_learning_rate(recipe_prior(config), estimate_from_lr_find(result), study)


def study_answer(config: RunConfig, study_dir: str | Path) -> LrAnswer | None:
    """What a sweep/tune summary shows: the study's best learning rate (source: study) with the
    recipe prior of its base config next to it; None when the study did not search learning_rate."""
    from tunelab.tune.lr_study import study_estimate

    study = study_estimate(study_dir)
    if study is None:
        return None
    return answer_learning_rate(recipe_prior(config), None, study)
