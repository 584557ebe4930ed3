"""Per-sample sufficient statistics: one code path for a metric's value, its bootstrap resamples and
(in :mod:`.paired`) its paired comparison with a baseline; plus McNemar and Benjamini-Hochberg."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["SampleStats", "ratio_stats", "share_stats", "all_correct_stats", "bootstrap_weights",
           "bootstrap_interval", "mcnemar_p", "benjamini_hochberg", "metric_values", "undefined_notes",
           "safe_divide"]


@dataclass(frozen=True)
class SampleStats:
    """A metric written as a function of per-sample sums.

    ``rows`` has one row per sample; the metric is ``aggregate(rows.sum(0))``. A bootstrap
    resample is a vector of per-sample weights ``w`` (how often each sample was drawn), and
    its metric is ``aggregate(w @ rows)``, so a thousand resamples are one matrix product
    for every metric, corpus-level ones (BLEU, POPE F1, MaxSkew) included. ``binary``: the
    rows are ``(v_i, d_i)`` with both in {0, 1}, the metric is the share Σv / Σd of 0/1 outcomes
    over the rows with d_i = 1 (every row for an accuracy, a group's first row for "all of the group
    right"), and paired tests of shares (McNemar, Tango) apply. ``undefined``: set when the official formula divides by zero
    on the full data (e.g. POPE precision with no 'yes' prediction); it says which value was
    returned instead, and the report shows it. ``details``: numbers the metric's own test
    produced beside its value (e.g. MaxSkew's chance level and permutation p-value), carried to
    the record's ``details`` and the JSON report.
    """

    rows: np.ndarray
    aggregate: Callable[[np.ndarray], np.ndarray]   # (B, k) sums -> (B,) metric values
    binary: bool = False
    undefined: str = ""
    details: Mapping[str, float] = field(default_factory=dict)

    def value(self) -> float:
        return float(self.aggregate(self.rows.sum(0, keepdims=True))[0])

    def resampled(self, weights: np.ndarray) -> np.ndarray:
        """Metric value under each row of ``weights`` (B x n)."""
        return self.aggregate(weights @ self.rows)


def safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0.0 where den is 0."""
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def ratio_stats(numerators: Sequence[float], denominators: Sequence[float], empty: str = "empty denominator") -> SampleStats:
    """sum(num) / sum(den); 0.0 for an empty denominator, noted in ``undefined`` with ``empty``
    saying why it was empty."""
    rows = np.column_stack([np.asarray(numerators, float), np.asarray(denominators, float)]).reshape(-1, 2)
    undefined = f"{empty}: 0/0, reported as 0.0" if rows[:, 1].sum() == 0 else ""
    return SampleStats(rows, lambda s: safe_divide(s[:, 0], s[:, 1]), undefined=undefined)


def share_stats(values: Sequence[float]) -> SampleStats:
    """Mean of per-sample values (an accuracy when they are 0/1)."""
    values = np.asarray(values, float)
    stats = ratio_stats(values, np.ones_like(values), "no samples")
    return replace(stats, binary=bool(np.isin(values, (0.0, 1.0)).all()))


def all_correct_stats(correct: Sequence[bool], groups: Sequence[Any]) -> SampleStats:
    """Share of groups all of whose samples are correct (MME acc+, HallusionBench fAcc/qAcc,
    counterfactual consistency). A group's outcome sits on its first sample, so resampling
    must keep groups whole (resample clusters that contain them)."""
    outcome: dict[Any, bool] = {}
    for ok, group in zip(correct, groups):
        outcome[group] = outcome.get(group, True) and bool(ok)
    first: dict[Any, int] = {}
    for i, group in enumerate(groups):
        first.setdefault(group, i)
    num, den = np.zeros(len(groups)), np.zeros(len(groups))
    for group, i in first.items():
        num[i], den[i] = float(outcome[group]), 1.0
    return replace(ratio_stats(num, den), binary=True)


def bootstrap_weights(clusters: Sequence[Any], n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_resamples, n_samples) draw counts of a cluster bootstrap (Efron & Tibshirani).

    Clusters (an image's POPE questions, a HallusionBench question pair, a counterfactual
    set) are drawn whole, with replacement, as many as there are; each sample gets its
    cluster's count. Deterministic per seed.
    """
    index: dict[Any, int] = {}
    of_sample = np.array([index.setdefault(c, len(index)) for c in clusters], dtype=np.int64)
    if of_sample.size == 0:
        raise ValueError("bootstrap_weights needs at least one sample")
    counts = np.random.default_rng(seed).multinomial(len(index), np.full(len(index), 1 / len(index)),
                                                      size=n_resamples)
    return counts[:, of_sample].astype(float)


def bootstrap_interval(stats: SampleStats, weights: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a metric."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    alpha = (1 - level) / 2
    low, high = np.percentile(stats.resampled(weights), [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def mcnemar_p(before_correct: Sequence[bool], after_correct: Sequence[bool]) -> float:
    """Exact two-sided McNemar test p-value (McNemar 1947; exact binomial form).

    b = items right before and wrong after, c = wrong before and right after; under H0
    b ~ Binomial(b + c, 1/2) and p = min(1, 2 * P[X <= min(b, c)]). 1.0 without
    discordant pairs.
    """
    if len(before_correct) != len(after_correct):
        raise ValueError("before_correct and after_correct differ in length")
    b = sum(bool(x) and not bool(y) for x, y in zip(before_correct, after_correct))
    c = sum(bool(y) and not bool(x) for x, y in zip(before_correct, after_correct))
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2 ** n)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (Benjamini & Hochberg 1995): a table of many
    settings x tasks x metrics tested at once keeps its expected share of false
    discoveries at the level, instead of one false "significant" per 20 tests.
    adjusted_(i) = min over j >= i of p_(j) * m / j (sorted ascending), capped at 1."""
    order = np.argsort(np.asarray(p_values, float))
    m = len(order)
    adjusted = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        index = order[rank - 1]
        running = min(running, p_values[index] * m / rank)
        adjusted[index] = running
    return [float(min(1.0, a)) for a in adjusted]


def metric_values(stats: Mapping[str, SampleStats]) -> dict[str, float]:
    """The metric values of a dict of :class:`SampleStats`."""
    return {name: stat.value() for name, stat in stats.items()}


def undefined_notes(stats: Mapping[str, SampleStats]) -> dict[str, str]:
    """{metric: why its value is a convention, not the formula} for every undefined metric."""
    return {name: stat.undefined for name, stat in stats.items() if stat.undefined}
