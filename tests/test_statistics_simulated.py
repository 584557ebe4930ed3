"""Monte-Carlo checks of the verdicts' error rates (issue 22), seeded.

A size is the share of simulated runs in which a test rejects a null that holds exactly (a setting
truly worse by the margin for ≈, truly unchanged for ▼); it is asserted to be at most the level plus
three Monte-Carlo standard errors, MCSE = √(α(1 − α) / runs), so a test at its level fails here about
once in 700 seeds and an anti-conservative one fails reliably. Where the old procedure was the
problem, the same runs show it breaking the bound. More runs and configurations:
benchmarks/perf/statistics_tables.py, which writes docs/statistics.md.
"""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest

from pytest_lvlmbench.analysis import frontier
from pytest_lvlmbench.analysis.interaction import interaction
from pytest_lvlmbench.metrics import bootstrap_interval, bootstrap_weights, mcnemar_p, share_stats
from pytest_lvlmbench.metrics.paired import PairedComparison, compare, share_interval
from pytest_lvlmbench.metrics.simulation import (PairedRuns, adaptive_search, clustered_share, interacting_settings,
                                                 paired_shares, scored_changes, skewed_changes)
from pytest_lvlmbench.analysis.noninferiority import ALPHA, DEFAULT_MARGIN
from pytest_lvlmbench.core.settings import Setting

MARGIN = DEFAULT_MARGIN
CHANGE_LEVEL = 0.05     # ▼/▲: two-sided
NORMAL = NormalDist()


def mcse(rate: float, runs: int) -> float:
    return math.sqrt(rate * (1 - rate) / runs)


def compared(run: PairedRuns, weights: np.ndarray) -> PairedComparison:
    return compare(share_stats(run.before), share_stats(run.after), True, MARGIN, run.clusters, weights)


@pytest.mark.parametrize("clusters, size, icc, fixed", [
    (500, 1, 0.0, 0.0), (500, 1, 0.0, 0.05),        # independent items, without and with 5% offsetting churn
    (84, 6, 0.3, 0.0), (84, 6, 0.3, 0.01),          # POPE-like: 6 questions per image, breaks clustered by image
    (334, 6, 0.3, 0.0), (334, 6, 0.3, 0.05),
])
def test_noninferiority_size_at_the_margin(clusters, size, icc, fixed):
    """A setting that breaks δ + f and fixes f (true worsening exactly δ) reads ≈ at most α of the time.
    (The old broken-share test read 0.12 / 0.14 here at break ICC 0.3, n = 504 / 2,004, α = 0.05.)"""
    runs = 2000
    rng = np.random.default_rng(22)
    weights = bootstrap_weights(np.repeat(np.arange(clusters), size), 100, seed=0)
    safe = [compared(paired_shares(rng, clusters, size, MARGIN + fixed, fixed, icc), weights).p_noninferior < ALPHA
            for _ in range(runs)]
    assert np.mean(safe) <= ALPHA + 3 * mcse(ALPHA, runs)


def tango_statistic(broken: np.ndarray, fixed: np.ndarray, n: int, margin: float) -> np.ndarray:
    """Tango (1998, Stat Med 17:891), written out: Z = (b − c − nδ) / √(n (2 q̃ + δ − δ²)), q̃ the restricted
    maximum-likelihood share of fixed items under H0 "worsening = δ", the root of
    2n q² + (−b − c + (2n − b + c) δ) q − c δ (1 − δ) = 0."""
    linear = -broken - fixed + (2 * n - broken + fixed) * margin
    constant = -fixed * margin * (1 - margin)
    fixed_share = (np.sqrt(linear ** 2 - 8 * n * constant) - linear) / (4 * n)
    return (broken - fixed - n * margin) / np.sqrt(n * (2 * fixed_share + margin - margin ** 2))


def log_factorials(n: int) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])


