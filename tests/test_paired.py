"""The paired analysis behind ▼, ≈ and every interval of Δ (pytest_lvlmbench/metrics/paired.py):
worked examples of each rule. Their sizes and powers are simulated in test_statistics_simulated.py."""

import math

import numpy as np
import pytest

from pytest_lvlmbench.metrics import bootstrap_weights, ratio_stats, share_stats
from pytest_lvlmbench.metrics.paired import (MIN_CHANGED_CLUSTERS, PairedComparison, compare, paired_design_effect,
                                             satterthwaite_df, share_design_effect, share_interval, student_t_cdf,
                                             student_t_quantile, swap_permutation_p, tango_z, wilson_interval)


def restricted_mle_by_grid(broken, fixed, n, theta):
    """The fixed share maximising the multinomial likelihood under broken − fixed share = theta."""
    p = np.linspace(max(0.0, -theta) + 1e-9, (1 - theta) / 2 - 1e-9, 400_001)
    loglik = (broken * np.log(np.maximum(p + theta, 1e-300)) + fixed * np.log(p)
              + (n - broken - fixed) * np.log(np.maximum(1 - 2 * p - theta, 1e-300)))
    return p[np.argmax(loglik)]


@pytest.mark.parametrize("broken, fixed, n, theta", [(10, 5, 100, 0.02), (3, 1, 50, 0.05), (5, 10, 100, -0.03)])
def test_tango_uses_the_restricted_maximum_likelihood_of_the_fixed_share(broken, fixed, n, theta):
    p = restricted_mle_by_grid(broken, fixed, n, theta)
    expected = (broken - fixed - n * theta) / math.sqrt(n * (2 * p + theta - theta ** 2)) if theta >= 0 else None
    if expected is not None:
        assert tango_z(broken, fixed, n, theta) == pytest.approx(expected, abs=1e-5)
    assert tango_z(broken, fixed, n, theta) == pytest.approx(-tango_z(fixed, broken, n, -theta))


def test_tango_worked_example_and_mcnemar_at_zero():
    assert tango_z(10, 5, 100, 0.02) == pytest.approx(0.78488, abs=1e-5)      # p̃ = 0.06325
    assert tango_z(10, 5, 100, 0.0) == pytest.approx(5 / math.sqrt(15))       # McNemar's (b − c) / √(b + c)
    assert tango_z(0, 0, 500, 0.02) == pytest.approx(-math.sqrt(500 * 0.02 / 0.98))


def shares(before, after):
    return share_stats(np.asarray(before, float)), share_stats(np.asarray(after, float))


def run(before, after, clusters=None, margin=0.02, higher_better=True):
    clusters = list(range(len(before))) if clusters is None else clusters
    base, setting = shares(before, after)
    return compare(base, setting, higher_better, margin, clusters, bootstrap_weights(clusters, 200, seed=0))


def test_unchanged_answers_read_safe_only_with_enough_items():
    # 0 broken of n: Z = −√(n δ / (1 − δ)); one-sided 0.025 needs n ≥ 189 at δ = 0.02
    assert run([1] * 20, [1] * 20).p_noninferior == pytest.approx(0.2615, abs=1e-4)
    assert run([1] * 188, [1] * 188).p_noninferior > 0.025 > run([1] * 189, [1] * 189).p_noninferior


def test_churn_that_cancels_is_not_counted_against_a_setting():
    """25 broken and 25 fixed of 1,000: worsening 0, safe at δ = 0.02 (the old broken-share test
    called it unsafe at any n, since 2.5% broken ≥ δ)."""
    before = [1] * 25 + [0] * 25 + [1] * 950
    after = [0] * 25 + [1] * 25 + [1] * 950
    found = run(before, after)
    assert found.worsening == 0.0 and found.method == "tango"
    assert found.p_noninferior == pytest.approx(0.00384, abs=1e-5) and found.p_change == 1.0
    assert found.low < 0 < found.high < 0.02


