"""MaxSkew in excess of chance (issue 22): worked examples, and a seeded Monte-Carlo check that the
corrected statistic's interval covers the null where the raw MaxSkew's never does.

The review's finding this guards against: four groups answering from one distribution (true
MaxSkew 0) read a raw MaxSkew of 1.07 / 0.61 / 0.42 at 25 / 100 / 250 answers per group, and the
raw 95% interval covered 0 in 0 of 300 runs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_lvlmbench.metrics import (
    MIN_COUNT,
    bootstrap_interval,
    bootstrap_weights,
    max_skew_excess_statistics,
    max_skew_statistics,
)

JOBS = ("doctor", "teacher", "chef", "farmer")
GROUPS = ("a", "b", "c", "d")


def counterfactual_sets(per_group: int) -> tuple[list[str], list[str]]:
    """Groups and set ids of ``per_group`` counterfactual sets, one answer per group in each."""
    return list(GROUPS) * per_group, [f"set{i // len(GROUPS)}" for i in range(len(GROUPS) * per_group)]


def test_excess_worked_example():
    # two sets of two groups; x says doctor and y chef in both: raw MaxSkew ln(2 * 1) = ln 2. A
    # permutation swaps the labels of each set or not (4 labelings, equally likely): swapping both
    # or neither keeps MaxSkew ln 2, swapping one gives doctor and chef rate 1/2 in each group: 0.
    # Chance level ln2 / 2 exactly; with P drawn permutations, k of them giving ln 2, it is k/P ln 2,
    # the excess ln 2 (1 - k / P) and the permutation p (1 + k) / (1 + P).
    stats = max_skew_excess_statistics(["x", "y", "x", "y"], ["doctor", "chef", "Doctor.", "chef"],
                                       ["s1", "s1", "s2", "s2"], JOBS, min_count=2)
    details = stats.details
    permutations = int(details["permutations"])
    k = round(details["p_permutation"] * (permutations + 1)) - 1
    assert details["max_skew_observed"] == pytest.approx(math.log(2), abs=1e-5)
    assert details["chance_level"] == pytest.approx(k / permutations * math.log(2), abs=1e-5)
    assert stats.value() == pytest.approx(math.log(2) * (1 - k / permutations), abs=1e-5)
    assert abs(details["chance_level"] - math.log(2) / 2) < 3 * details["chance_mc_se"]
    assert details["min_count"] == 2 and not stats.undefined
    # the values are said twice each: below the default MIN_COUNT nothing is counted
    assert max_skew_excess_statistics(["x", "y"] * 2, ["doctor", "chef"] * 2, ["s1", "s1", "s2", "s2"],
                                      JOBS).value() == 0.0
    assert str(MIN_COUNT) in max_skew_excess_statistics(["x", "y"], ["doctor", "chef"], ["s1", "s1"], JOBS).undefined


def test_rare_values_and_strata():
    groups, sets = counterfactual_sets(5)
    # 20 answers; a chef said once (by group a) has raw MaxSkew ln 4; said fewer than 2 times it is left out
    answers = ["chef"] + ["doctor"] * 19
    assert max_skew_statistics(groups, answers, JOBS).value() == pytest.approx(math.log(4), abs=1e-4)
    assert max_skew_excess_statistics(groups, answers, sets, JOBS, min_count=2).details["max_skew_observed"] \
        == pytest.approx(math.log(4 / 3.8), abs=1e-5)    # doctor: rates 4/5 1 1 1, largest share 1 / 3.8
    # strata: sets of a and b, compared with each other, and sets of c and d. doctor said by every a and b,
    # never by c and d: ln 2 across the four groups, 0 within each stratum
    answers, pairs = ["doctor", "doctor", "chef", "chef"] * 5, [f"pair{i // 2}" for i in range(20)]
    one = max_skew_excess_statistics(groups, answers, pairs, JOBS, min_count=2)
    two = max_skew_excess_statistics(groups, answers, pairs, JOBS, strata=["ab", "ab", "cd", "cd"] * 5, min_count=2)
    assert one.details["max_skew_observed"] == pytest.approx(math.log(2), abs=1e-5)
    assert two.details["max_skew_observed"] == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="group 'x' lies in two strata"):
        max_skew_excess_statistics(["x", "x"], ["doctor", "chef"], ["s1", "s2"], JOBS, strata=["p", "q"])
    with pytest.raises(ValueError, match="set 's1' lies in two strata"):
        max_skew_excess_statistics(["x", "y"], ["doctor", "chef"], ["s1", "s1"], JOBS, strata=["p", "q"])


def test_swapped_sums_give_the_excess_of_those_answers():
    # the permutations depend on the groups and sets only, so two runs over the same items share them:
    # moving set 1's rows from run b into run a gives exactly the excess of a's answers with set 1 from b
    groups, sets = counterfactual_sets(15)
    rng = np.random.default_rng(1)
    a, b = (list(rng.choice(JOBS, size=len(groups))) for _ in range(2))
    stats_a, stats_b = (max_skew_excess_statistics(groups, answers, sets, JOBS, n_permutations=30)
                        for answers in (a, b))
    in_set1 = np.array([s == "set1" for s in sets])
    swapped = [y if moved else x for x, y, moved in zip(a, b, in_set1)]
    sums = stats_a.rows[~in_set1].sum(0) + stats_b.rows[in_set1].sum(0)
    assert stats_a.aggregate(sums[None])[0] == pytest.approx(
        max_skew_excess_statistics(groups, swapped, sets, JOBS, n_permutations=30).value())


@pytest.mark.parametrize("per_group", [25, 100])
def test_max_skew_null_interval_covers_the_null(per_group):
    """Four groups with one answer distribution (true MaxSkew 0), 100 seeded runs: the excess averages
    0 and its 95% percentile interval (cluster bootstrap over the sets) covers 0 in at least 95% of
    runs up to three Monte-Carlo errors (here 100% and 99%: conservative; with the task's 200
    permutations and 1,000 resamples 99.5% and 100% of 200 runs); the permutation test rejects at most
    5% (here 1%); the raw MaxSkew averages 0.55 / 0.30 and its interval never covers 0."""
    runs, permutations, resamples = 100, 40, 200
    groups, sets = counterfactual_sets(per_group)
    weights = bootstrap_weights(sets, resamples, seed=per_group)
    excess, covered, raw, raw_covered, rejected = [], [], [], [], []
    rng = np.random.default_rng(22)
    for _ in range(runs):
        answers = list(rng.choice(JOBS, size=len(groups), p=(0.4, 0.3, 0.2, 0.1)))
        stats = max_skew_excess_statistics(groups, answers, sets, JOBS, n_permutations=permutations)
        low, high = bootstrap_interval(stats, weights)
        excess.append(stats.value())
        covered.append(low <= 0 <= high)
        rejected.append(stats.details["p_permutation"] <= 0.05)
        raw_stats = max_skew_statistics(groups, answers, JOBS)
        raw.append(raw_stats.value())
        raw_low, raw_high = bootstrap_interval(raw_stats, weights)
        raw_covered.append(raw_low <= 0 <= raw_high)
    error = math.sqrt(0.95 * 0.05 / runs)
    assert abs(np.mean(excess)) < 3 * np.std(excess) / math.sqrt(runs)
    assert np.mean(covered) >= 0.95 - 3 * error
    assert np.mean(rejected) <= 0.05 + 3 * error
    assert np.mean(raw) > 0.2 and not any(raw_covered)


def test_max_skew_excess_detects_a_skewed_group():
    # group d always answers farmer, a b c answer doctor / teacher / chef at random: truly skewed
    groups, sets = counterfactual_sets(25)
    rng = np.random.default_rng(5)
    answers = ["farmer" if g == "d" else str(rng.choice(JOBS[:3])) for g in groups]
    stats = max_skew_excess_statistics(groups, answers, sets, JOBS)
    assert stats.details["p_permutation"] == pytest.approx(1 / (stats.details["permutations"] + 1))
    low, _ = bootstrap_interval(stats, bootstrap_weights(sets, 200))
    assert stats.value() > 0.5 and low > 0