def test_churn_that_cancels_has_the_score_tests_power():
    """Zero net drop with 5% of 1,000 items broken and 5% fixed: ≈ as often as Tango's test says, whose
    power here is computed exactly over the trinomial of (broken, fixed) counts (0.506). The old test,
    "broken share ≥ δ" by an exact binomial at 0.05, never reads safe: 5% broken is above δ at any n."""
    n, churn, runs = 1000, 0.05, 2000
    counts = np.arange(n // 5)
    broken, fixed = np.meshgrid(counts, counts, indexing="ij")
    log_fact = log_factorials(n)
    probability = np.exp(log_fact[n] - log_fact[broken] - log_fact[fixed] - log_fact[n - broken - fixed]
                         + (broken + fixed) * math.log(churn) + (n - broken - fixed) * math.log(1 - 2 * churn))
    exact_power = float(np.sum(probability * (tango_statistic(broken, fixed, n, MARGIN) < NORMAL.inv_cdf(ALPHA))))

    log_pmf = log_fact[n] - log_fact[counts] - log_fact[n - counts] + counts * math.log(MARGIN) \
        + (n - counts) * math.log(1 - MARGIN)
    broken_share_p = np.cumsum(np.exp(log_pmf))       # P(Binomial(n, δ) ≤ b): the old test's p at b broken

    rng = np.random.default_rng(22)
    weights = bootstrap_weights(np.arange(n), 100, seed=0)
    simulated = [paired_shares(rng, n, 1, churn, churn) for _ in range(runs)]
    power = np.mean([compared(run, weights).p_noninferior < ALPHA for run in simulated])
    old_power = np.mean([broken_share_p[int(np.sum(run.before > run.after))] < 0.05 for run in simulated])
    assert exact_power == pytest.approx(0.506, abs=0.001)
    assert abs(power - exact_power) < 0.04
    assert old_power == 0.0


@pytest.mark.parametrize("direction_icc", [0.3, 0.6])
def test_worse_mark_size_when_changes_move_together_within_an_image(direction_icc):
    """No true change, 20% of answers change, and an image's changes lean the same way (84 images × 6
    questions): ▼/▲ at most 5% of the time. McNemar's test over items, which ignores the images, is
    not: 0.11 at direction ICC 0.6."""
    runs = 2000
    rng = np.random.default_rng(22)
    weights = bootstrap_weights(np.repeat(np.arange(84), 6), 100, seed=0)
    simulated = [skewed_changes(rng, 84, 6, 0.2, direction_icc) for _ in range(runs)]
    marked = [compared(run, weights).p_change < CHANGE_LEVEL for run in simulated]
    bound = CHANGE_LEVEL + 3 * mcse(CHANGE_LEVEL, runs)
    assert np.mean(marked) <= bound
    if direction_icc == 0.6:
        assert np.mean([mcnemar_p(run.before > 0.5, run.after > 0.5) < CHANGE_LEVEL for run in simulated]) > bound


def test_frontier_reports_a_truly_unsafe_setting_at_most_alpha_of_the_time():
    """Family error P(the reported cheapest setting is truly unsafe), worst case over which of 8/4/3/2 bits
    are truly safe (all 16 truths, monotone or not). A size-exact test: a setting truly at the margin
    passes with p ~ Uniform(0, 1), a truly safe one with a powerful test's p (power 0.98). The fixed
    sequence keeps the family error at α; the old 8 → 2 → bisect order gives a false pass a second
    chance, about 2α at "8 bits safe, 4/3/2 at the margin" (the review: 0.079 at α = 0.05)."""
    runs = 3000
    rng = np.random.default_rng(22)
    at_margin = rng.random((runs, len(frontier.BITS)))
    powerful = 1 - np.vectorize(NORMAL.cdf)(rng.normal(4.0, 1.0, (runs, len(frontier.BITS))))
    grid = [Setting.from_id("kv8-uniform")]
    error, old_error = {}, {}
    for truth in itertools.product((True, False), repeat=len(frontier.BITS)):
        truly_safe = dict(zip(frontier.BITS, truth))
        reported, old_reported = [], []
        for run in range(runs):
            p = {bits: (powerful if truly_safe[bits] else at_margin)[run, i] for i, bits in enumerate(frontier.BITS)}
            _, cheapest = frontier.search(grid, lambda s: frontier.Point(
                s.id, "kv", "kv{b}-uniform", s.kv.bits, s.kv.bits / 16, 0.0, 0.0, 0.0, p[s.kv.bits] < ALPHA, {}))
            point = cheapest["kv{b}-uniform"]
            reported.append(None if point is None else point.level)
            old_reported.append(adaptive_search(lambda bits: p[bits] < ALPHA))
        error[truth] = np.mean([bits is not None and not truly_safe[bits] for bits in reported])
        old_error[truth] = np.mean([bits is not None and not truly_safe[bits] for bits in old_reported])
    bound = ALPHA + 3 * mcse(ALPHA, runs)
    assert max(error.values()) <= bound
    assert old_error[True, False, False, False] > bound


def test_corpus_metric_noninferiority_size_with_rare_changes():
    """A corpus metric (per-item scores, the bootstrap path) truly worse by δ through 5% of 500 items
    changing by δ/0.05 ± δ/0.05: ≈ at most α of the time (the review: 0.089 for the old percentile
    bootstrap at n = 500 without re-drawn answers)."""
    runs, n = 1000, 500
    rng = np.random.default_rng(22)
    weights = bootstrap_weights(np.arange(n), 400, seed=0)
    found = [compared(scored_changes(rng, n, 1, 0.05, MARGIN, MARGIN), weights) for _ in range(runs)]
    assert {c.method for c in found} == {"bootstrap"}
    assert np.mean([c.p_noninferior < ALPHA for c in found]) <= ALPHA + 3 * mcse(ALPHA, runs)


def test_share_interval_covers_with_few_clusters_near_a_share_of_one():
    """8 images × 6 questions, accuracy 0.95, ICC 0.5: Wilson on n / design effect covers the true
    accuracy ≥ 90% of the time (0.95 here); the percentile cluster bootstrap, zero-width whenever every
    answer is right, about 0.63."""
    runs, level = 2000, 0.95
    rng = np.random.default_rng(22)
    labels = np.repeat(np.arange(8), 6)
    weights = bootstrap_weights(labels, 1000, seed=0)
    covered, bootstrap_covered = [], []
    for _ in range(runs):
        values = clustered_share(rng, 8, 6, level, 0.5)
        low, high = share_interval(share_stats(values), labels)
        covered.append(low <= level <= high)
        low, high = bootstrap_interval(share_stats(values), weights)
        bootstrap_covered.append(low <= level <= high)
    assert np.mean(covered) >= 0.90
    assert np.mean(bootstrap_covered) < 0.85


def interaction_verdicts(items: int, true_interaction: float, runs: int, broken: float = 0.05) -> list[str]:
    """Verdicts of weight and KV compression (each breaking ``broken``) combined with ``true_interaction``."""
    rng = np.random.default_rng(22)
    weights = bootstrap_weights(np.arange(items), 500, seed=0)
    verdicts = []
    for _ in range(runs):
        run = interacting_settings(rng, items, broken, broken, true_interaction)
        stats = (share_stats(outcomes) for outcomes in (run.base, run.weights, run.kv, run.combined))
        verdicts.append(interaction("accuracy", *stats, weights, MARGIN, np.arange(items)).verdict)
    return verdicts


def test_a_true_interaction_at_the_margin_does_not_read_additive():
    """A true +0.02 super-additive interaction at n = 2,000 reads "additive" in at most 5% of runs (the
    review: 27% before the equivalence rule)."""
    assert np.mean([v != "additive" for v in interaction_verdicts(2000, MARGIN, 200)]) >= 0.95


def test_additivity_can_be_shown_with_enough_items():
    """No true interaction, each part breaking 5%: at n = 4,000 about 20 items carry the interaction (10
    broken by both, 10 by the combination alone) and the interval lies within ±δ, "additive", in most
    runs; at n = 1,000 about 5 carry it, too few for any verdict ("no interaction detected")."""
    assert np.mean([v == "additive" for v in interaction_verdicts(4000, 0.0, 100)]) > 0.5
    assert np.mean([v == "no interaction detected" for v in interaction_verdicts(1000, 0.0, 50)]) > 0.5


def test_the_eviction_budget_ladder_keeps_the_same_guarantee():
    """The frontier's eviction ladder (80 > 60 > 40 > 20 > 10 percent kept) is the same fixed sequence:
    the reported cheapest budget is truly unsafe at most α of the time, over all 32 truths."""
    runs = 1000
    rng = np.random.default_rng(27)
    budgets = frontier.BUDGETS
    at_margin = rng.random((runs, len(budgets)))
    powerful = 1 - np.vectorize(NORMAL.cdf)(rng.normal(4.0, 1.0, (runs, len(budgets))))
    grid = [Setting.from_id("evict-snapkv-b40-w4")]
    worst = 0.0
    for truth in itertools.product((True, False), repeat=len(budgets)):
        truly_safe = dict(zip(budgets, truth))
        wrong = 0
        for run in range(runs):
            p = {b: (powerful if truly_safe[b] else at_margin)[run, i] for i, b in enumerate(budgets)}
            _, cheapest = frontier.search(grid, lambda s: frontier.Point(
                s.id, "kv", "evict-snapkv-b{b}-w4", s.evict.budget, s.evict.budget / 100, 0.0, 0.0, 0.0,
                p[s.evict.budget] < ALPHA, {}))
            point = cheapest["evict-snapkv-b{b}-w4"]
            wrong += point is not None and not truly_safe[point.level]
        worst = max(worst, wrong / runs)
    assert worst <= ALPHA + 3 * mcse(ALPHA, runs)
