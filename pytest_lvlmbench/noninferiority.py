"""Non-inferiority: is a compressed setting no worse than FP16 by more than a margin δ?

"Not significantly worse" is not "safe": with 20 items nothing is significant. The question users
ask ("is 4-bit KV safe for my model?") is a one-sided test of H0: worsening ≥ δ against
H1: worsening < δ, per (setting, task, metric), where worsening is direction-aware (a rise for
lower-is-better metrics). Only rejecting H0 reads as safe; a small n therefore reads
"inconclusive", never "non-inferior".

- Accuracy-like metrics (``SampleStats.binary``, paired items): the worsening is
  ``(broken − fixed) / n`` with ``broken`` the items right under FP16 and wrong under the setting
  (for lower-is-better: clean → flagged). We test the share of broken items, ``broken / n ≥ δ``,
  with the exact binomial test, ``p = P(Binomial(n, δ) ≤ broken)``: conservative (items the
  setting fixes do not offset the ones it breaks) and exact at any n. 0 broken of 20 gives
  p = 0.98^20 = 0.67 at δ = 0.02: inconclusive; 0 broken of 500 gives p = 4e-5.
- Other metrics (CIDEr-D, F1, MaxSkew: corpus-level): the paired bootstrap that the confidence
  intervals use (same resample weights), ``p = (1 + #{worsening_r ≥ δ}) / (1 + B)``. A bootstrap
  cannot see variation that a small sample never shows (identical outputs on 20 captions give a
  zero-width distribution), so below ``MIN_BOOTSTRAP_ITEMS`` items these read inconclusive.

Across a model's table the p-values are Benjamini-Hochberg-adjusted, as the table's ▲/▼ marks are:
among the cells called non-inferior, the expected share of false "safe" calls stays under the
level. (Holm's family-wise control was tried and rejected: over the default grid's ~1,000 metric
cells it needs p < 5e-5, which a 1,000-resample bootstrap can never show, so no corpus metric
could ever read safe.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .metrics import SampleStats, benjamini_hochberg, higher_is_better
from .results import Record

DEFAULT_MARGIN = 0.02
MIN_BOOTSTRAP_ITEMS = 100
VERDICTS = ("non-inferior", "worse", "inconclusive")


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) ≤ k), summed in log space (exact for the n of a benchmark)."""
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    total = 0.0
    for i in range(k + 1):
        total += math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                          + i * math.log(p) + (n - i) * math.log1p(-p))
    return min(total, 1.0)


def noninferiority_p(metric: str, baseline: SampleStats, setting: SampleStats, margin: float,
                     weights: np.ndarray) -> float | None:
    """One-sided p-value of H0 "the setting is worse than the baseline by ``margin`` or more";
    None for a metric without a direction."""
    better = higher_is_better(metric)
    if better is None:
        return None
    if not margin > 0:
        raise ValueError(f"invalid margin={margin!r} for {metric}: must be > 0")
    n = len(baseline.rows)
    if baseline.binary and setting.binary:
        base, after = baseline.rows[:, 0] > 0.5, setting.rows[:, 0] > 0.5
        broken = int(np.sum(base & ~after)) if better else int(np.sum(~base & after))
        return binomial_cdf(broken, n, margin)
    if n < MIN_BOOTSTRAP_ITEMS:
        return 1.0
    delta = setting.resampled(weights) - baseline.resampled(weights)
    worsening = -delta if better else delta
    return float((1 + np.sum(worsening >= margin - 1e-12)) / (1 + len(worsening)))


def verdicts(records: list[Record], worse_p: Mapping[tuple[str, str, str], float], alpha: float
             ) -> dict[tuple[str, str, str], str]:
    """(setting, task, metric) -> "non-inferior" | "worse" | "inconclusive" for one model's table.
    ``worse_p``: the table's adjusted paired-test p-values (significantly worse than FP16)."""
    tests = [((r.setting, r.task, metric), entry["p"]) for r in records
             for metric, entry in r.noninferiority.items()]
    adjusted = dict(zip([key for key, _ in tests], benjamini_hochberg([p for _, p in tests])))
    by_key = {(r.setting, r.task): r for r in records}
    out = {}
    for key, p in adjusted.items():
        if p < alpha:
            out[key] = "non-inferior"
            continue
        setting, task, metric = key
        record, base = by_key[(setting, task)], by_key.get(("fp16", task))
        delta = 0.0 if base is None else record.metrics[metric] - base.metrics[metric]
        worsened = -delta if higher_is_better(metric) else delta
        out[key] = "worse" if worsened > 0 and worse_p.get(key, 1.0) < alpha else "inconclusive"
    return out


__all__ = ["DEFAULT_MARGIN", "MIN_BOOTSTRAP_ITEMS", "VERDICTS", "binomial_cdf", "noninferiority_p", "verdicts"]
