"""Non-inferiority: is a compressed setting no worse than FP16 by more than a margin δ?

"Not significantly worse" is not "safe": with 20 items nothing is significant. The question users
ask ("is 4-bit KV safe for my model?") is a one-sided test of H0: worsening ≥ δ against
H1: worsening < δ, per (setting, task, metric), where worsening is direction-aware (a drop of a
higher-is-better metric, a rise of a lower-is-better one). Only rejecting H0 reads as safe; a small
n therefore reads "inconclusive", never "non-inferior".

The p-values come from the paired analysis of :mod:`.metrics.paired`: for accuracies Tango's score
test of the paired difference (broken − fixed) / n, so churn that cancels out is not counted
against a setting, clustered by image or pair where the task is; for corpus metrics the paired BCa
bootstrap, inconclusive below ``MIN_CHANGED_CLUSTERS`` changed clusters. The level is one-sided
``ALPHA`` = 0.025 (ICH E9's convention), so an unadjusted ≈ is exactly "the paired 95% interval of the
worsening lies below δ". How often answers change at all (churn) is a separate measure, the flips
row of the full table, never part of this verdict.

Across a model's table the p-values are Benjamini-Hochberg-adjusted, as the table's ▲/▼ marks are:
among the cells called non-inferior, the expected share of false "safe" calls stays under ALPHA.
(Holm's family-wise control was tried and rejected: over the default grid's ~1,000 metric cells it
needs p < 3e-5, which a 1,000-resample bootstrap can never show.)
"""

from __future__ import annotations

from collections.abc import Mapping

from ..metrics import benjamini_hochberg
from ..core.records import Record, worsening
from ..core.settings import BASELINE

DEFAULT_MARGIN = 0.02
ALPHA = 0.025
VERDICTS = ("non-inferior", "worse", "inconclusive")


def verdicts(records: list[Record], worse_p: Mapping[tuple[str, str, str], float], alpha_worse: float
             ) -> dict[tuple[str, str, str], str]:
    """(setting, task, metric) -> "non-inferior" | "worse" | "inconclusive" for one model's table.
    ``worse_p``: the table's adjusted paired-test p-values (significantly worse than FP16 at
    ``alpha_worse``, two-sided); non-inferiority at :data:`ALPHA`, one-sided, B-H over the table."""
    tests = [((r.setting, r.task, metric), entry["p"]) for r in records
             for metric, entry in r.noninferiority.items()]
    adjusted = dict(zip([key for key, _ in tests], benjamini_hochberg([p for _, p in tests])))
    by_key = {(r.setting, r.task): r for r in records}
    out = {}
    for key, p in adjusted.items():
        if p < ALPHA:
            out[key] = "non-inferior"
            continue
        setting, task, metric = key
        record, base = by_key[(setting, task)], by_key.get((BASELINE.id, task))
        worsened = 0.0 if base is None else worsening(metric, base.metrics[metric], record.metrics[metric])
        out[key] = "worse" if worsened > 0 and worse_p.get(key, 1.0) < alpha_worse else "inconclusive"
    return out


__all__ = ["ALPHA", "DEFAULT_MARGIN", "VERDICTS", "verdicts"]
