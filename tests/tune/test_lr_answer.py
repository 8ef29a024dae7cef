"""The arithmetic of the one learning-rate answer: bands, precision weighting, conflicts, precedence."""

from __future__ import annotations

import math

import pytest

from tunelab.tune.lr_answer import (
    DATA_SPREAD,
    FIND_FLOOR,
    LrEstimate,
    answer_learning_rate,
    combine,
    describe_answer,
    lr_find_estimate,
    recipe_estimate,
)


def _half_width(e: LrEstimate) -> float:
    return math.log(e.high / e.low) / 2


def test_recipe_band_adds_its_three_errors_in_quadrature() -> None:
    # a 2x published band is narrower than a dataset's ~3x spread: the floor holds
    plain = recipe_estimate(2e-4, band_low=1e-4, band_high=2e-4, size_factor=1.0, batch_ratio=1.0)
    assert plain.value == 2e-4 and _half_width(plain) == pytest.approx(DATA_SPREAD, rel=0.03)
    assert plain.sigma == pytest.approx(DATA_SPREAD / 2, rel=0.03)  # the band is ±2 sigma
    # a 10x size extrapolation and half the recipe's batch widen it by ln(10)/2 and ln(2)/2
    tiny = recipe_estimate(1.4e-3, band_low=1e-4, band_high=2e-4, size_factor=10.0, batch_ratio=0.5)
    expected = math.sqrt(DATA_SPREAD**2 + (math.log(10) / 2) ** 2 + (math.log(2) / 2) ** 2)
    assert _half_width(tiny) == pytest.approx(expected, rel=0.03)
    assert tiny.low < 1.4e-3 < tiny.high and math.sqrt(tiny.low * tiny.high) == pytest.approx(
        1.4e-3, rel=0.05
    )
    # a batch twice the recipe's widens the band exactly as half of it does (the rules' gap is symmetric)
    double = recipe_estimate(1.4e-3, band_low=1e-4, band_high=2e-4, size_factor=10.0, batch_ratio=2.0)
    assert _half_width(double) == pytest.approx(_half_width(tiny), rel=0.03)
    with pytest.raises(ValueError):
        recipe_estimate(0.0, band_low=1e-4, band_high=2e-4, size_factor=1.0, batch_ratio=1.0)


def test_lr_find_sigma_is_half_its_descending_stretch_with_a_floor() -> None:
    wide = lr_find_estimate(1.7e-3, 5.6e-4, 5.5e-3)
    assert wide.sigma == pytest.approx(math.log(5.5e-3 / 5.6e-4) / 2, rel=0.03)
    sharp = lr_find_estimate(1e-3, 9.9e-4, 1.01e-3)  # a curve this sharp is still a noisy ramp
    assert sharp.sigma == pytest.approx(FIND_FLOOR, rel=0.05)
    assert wide.source == sharp.source == "lr-find"


def test_equal_certainty_gives_the_geometric_mean() -> None:
    a = LrEstimate("recipe", 1e-3, 1e-3 / 4, 4e-3)
    b = LrEstimate("lr-find", 4e-3, 1e-3, 1.6e-2)
    both, z = combine(a, b)
    assert both.source == "recipe+lr-find"
    assert both.value == pytest.approx(2e-3, rel=0.03)
    assert z == pytest.approx(math.log(4) / math.sqrt(2 * a.sigma**2))
    assert both.sigma < a.sigma  # two agreeing sources are surer than one


def test_the_sharper_source_pulls_harder() -> None:
    prior = LrEstimate("recipe", 1e-3, 1e-4, 1e-2)  # sigma ln(10)/2
    sharp = LrEstimate("lr-find", 3e-3, 1.5e-3, 6e-3)  # sigma ln(2)/2: weight 11x the prior's
    both, _ = combine(prior, sharp)
    wp, wm = 1 / prior.sigma**2, 1 / sharp.sigma**2
    expected = math.exp((wp * math.log(1e-3) + wm * math.log(3e-3)) / (wp + wm))
    assert both.value == pytest.approx(expected, rel=0.03)
    assert math.log(both.value / 1e-3) > 0.8 * math.log(3)  # close to the measurement


def test_a_measurement_far_outside_both_bands_replaces_the_prior() -> None:
    prior = LrEstimate("recipe", 1.8e-4, 2.6e-5, 1.2e-3)
    measured = LrEstimate("lr-find", 8.9e-3, 3.4e-3, 2.3e-2)
    answer, z = combine(prior, measured)
    assert z > 2 and answer.source == "lr-find" and answer.value == 8.9e-3
    below, z_below = combine(prior, LrEstimate("lr-find", 1e-6, 5e-7, 2e-6))
    assert z_below < -2 and below.value == 1e-6  # the rule is symmetric


