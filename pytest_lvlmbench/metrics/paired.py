"""One paired analysis of a compressed setting against its baseline on the same items.

Every mark the report prints about a cell comes from here, so the interval of Δ, ▼/▲ and ≈ agree:

- **Shares of 0/1 outcomes** (accuracies, toxicity rate): the worsening is the paired difference
  θ = (broken − fixed) / n, ``broken`` the items right under the baseline and wrong under the setting
  (for a lower-is-better share: clean → flagged). Tango's score statistic (Tango 1998, Stat Med
  17:891; restricted MLE of Nam 1997) tests θ = θ0 for any θ0: at θ0 = 0 it is McNemar's asymptotic
  test (▼/▲, two-sided), at θ0 = δ the non-inferiority test (≈, one-sided), and the values of θ0 it
  does not reject form the interval. Fagerland, Lydersen & Laake (2013, BMC Med Res Methodol 13:91;
  2014, Stat Methods Med Res 23:472) recommend exactly these two (asymptotic McNemar without
  continuity correction; Tango's interval) for paired proportions. Clustered items (an image's six
  POPE questions) divide every count by the Rao–Scott design effect D of the paired difference
  (Rao & Scott 1992): D = cluster-robust variance of θ̂ / its multinomial variance, floored at 1,
  exactly 1 when every cluster is one item; the statistic becomes Z/√D (the effective number of
  independent items is n/D) and is referred to Student's t with the Satterthwaite degrees of
  freedom of the cluster-robust variance, so that rare changes concentrated in a few images, which
  no variance estimate can see, do not make the test liberal (normal reference: 0.046 at α = 0.025,
  84 images x 6, ICC 0.3; with t: 0.002).
- **Corpus metrics** (CIDEr-D, F1, MaxSkew): the paired cluster bootstrap (both runs scored on the
  same resampled clusters), read through Efron's BCa (bias and skewness corrected) and widened by
  t/z at the Satterthwaite degrees of freedom of the jackknife, gives the interval and the
  non-inferiority p-value (at least 1 / (1 + B)); below ``MIN_CHANGED_CLUSTERS`` clusters whose
  answers changed the bootstrap cannot see the variation a rare change carries (zero width when
  nothing changed) and the cell reads inconclusive. ▼/▲ come from a permutation that swaps the two
  runs' outputs per cluster: exact under the null that the two runs are exchangeable, whatever the
  clusters, p = (1 + #{|Δ*| ≥ |Δ|}) / (1 + B). (The bootstrap's own two-sided p is anti-conservative
  with few changed clusters, hence the permutation for that one question.)

Sizes and powers of all of these are simulated in ``benchmarks/perf/statistics_tables.py``
(docs/statistics.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from .stats import SampleStats

__all__ = ["LEVEL", "MIN_CHANGED_CLUSTERS", "POWER", "PairedComparison", "cluster_index", "compare",
           "paired_design_effect", "satterthwaite_df", "share_design_effect", "share_interval", "student_t_cdf",
           "student_t_quantile", "swap_permutation_p", "tango_z", "wilson_interval"]

LEVEL = 0.95                # two-sided level of every printed interval; ≈ is its one-sided 0.025 test
POWER = 0.80                # power of the smallest detectable drop and of "items that would settle it"
MIN_CHANGED_CLUSTERS = 10   # corpus metrics: fewer changed clusters read inconclusive (calibrated by simulation)
_NORMAL = NormalDist()


def cluster_index(clusters: Sequence[Any]) -> np.ndarray:
    """Each sample's cluster as 0..K-1 in order of first appearance."""
    index: dict[Any, int] = {}
    return np.array([index.setdefault(c, len(index)) for c in clusters], dtype=np.int64)


def _cluster_sums(values: np.ndarray, of_sample: np.ndarray) -> np.ndarray:
    """Per-cluster sums of per-sample values (n,) or rows (n, k)."""
    sums = np.zeros((int(of_sample.max()) + 1 if len(of_sample) else 0, *values.shape[1:]))
    np.add.at(sums, of_sample, values)
    return sums


