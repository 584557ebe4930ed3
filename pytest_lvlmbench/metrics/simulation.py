"""Simulated paired runs for the Monte-Carlo checks of :mod:`.paired` (tests/test_statistics_simulated.py
and ``benchmarks/perf/statistics_tables.py``, which writes docs/statistics.md's tables).

A baseline and a compressed setting answer the same ``clusters × size`` items. Each changed answer
is "broken" (right → wrong) or "fixed" (wrong → right); for corpus metrics (:func:`scored_changes`) a
changed item's score moves by a continuous amount; :func:`interacting_settings` adds the weights-only,
KV-only and combined runs of an interaction. Clustering follows the beta-binomial model (the standard
one for an intraclass correlation of binary outcomes): each cluster draws its own rate from a beta
distribution with the given mean and ICC ρ = 1 / (a + b + 1), and its items are independent given that
rate. Seeded, so every table and test is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["CombinedRuns", "PairedRuns", "adaptive_search", "beta_rates", "clustered_share", "interacting_settings",
           "paired_shares", "scored_changes", "skewed_changes"]


def beta_rates(rng: np.random.Generator, mean: float, icc: float, clusters: int) -> np.ndarray:
    """Per-cluster rates with the given mean and intraclass correlation (constant when ρ = 0)."""
    if icc <= 0 or mean <= 0 or mean >= 1:
        return np.full(clusters, float(mean))
    scale = (1 - icc) / icc
    return rng.beta(mean * scale, (1 - mean) * scale, clusters)


@dataclass(frozen=True)
class PairedRuns:
    before: np.ndarray      # each item's outcome under the baseline (0/1, or a score)
    after: np.ndarray       # ... under the setting
    clusters: np.ndarray    # each item's cluster


def clustered_share(rng: np.random.Generator, clusters: int, size: int, share: float, icc: float) -> np.ndarray:
    """0/1 outcomes of ``clusters × size`` items (cluster by cluster) whose true share is ``share``."""
    labels = np.repeat(np.arange(clusters), size)
    return (rng.random(len(labels)) < beta_rates(rng, share, icc, clusters)[labels]).astype(float)


def paired_shares(rng: np.random.Generator, clusters: int, size: int, broken: float, fixed: float,
                  icc: float = 0.0) -> PairedRuns:
    """Items right under the baseline unless fixed, right under the setting unless broken; the broken
    and fixed rates cluster with ``icc`` each. The true worsening is ``broken - fixed``."""
    labels = np.repeat(np.arange(clusters), size)
    broken_rate = beta_rates(rng, broken, icc, clusters)[labels]
    fixed_rate = beta_rates(rng, fixed, icc, clusters)[labels]
    draw = rng.random(len(labels))
    is_broken = draw < broken_rate
    is_fixed = ~is_broken & (draw < broken_rate + fixed_rate)
    return PairedRuns(np.where(is_fixed, 0.0, 1.0), np.where(is_broken, 0.0, 1.0), labels)


def skewed_changes(rng: np.random.Generator, clusters: int, size: int, changed: float, direction_icc: float,
                   shift: float = 0.0) -> PairedRuns:
    """Churn with a clustered direction: a share ``changed`` of items change, and a changed item breaks
    with its cluster's probability, drawn with mean 1/2 + ``shift`` and ICC ``direction_icc`` (an image
    whose answers all move the same way). ``shift`` = 0 is the null of ▼."""
    labels = np.repeat(np.arange(clusters), size)
    towards_broken = beta_rates(rng, 0.5 + shift, direction_icc, clusters)[labels]
    changes = rng.random(len(labels)) < changed
    is_broken = changes & (rng.random(len(labels)) < towards_broken)
    is_fixed = changes & ~is_broken
    return PairedRuns(np.where(is_fixed, 0.0, 1.0), np.where(is_broken, 0.0, 1.0), labels)


def scored_changes(rng: np.random.Generator, clusters: int, size: int, changed: float, worsening: float,
                   spread: float, icc: float = 0.0) -> PairedRuns:
    """Per-item scores of a corpus metric (a caption's CIDEr-D share): a share ``changed`` = π of items
    change (which ones clustered with ``icc``), each by a drop e ~ Normal(``worsening`` / π,
    (``spread`` / π)²), so the true worsening is ``worsening`` and rarer changes are larger ones (at
    spread s·δ, each changed item moves by δ/π give or take s·δ/π). Baseline scores are uniform on
    [0, 1]; they cancel in the paired difference."""
    labels = np.repeat(np.arange(clusters), size)
    before = rng.random(len(labels))
    changes = rng.random(len(labels)) < beta_rates(rng, changed, icc, clusters)[labels]
    drop = rng.normal(worsening / changed, spread / changed, len(labels))
    return PairedRuns(before, before - np.where(changes, drop, 0.0), labels)


@dataclass(frozen=True)
class CombinedRuns:
    base: np.ndarray        # 0/1 per item under fp16 (all right)
    weights: np.ndarray     # ... with the weights compressed
    kv: np.ndarray          # ... with the KV cache compressed
    combined: np.ndarray    # ... with both


def interacting_settings(rng: np.random.Generator, items: int, weights_broken: float, kv_broken: float,
                         interaction: float) -> CombinedRuns:
    """Items the baseline answers right; weight and KV compression each break their own share,
    independently; both together break every item either breaks and each other item with the
    probability that makes the combined drop ``weights_broken + kv_broken + interaction``: the true
    interaction (combined drop minus the sum of the single drops) is ``interaction`` (≥ −w·k)."""
    weights_ok = rng.random(items) >= weights_broken
    kv_ok = rng.random(items) >= kv_broken
    spared = (1 - weights_broken) * (1 - kv_broken)
    extra = (weights_broken * kv_broken + interaction) / spared
    combined_ok = weights_ok & kv_ok & (rng.random(items) >= extra)
    return CombinedRuns(np.ones(items), weights_ok.astype(float), kv_ok.astype(float), combined_ok.astype(float))


def adaptive_search(safe: Callable[[int], bool], bits: Sequence[int] = (8, 4, 3, 2)) -> int | None:
    """The frontier search before issue 22, re-stated for comparison: the most expensive bit width, then
    the cheapest, then bisect between the last safe and the first unsafe; the cheapest width it calls safe."""
    if not safe(bits[0]):
        return None
    if safe(bits[-1]):
        return bits[-1]
    last_safe, first_unsafe = 0, len(bits) - 1
    while first_unsafe - last_safe > 1:
        middle = (last_safe + first_unsafe) // 2
        last_safe, first_unsafe = (middle, first_unsafe) if safe(bits[middle]) else (last_safe, middle)
    return bits[last_safe]