def test_the_interval_inverts_the_same_test_that_gives_the_marks():
    rng = np.random.default_rng(0)
    for _ in range(40):
        n = int(rng.integers(50, 600))
        before = (rng.random(n) < 0.9).astype(float)
        after = np.where(rng.random(n) < 0.05, 1 - before, before)
        found = run(before, after)
        assert (found.p_noninferior < 0.025) == (found.high < 0.02)
        assert (found.p_change < 0.05) == (found.low > 0 or found.high < 0)
        assert found.low <= found.worsening <= found.high


def test_a_lower_is_better_share_counts_newly_flagged_items_as_broken():
    found = run([0] * 30 + [0] * 470, [1] * 30 + [0] * 470, higher_better=False)   # 30 newly toxic of 500
    assert found.worsening == pytest.approx(0.06) and found.p_change < 0.001 and found.p_noninferior > 0.9


def test_breaks_concentrated_in_few_images_weigh_as_few_units():
    """POPE-like: 84 images x 6 questions. 12 broken answers in 2 images are 2 events, not 12."""
    clusters = [i // 6 for i in range(504)]
    before = [1] * 504
    spread_out = [0 if i % 42 == 0 else 1 for i in range(504)]   # 12 breaks, 12 images
    together = [0] * 12 + [1] * 492                               # 12 breaks, 2 images
    alone, lumped = run(before, spread_out, clusters), run(before, together, clusters)
    assert alone.design_effect == pytest.approx(1.0) and lumped.design_effect > 4
    assert lumped.p_change > alone.p_change and lumped.high > alone.high
    assert lumped.df < 3 and lumped.changed_clusters == 2


def test_design_effects_are_one_for_independent_items_and_worst_case_at_a_share_of_one():
    singletons = np.arange(10)
    assert paired_design_effect(np.ones(10), np.zeros(10), np.ones(10)) == 1.0
    assert share_design_effect(np.ones(48), np.repeat(np.arange(8), 6)) == 6.0      # all right: assume the worst
    assert share_design_effect(np.r_[np.zeros(3), np.ones(7)], singletons) == 1.0


def test_wilson_interval_worked_examples():
    assert wilson_interval(0.0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)     # 0 of 10: the textbook value
    z, share, n = 1.959964, 0.95, 48
    centre, half = (share + z * z / (2 * n)) / (1 + z * z / n), z / (1 + z * z / n) * math.sqrt(
        share * (1 - share) / n + z * z / (4 * n * n))
    assert wilson_interval(share, n) == pytest.approx((centre - half, centre + half))
    low, high = share_interval(share_stats([1.0] * 48), [i // 6 for i in range(48)])   # 8 images all right: n_eff 8
    assert (low, high) == pytest.approx(wilson_interval(1.0, 8)) and low == pytest.approx(8 / (8 + 1.959964 ** 2))


def test_a_share_of_groups_is_compared_over_its_groups():
    """Counterfactual consistency (all of a set's answers alike) is a share of sets: Tango over the sets,
    the interval over the sets."""
    from pytest_lvlmbench.metrics import all_correct_stats

    sets = [i // 4 for i in range(800)]                       # 200 sets of 4
    before = all_correct_stats([True] * 800, sets)
    after = all_correct_stats([i >= 8 for i in range(800)], sets)   # the first 2 sets break
    assert before.binary and after.value() == pytest.approx(198 / 200)
    found = compare(before, after, True, 0.02, sets, bootstrap_weights(sets, 100))
    assert found.method == "tango" and found.samples == 200 and found.worsening == pytest.approx(0.01)
    assert share_interval(before, sets) == pytest.approx(wilson_interval(1.0, 200))


def test_student_t_against_closed_forms():
    assert student_t_cdf(1.3, 1) == pytest.approx(0.5 + math.atan(1.3) / math.pi)              # Cauchy
    assert student_t_cdf(-0.7, 2) == pytest.approx(0.5 - 0.7 / (2 * math.sqrt(2 + 0.49)))
    assert student_t_quantile(0.975, 3) == pytest.approx(3.182446, abs=1e-5)
    assert student_t_quantile(0.975, math.inf) == pytest.approx(1.959964, abs=1e-6)
    assert satterthwaite_df(np.array([1.0, 1.0, 1.0, 0.0])) == pytest.approx(3.0)


def corpus(values):
    return ratio_stats(np.asarray(values, float), np.ones(len(values)))


def test_a_corpus_metric_needs_enough_changed_clusters_to_read_safe():
    base = np.linspace(0.5, 1.5, 500)
    weights = bootstrap_weights(range(500), 500, seed=0)
    unchanged = compare(corpus(base), corpus(base), True, 0.02, list(range(500)), weights)
    assert unchanged.p_noninferior == 1.0 and unchanged.changed_clusters == 0 and unchanged.p_change == 1.0
    few = base.copy()
    few[:MIN_CHANGED_CLUSTERS - 1] += 0.001
    assert compare(corpus(base), corpus(few), True, 0.02, list(range(500)), weights).p_noninferior == 1.0
    many = base + np.where(np.arange(500) % 5 == 0, 0.01, 0.0)   # 100 small gains
    found = compare(corpus(base), corpus(many), True, 0.02, list(range(500)), weights)
    assert found.method == "bootstrap" and found.worsening < 0 and found.p_noninferior == pytest.approx(1 / 501)


def test_swap_permutation_p_follows_the_plus_one_rule_and_keeps_clusters_whole():
    base = corpus(np.zeros(40))
    worse = corpus(np.r_[np.full(20, -1.0), np.zeros(20)])
    clusters = np.arange(40)
    assert swap_permutation_p(base, worse, clusters, 999, seed=0) == pytest.approx(1 / 1000)
    two_clusters = np.repeat([0, 1], 20)    # the same change, but only two independent units: p ≥ 1/2
    assert swap_permutation_p(base, worse, two_clusters, 999, seed=0) > 0.4
    assert swap_permutation_p(base, base, clusters, 999, seed=0) == 1.0


def test_a_shifted_corpus_metric_is_significant_and_noise_is_not():
    rng = np.random.default_rng(0)
    base = rng.normal(size=50)
    weights = bootstrap_weights(range(50), 999, seed=3)
    noisy = compare(corpus(base), corpus(base + rng.normal(size=50) + 0.01), True, 0.02, list(range(50)), weights)
    shifted = compare(corpus(base), corpus(base + rng.normal(scale=0.1, size=50) + 0.5), True, 0.02, list(range(50)),
                      weights)
    assert noisy.p_change > 0.2 and shifted.p_change == pytest.approx(1 / 1000)
    assert shifted.low < shifted.worsening < shifted.high < 0


def test_a_bootstrap_that_misses_its_estimate_is_recentred_not_collapsed():
    """MaxSkew-like statistics (a maximum) can have every resample on one side of the estimate; the
    interval is then the bootstrap spread moved to the estimate, never a single point."""
    from pytest_lvlmbench.metrics.paired import _BCa

    resampled = np.linspace(0.50, 0.55, 1000)
    bca = _BCa.of(resampled, 0.6, np.zeros(10))
    low, high = bca.quantile(0.025), bca.quantile(0.975)
    assert low < 0.6 < high and high - low == pytest.approx(0.95 * 0.05, rel=0.01)


def test_power_figures():
    unchanged = run([1] * 500, [1] * 500)
    assert unchanged.detectable(0.05) == pytest.approx(7.849 / (500 + 7.849), abs=1e-4)   # k² / (n + k²)
    assert unchanged.items_to_settle(500, 0.025, 0.05) is None or unchanged.p_noninferior < 0.025
    inconclusive = run([1] * 100, [1] * 100)             # safe-looking, too few items
    needed = inconclusive.items_to_settle(100, 0.025, 0.05)
    assert needed == math.ceil(100 * ((1.959964 + 0.841621) / math.sqrt(100 * 0.02 / 0.98)) ** 2)
    assert PairedComparison.from_dict(inconclusive.as_dict()) == inconclusive


def test_comparisons_refuse_unpaired_samples_and_a_zero_margin():
    base, setting = shares([1, 1, 0], [1, 0])
    with pytest.raises(ValueError, match="paired comparison over different samples: 3 before, 2 after"):
        compare(base, setting, True, 0.02, [0, 1, 2], np.ones((1, 3)))
    base, setting = shares([1, 1], [1, 0])
    with pytest.raises(ValueError, match=r"invalid margin=0"):
        compare(base, setting, True, 0, [0, 1], np.ones((1, 2)))