def _outcomes(stats: SampleStats, clusters: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """A share's 0/1 outcomes (the rows it counts, ``stats.binary``) and their clusters as 0..K-1."""
    counted = stats.rows[:, 1] > 0
    return stats.rows[counted, 0], cluster_index(np.asarray(clusters, dtype=object)[counted])


def tango_z(broken: float, fixed: float, n: float, worsening: float) -> float:
    """Tango's score statistic of H0 "(broken − fixed) / n = worsening" for paired 0/1 outcomes.

    With p̃ the restricted MLE of the fixed share under H0 (the positive root of
    2n p² + (−b − c + (2n − b + c) θ0) p − c θ0 (1 − θ0) = 0),
    Z = (b − c − n θ0) / √(n (2 p̃ + θ0 − θ0²)). At θ0 = 0 this is (b − c)/√(b + c), McNemar's.
    Worked example: b = 10, c = 5, n = 100, θ0 = 0.02: p̃ = 0.06325, Z = 0.7849 (pinned in tests,
    with the restricted MLE checked by a grid search of the likelihood).
    Counts may be fractional (divided by a design effect)."""
    if worsening < 0:   # the mirror image: fixed and broken swap roles
        return -tango_z(fixed, broken, n, -worsening)
    if n <= 0:
        return 0.0
    a = 2 * n
    b = -broken - fixed + (2 * n - broken + fixed) * worsening
    c = -fixed * worsening * (1 - worsening)
    p_fixed = (-b + math.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a)
    variance = n * (2 * p_fixed + worsening - worsening ** 2)
    observed = broken - fixed - n * worsening
    if variance <= 0:
        return 0.0 if observed == 0 else math.copysign(math.inf, observed)
    return observed / math.sqrt(variance)


def paired_design_effect(broken: np.ndarray, fixed: np.ndarray, sizes: np.ndarray) -> float:
    """Rao–Scott design effect of θ̂ = Σ(b_k − c_k) / n over clusters k of ``sizes`` items:
    K/(K−1) Σ_k (b_k − c_k − θ̂ m_k)² / n² over the multinomial (b + c)/n − θ̂², divided by n;
    floored at 1 (clustering is not allowed to make a test more confident), 1 when every cluster is
    one item or nothing changed."""
    n, k = float(sizes.sum()), len(sizes)
    if k < 2 or k == n:
        return 1.0
    d = broken - fixed
    theta = d.sum() / n
    multinomial = (broken.sum() + fixed.sum()) / n - theta ** 2
    if multinomial <= 0:
        return 1.0
    robust = k / (k - 1) * np.sum((d - theta * sizes) ** 2) / n
    return max(1.0, float(robust / multinomial))


def share_design_effect(values: np.ndarray, of_sample: np.ndarray) -> float:
    """Kish/Rao–Scott design effect of a share over clusters (cluster-robust over binomial variance),
    floored at 1; 1 for unclustered items. At a share of 0 or 1 the data cannot show how the clusters
    correlate, so the worst case is assumed: Σ m_k² / n, every cluster one unit (without it, 8 images
    of 6 questions at accuracy 0.95 and ICC 0.5 covered 81% instead of 95%)."""
    n, k = len(values), int(of_sample.max()) + 1 if len(of_sample) else 0
    if k < 2 or k == n:
        return 1.0
    share = values.mean()
    binomial = share * (1 - share)
    if binomial <= 0:
        return float(np.sum(np.bincount(of_sample) ** 2) / n)
    residuals = _cluster_sums(values - share, of_sample)
    robust = k / (k - 1) * np.sum(residuals ** 2) / n
    return max(1.0, float(robust / binomial))


def wilson_interval(share: float, n: float, level: float = LEVEL) -> tuple[float, float]:
    """Wilson's score interval of a share over ``n`` (possibly effective, fractional) items."""
    if n <= 0:
        return 0.0, 1.0
    z = _NORMAL.inv_cdf((1 + level) / 2)
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def share_interval(stats: SampleStats, clusters: Sequence[Any], level: float = LEVEL) -> tuple[float, float]:
    """Wilson's interval of a share of 0/1 outcomes (``stats.binary``) on the effective sample size n / D
    (D: :func:`share_design_effect`): unlike a percentile bootstrap it keeps its width at a share of 0
    or 1 and with few clusters."""
    values, of_sample = _outcomes(stats, clusters)
    effect = share_design_effect(values, of_sample)
    return wilson_interval(float(values.mean()) if len(values) else 0.0, len(values) / effect, level)


@dataclass(frozen=True)
class PairedComparison:
    """A setting against its baseline on one metric. Worsening: the direction-aware change (a drop of
    a higher-is-better metric, a rise of a lower-is-better one); ``low``/``high``: its interval at
    ``LEVEL``; ``p_change``: two-sided p of "no change" (▼/▲); ``p_noninferior``: one-sided p of
    "worse by the margin or more" (≈); ``se``: the standard error of the worsening; ``z_change`` /
    ``z_margin``: the standardised statistic at 0 and at the margin (positive: worse than that)."""

    worsening: float
    low: float
    high: float
    p_change: float
    p_noninferior: float
    se: float
    z_change: float
    z_margin: float
    method: str                 # "tango" or "bootstrap"
    clusters: int
    changed_clusters: int
    samples: int
    design_effect: float = 1.0
    df: float = math.inf        # degrees of freedom of the reference t (inf: the normal)
    fixed: float = 0.0          # shares: the share of items the setting fixed (churn that offsets)

    def detectable(self, alpha: float) -> float | None:
        """The smallest worsening a two-sided test at ``alpha`` detects with ``POWER`` at this run's n,
        clusters and offsetting churn. Shares: the extra worsening made of newly broken items, Var =
        D (2 f + Δ − Δ²) / n with f the observed fixed share, solved for Δ = (z_{1−α/2} + z_power) √Var
        (at f = 0 and D = 1: k² / (n + k²), 0.0155 at n = 500). Corpus metrics: (z + z) · the paired
        bootstrap SE, None when no answer changed (the SE is then unknown, not zero)."""
        k = student_t_quantile(1 - alpha / 2, self.df) + student_t_quantile(POWER, self.df)
        if self.method != "tango":
            return k * self.se if self.changed_clusters else None
        a = k * k * self.design_effect / self.samples
        return (a + math.sqrt(a * a + 8 * (1 + a) * self.fixed * a)) / (2 * (1 + a))

    def items_to_settle(self, samples: int, alpha_noninferior: float, alpha_change: float) -> int | None:
        """Items a run would need for this estimate to read ≈ (estimate below the margin) or ▼ (above
        it) with ``POWER`` if the per-item churn stayed as observed (the statistic grows as √n).
        None when more items cannot settle it at this estimate (exactly at the margin or at zero,
        or a corpus metric whose answers never changed)."""
        if self.z_margin < 0:
            z, now = _NORMAL.inv_cdf(1 - alpha_noninferior), -self.z_margin
        elif self.z_change > 0:
            z, now = _NORMAL.inv_cdf(1 - alpha_change / 2), self.z_change
        else:
            return None
        if not math.isfinite(now):
            return None
        return int(math.ceil(samples * ((z + _NORMAL.inv_cdf(POWER)) / now) ** 2))

    @classmethod
    def from_dict(cls, entry: dict) -> "PairedComparison":
        """Back from :meth:`as_dict` (a record's ``paired`` entry): None is inf for ``df``, nan otherwise."""
        return cls(**{k: (math.inf if k == "df" else math.nan) if v is None else v for k, v in entry.items()})

    def as_dict(self) -> dict:
        """JSON-ready: infinities (the normal's degrees of freedom, a statistic over zero variance) as None."""
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}