def test_precedence_study_then_combination_then_recipe() -> None:
    recipe = LrEstimate("recipe", 1.4e-3, 2.7e-4, 7.2e-3)
    found = LrEstimate("lr-find", 2.5e-3, 6e-4, 1e-2)
    study = LrEstimate("study", 4e-3, 3e-3, 1e-2, "best of 3 completed trials in sweep-x")
    only = answer_learning_rate(recipe)
    assert (only.source, only.value, only.lr_find, only.study) == ("recipe", 1.4e-3, None, None)
    measured = answer_learning_rate(recipe, found)
    assert measured.source == "recipe+lr-find" and 1.4e-3 < measured.value < 2.5e-3
    assert measured.low < measured.value < measured.high
    won = answer_learning_rate(recipe, found, study)
    assert (won.source, won.value) == ("study", 4e-3) and won.lr_find == found and won.recipe == recipe


def test_description_names_the_source_and_every_other_source_in_both_languages() -> None:
    recipe = LrEstimate("recipe", 1.4e-3, 2.7e-4, 7.2e-3)
    answer = answer_learning_rate(recipe, LrEstimate("lr-find", 2.5e-3, 6e-4, 1e-2))
    en, zh = describe_answer(answer, "en"), describe_answer(answer, "zh")
    assert en.startswith(f"{answer.value:.2g}, source: recipe + lr-find")
    assert "recipe 0.0014 (0.00027-0.0072)" in en and "lr-find 0.0025" in en and "study none found" in en
    assert "来源：推荐规则 + 学习率范围测试" in zh and "超参搜索 未找到" in zh and "0.0014" in zh
    alone = describe_answer(answer_learning_rate(recipe), "en")
    assert "source: recipe" in alone and "lr-find not run" in alone and "--measure" in alone


def test_a_range_test_without_a_descent_is_shown_but_not_used() -> None:
    recipe = LrEstimate("recipe", 1.4e-3, 2.7e-4, 7.2e-3)
    flat = lr_find_estimate(1.5e-7, 1e-7, 1.6e-7, drop=0.004, position=0.02)  # minimum at the ramp's start
    assert not flat.informative and "no descent" in flat.en
    answer = answer_learning_rate(recipe, flat)
    assert (answer.source, answer.value) == ("recipe", 1.4e-3) and answer.lr_find == flat
    assert "lr-find 1.5e-07" in describe_answer(answer, "en") and "not used" in describe_answer(answer, "en")
    assert "未采用" in describe_answer(answer, "zh")
    assert lr_find_estimate(2e-3, 5e-4, 6e-3, drop=0.3, position=0.8).informative


def test_below_1b_the_measurement_is_the_answer_and_the_recipe_stays_beside_it() -> None:
    small = recipe_estimate(2.9e-4, band_low=1e-4, band_high=2e-4, size_factor=3.0, batch_ratio=0.25)
    large = recipe_estimate(2e-4, band_low=1e-4, band_high=2e-4, size_factor=1.0, batch_ratio=1.0)
    assert small.extrapolated and not large.extrapolated
    found = lr_find_estimate(4e-4, 2e-4, 8e-4)  # agrees with both priors within 2 sigma
    measured = answer_learning_rate(small, found)
    assert (measured.source, measured.value, measured.recipe) == ("lr-find", 4e-4, small)
    assert "extrapolated" in measured.en and "外推" in measured.zh
    assert answer_learning_rate(large, found).source == "recipe+lr-find"  # in range: still weighted
    # a range test without a descent still leaves the (extrapolated) recipe as the answer
    flat = lr_find_estimate(1.5e-7, 1e-7, 1.6e-7, drop=0.004, position=0.02)
    assert answer_learning_rate(small, flat).source == "recipe"
    alone = answer_learning_rate(small)
    assert alone.source == "recipe" and "--measure" in alone.en and "--measure" in alone.zh


def test_full_fine_tuning_of_pretrained_weights_lands_between_the_two_even_when_far_apart() -> None:
    # the MiniLM cls case: recipe 5.6e-5, range test 6.1e-4 (>2 sigma apart); the optimum lay between
    prior = recipe_estimate(
        5.6e-5, band_low=1e-5, band_high=3e-5, size_factor=3.8, batch_ratio=0.25, moves_pretrained=True
    )
    found = lr_find_estimate(6.1e-4, 4e-4, 9e-4)
    _, z = combine(prior, found)
    assert z > 2  # a conflict the new-weights rule would settle for the measurement
    answer = answer_learning_rate(prior, found)
    assert answer.source == "recipe+lr-find" and 5.6e-5 < answer.value < 6.1e-4
    wp, wm = 1 / prior.sigma**2, 1 / found.sigma**2
    expected = math.exp((wp * math.log(5.6e-5) + wm * math.log(6.1e-4)) / (wp + wm))
    assert answer.value == pytest.approx(expected, rel=0.03)
    assert "pretrained" in answer.en and "预训练" in answer.zh
