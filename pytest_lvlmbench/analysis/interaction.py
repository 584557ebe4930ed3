"""Do weight and KV compression add up? The interaction of a combined setting's drop.

For a setting that compresses weights W and the KV cache K, with fp16 baseline B, the combined
change is compared with the sum of the single ones:

    interaction = (WK − B) − ((W − B) + (K − B)) = WK − W − K + B

signed as a worsening (positive: the combination costs more than its parts). All four are paired
on the same items, so one cluster-bootstrap resample (the weights every interval of the run uses)
gives one resampled interaction; its 95% percentile interval decides the verdict:

- "super-additive" when the whole interval is above zero, "sub-additive" when it is below;
- "additive" only when the whole interval lies inside (−margin, +margin): two one-sided tests
  (Schuirmann 1987) at 0.025 each show the interaction is smaller than the margin either way;
- "no interaction detected" otherwise: the interval holds zero but also interactions as large as
  the margin. Absence of evidence is not additivity (a true +0.02 interaction read "additive" in
  92% of runs at n = 100 before this rule; docs/statistics.md has the simulated rates).

Like a corpus metric's non-inferiority (:mod:`.metrics.paired`), no verdict is drawn from fewer than
``MIN_CHANGED_CLUSTERS`` clusters whose items carry any interaction (combined − weights − KV + fp16
not zero): a bootstrap over a handful of such items has a near-zero width that reads as "additive"
(8.7% at n = 100 for a true +0.02 interaction) or as an interaction that is not there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..metrics import SampleStats, higher_is_better
from ..metrics.paired import MIN_CHANGED_CLUSTERS
from ..core.records import worsening

LEVEL = 0.95


@dataclass(frozen=True)
class Interaction:
    combined: float     # worsening of WK vs B
    weights: float      # ... of W alone
    kv: float           # ... of K alone
    value: float        # combined - (weights + kv)
    low: float
    high: float
    margin: float       # the equivalence margin "additive" must show
    changed_clusters: int   # clusters whose items carry any interaction

    @property
    def verdict(self) -> str:
        if self.changed_clusters < MIN_CHANGED_CLUSTERS:
            return "no interaction detected"
        if self.low > 0:
            return "super-additive"
        if self.high < 0:
            return "sub-additive"
        if -self.margin < self.low and self.high < self.margin:
            return "additive"
        return "no interaction detected"

    def as_dict(self) -> dict:
        return {"combined": self.combined, "weights": self.weights, "kv": self.kv, "value": self.value,
                "low": self.low, "high": self.high, "margin": self.margin, "changed_clusters": self.changed_clusters,
                "verdict": self.verdict}


def interaction(metric: str, base: SampleStats, weights_only: SampleStats, kv_only: SampleStats,
                combined: SampleStats, resample_weights: np.ndarray, margin: float,
                clusters: Sequence[Any]) -> Interaction | None:
    """The interaction of ``combined`` for a directed ``metric`` (None without a direction), "additive"
    only within ``margin``; ``clusters``: each item's cluster, as the resample weights drew them."""
    better = higher_is_better(metric)
    if better is None:
        return None

    def worse(stats: SampleStats) -> float:
        return worsening(metric, base.value(), stats.value()) + 0.0   # + 0.0: no "-0.000" in the report

    resampled = worsening(metric, 0.0, combined.resampled(resample_weights) - weights_only.resampled(resample_weights)
                          - kv_only.resampled(resample_weights) + base.resampled(resample_weights))
    low, high = np.quantile(resampled, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    total, w, k = worse(combined), worse(weights_only), worse(kv_only)
    per_item = np.abs(combined.rows - weights_only.rows - kv_only.rows + base.rows).sum(axis=1) > 1e-12
    changed = len({c for c, carries in zip(clusters, per_item) if carries})
    return Interaction(total, w, k, total - w - k + 0.0, float(low) + 0.0, float(high) + 0.0, margin, changed)


__all__ = ["Interaction", "LEVEL", "interaction"]