def _incomplete_beta(x: float, a: float, b: float) -> float:
    """Regularised incomplete beta I_x(a, b) by its continued fraction (modified Lentz; Numerical
    Recipes §6.4), for Student's t below."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1) / (a + b + 2):   # the fraction converges fast only below the mean
        return 1.0 - _incomplete_beta(1 - x, b, a)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny = 1e-300
    f, c, d = 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            numerator = 1.0
        elif i % 2 == 0:
            numerator = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            numerator = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + numerator * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + numerator / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1.0 - c * d) < 1e-14:
            break
    return front * (f - 1.0)


def student_t_cdf(x: float, df: float) -> float:
    """P(T ≤ x) for Student's t with ``df`` (real, > 0) degrees of freedom; the normal for df = inf."""
    if math.isinf(df):
        return _NORMAL.cdf(x)
    if math.isinf(x):
        return 1.0 if x > 0 else 0.0
    tail = 0.5 * _incomplete_beta(df / (df + x * x), df / 2, 0.5)
    return 1.0 - tail if x > 0 else tail


def student_t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t (bisection on :func:`student_t_cdf`)."""
    if math.isinf(df):
        return _NORMAL.inv_cdf(q)
    lo, hi = -1e3, 1e3
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if student_t_cdf(mid, df) < q else (lo, mid)
    return (lo + hi) / 2


def satterthwaite_df(residuals: np.ndarray) -> float:
    """Effective degrees of freedom of a cluster-robust variance Σ e_k²: (Σ e_k²)² / Σ e_k⁴, at least 1
    (inf when every residual is 0). A few clusters carrying all the change give few degrees of
    freedom, however many clusters there are: what keeps the clustered tests at their level when
    rare changes concentrate in a few images."""
    squares = residuals ** 2
    fourth = float(np.sum(squares ** 2))
    return math.inf if fourth <= 0 else max(1.0, float(np.sum(squares)) ** 2 / fourth)


def _tango_comparison(before: np.ndarray, after: np.ndarray, higher_better: bool, margin: float,
                      of_sample: np.ndarray) -> PairedComparison:
    """Tango's score statistic on broken/fixed counts divided by the design effect; for clustered items
    referred to Student's t with the Satterthwaite degrees of freedom of the cluster-robust variance
    (the normal for independent items: plain Tango/McNemar)."""
    good_before, good_after = (before, after) if higher_better else (1 - before, 1 - after)
    broken_items, fixed_items = good_before * (1 - good_after), (1 - good_before) * good_after
    broken_k, fixed_k = _cluster_sums(broken_items, of_sample), _cluster_sums(fixed_items, of_sample)
    sizes = np.bincount(of_sample).astype(float)
    n = len(before)
    worsening = float((broken_items.sum() - fixed_items.sum()) / n)
    effect = paired_design_effect(broken_k, fixed_k, sizes)
    df = math.inf if len(sizes) == n else satterthwaite_df(broken_k - fixed_k - worsening * sizes)
    b, c, n_eff = broken_items.sum() / effect, fixed_items.sum() / effect, n / effect

    def z(theta: float) -> float:
        return tango_z(b, c, n_eff, theta)

    def bound(target: float) -> float:   # z falls as θ0 grows: bisect z(θ0) = target over [-1, 1]
        lo, hi = -1.0, 1.0
        for _ in range(50):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if z(mid) > target else (lo, mid)
        return (lo + hi) / 2 + 0.0

    quantile = student_t_quantile((1 + LEVEL) / 2, df)
    z_change, z_margin = z(0.0), z(margin)
    se = math.sqrt(max(effect * ((broken_items.sum() + fixed_items.sum()) / n - worsening ** 2), 0.0) / n)
    return PairedComparison(worsening + 0.0, bound(quantile), bound(-quantile),
                            min(1.0, 2 * student_t_cdf(-abs(z_change), df)), student_t_cdf(z_margin, df), se,
                            z_change, z_margin, "tango", len(sizes), int(np.count_nonzero(broken_k + fixed_k)), n,
                            effect, df, float(fixed_items.sum() / n))


@dataclass(frozen=True)
class _BCa:
    """Efron's (1987) bias-corrected and accelerated bootstrap of one statistic: ``bias`` z0 from the
    share of resamples below the estimate, ``acceleration`` from the skewness of the leave-one-cluster-out
    jackknife. It corrects the skew a percentile bootstrap ignores (a worsening made of a few changed
    answers is a skewed, Poisson-like count): at the margin, rare changes with the percentile p read
    "safe" in up to 4.5% of runs at α = 0.025, with BCa within the level (docs/statistics.md)."""

    resampled: np.ndarray
    bias: float
    acceleration: float

    @classmethod
    def of(cls, resampled: np.ndarray, observed: float, jackknife: np.ndarray) -> "_BCa":
        """BCa of ``resampled`` around ``observed``. When every resample lies on one side of the estimate the
        bias correction is undefined (z0 = ±inf; a non-smooth statistic such as MaxSkew's maximum, whose
        chance level rises when a resample repeats sets): the distribution is recentred on the estimate
        (its median moved there) and read as percentiles, rather than collapsing to one end."""
        below = (np.sum(resampled < observed) + 0.5 * np.sum(resampled == observed)) / len(resampled)
        if below in (0.0, 1.0):
            return cls(resampled + (observed - float(np.median(resampled))), 0.0, 0.0)
        spread = jackknife.mean() - jackknife
        denominator = 6 * float(np.sum(spread ** 2)) ** 1.5
        acceleration = float(np.sum(spread ** 3)) / denominator if denominator > 0 else 0.0
        return cls(resampled, _NORMAL.inv_cdf(below), acceleration)

    def quantile(self, level: float) -> float:
        z = self.bias + _NORMAL.inv_cdf(level)
        return float(np.quantile(self.resampled, _NORMAL.cdf(self.bias + z / (1 - self.acceleration * z))))

    def p_below(self, margin: float) -> float:
        """One-sided p of "the statistic ≥ margin": the α at which the BCa upper bound at 1 − α reaches
        the margin. With no bias and acceleration it is the percentile p (1 + #{w* ≥ δ}) / (1 + B)."""
        above = (1 + np.sum(self.resampled >= margin - 1e-12)) / (1 + len(self.resampled))
        if above >= 1:
            return 1.0
        gap = _NORMAL.inv_cdf(1 - above) - self.bias
        scale = 1 + self.acceleration * gap
        if scale <= 0:
            return 1.0 if self.acceleration > 0 else float(above)
        return max(float(1 - _NORMAL.cdf(gap / scale - self.bias)), 1 / (1 + len(self.resampled)))


def _jackknife(stats: SampleStats, by_cluster: np.ndarray) -> np.ndarray:
    """The metric with each cluster left out in turn."""
    return stats.aggregate(by_cluster.sum(0) - by_cluster)


def _bootstrap_comparison(before: SampleStats, after: SampleStats, sign: float, margin: float,
                          of_sample: np.ndarray, weights: np.ndarray, seed: int) -> PairedComparison:
    worsening = sign * (after.value() - before.value()) + 0.0
    resampled = sign * (after.resampled(weights) - before.resampled(weights))
    clusters = int(of_sample.max()) + 1
    before_k, after_k = _cluster_sums(before.rows, of_sample), _cluster_sums(after.rows, of_sample)
    jackknife = sign * (_jackknife(after, after_k) - _jackknife(before, before_k))
    df = satterthwaite_df(jackknife - jackknife.mean())
    tail = (1 - LEVEL) / 2
    widen = student_t_quantile(1 - tail, df) / _NORMAL.inv_cdf(1 - tail)
    bca = _BCa.of(worsening + widen * (resampled - worsening), worsening, jackknife)
    se = float(resampled.std(ddof=1)) if len(resampled) > 1 else 0.0
    changed_clusters = int(np.count_nonzero(np.abs(after_k - before_k).sum(axis=1) > 1e-12))
    p_noninferior = bca.p_below(margin) if changed_clusters >= MIN_CHANGED_CLUSTERS else 1.0
    return PairedComparison(worsening, bca.quantile(tail) + 0.0, bca.quantile(1 - tail) + 0.0,
                            swap_permutation_p(before, after, of_sample, len(weights), seed), p_noninferior, se,
                            _standardised(worsening, se), _standardised(worsening - margin, se), "bootstrap",
                            clusters, changed_clusters, len(of_sample), df=df)


def _standardised(value: float, se: float) -> float:
    if se > 0:
        return value / se
    return 0.0 if abs(value) < 1e-12 else math.copysign(math.inf, value)


def swap_permutation_p(before: SampleStats, after: SampleStats, of_sample: np.ndarray, resamples: int,
                       seed: int) -> float:
    """Two-sided p of "the two runs are exchangeable": each resample swaps the runs' outputs on a
    random half of the clusters (every cluster independently with probability 1/2);
    p = (1 + #{|Δ*| ≥ |Δ|}) / (1 + B). No observed difference gives 1."""
    observed = after.value() - before.value()
    if abs(observed) < 1e-12:
        return 1.0
    differences = _cluster_sums(after.rows - before.rows, of_sample)
    swaps = np.random.default_rng(seed).integers(0, 2, size=(resamples, len(differences))).astype(float)
    moved = swaps @ differences
    base_sum, after_sum = before.rows.sum(0), after.rows.sum(0)
    permuted = after.aggregate(after_sum - moved) - before.aggregate(base_sum + moved)
    return float((1 + np.sum(np.abs(permuted) >= abs(observed) - 1e-12)) / (1 + resamples))


def compare(before: SampleStats, after: SampleStats, higher_better: bool, margin: float, clusters: Sequence[Any],
            weights: np.ndarray, seed: int = 0) -> PairedComparison:
    """The paired analysis of ``after`` against ``before`` over the same samples, clustered by
    ``clusters``; ``weights``: the cluster-bootstrap draws (:func:`bootstrap_weights`) the run's
    intervals use. Tango's score test for two shares of 0/1 outcomes, the paired bootstrap (and a
    swap permutation for ▼/▲) otherwise."""
    if len(before.rows) != len(after.rows) or len(before.rows) != len(clusters):
        raise ValueError(f"paired comparison over different samples: {len(before.rows)} before, "
                         f"{len(after.rows)} after, {len(clusters)} cluster labels")
    if not margin > 0:
        raise ValueError(f"invalid margin={margin!r}: must be > 0")
    if before.binary and after.binary:
        if not np.array_equal(before.rows[:, 1] > 0, after.rows[:, 1] > 0):
            raise ValueError("paired comparison of shares over different outcomes (the counted rows differ)")
        (outcomes_before, of_sample), (outcomes_after, _) = _outcomes(before, clusters), _outcomes(after, clusters)
        return _tango_comparison(outcomes_before, outcomes_after, higher_better, margin, of_sample)
    return _bootstrap_comparison(before, after, -1.0 if higher_better else 1.0, margin, cluster_index(clusters),
                                 weights, seed)
