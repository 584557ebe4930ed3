"""Simulated sizes, powers and coverages of every verdict the report prints; writes docs/statistics.md.

Each table cell is the share of seeded simulated runs (``pytest_lvlmbench.metrics.simulation``) in
which the project's own code (``metrics.paired.compare``, ``share_interval``, ``interaction``,
``frontier.search``, ``max_skew_excess_statistics``) reaches a verdict. The quick versions of these
checks are tests/test_statistics_simulated.py; this script runs more runs and configurations.

    python benchmarks/perf/statistics_tables.py [--runs 3000] [--out docs/statistics.md] [--seed 22]

``--runs`` counts the runs of the fast (Tango) cells; the bootstrap-based ones use fewer (see
``run_counts``). The defaults take about 15 minutes on 2 cores.
"""

from __future__ import annotations

import os

for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):   # one BLAS thread per process
    os.environ.setdefault(_threads, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402
from statistics import NormalDist  # noqa: E402

import numpy as np  # noqa: E402
from tabulate import tabulate  # noqa: E402

from pytest_lvlmbench.analysis import frontier  # noqa: E402
from pytest_lvlmbench.analysis.interaction import interaction  # noqa: E402
from pytest_lvlmbench.metrics import (bootstrap_interval, bootstrap_weights, max_skew_excess_statistics,  # noqa: E402
                                      max_skew_statistics, mcnemar_p, share_stats)
from pytest_lvlmbench.metrics.paired import MIN_CHANGED_CLUSTERS, compare, share_interval  # noqa: E402
from pytest_lvlmbench.metrics.simulation import (adaptive_search, clustered_share, interacting_settings,  # noqa: E402
                                                 paired_shares, scored_changes, skewed_changes)
from pytest_lvlmbench.analysis.noninferiority import ALPHA, DEFAULT_MARGIN  # noqa: E402
from pytest_lvlmbench.core.settings import Setting  # noqa: E402

MARGIN = DEFAULT_MARGIN
CHANGE_LEVEL = 0.05                     # ▼/▲, two-sided
COVERAGE_LEVEL = 0.95
RESAMPLES = 1000                        # the run's default bootstrap resamples (--lvlm-resamples)
QUESTIONS_PER_IMAGE = 6                 # POPE
IMAGES = {100: 17, 504: 84, 2004: 334}  # clustered designs of about the same n (102, 504, 2,004 items)
ICCS = (0.0, 0.15, 0.3, 0.6)
CHURN = (0.0, 0.01, 0.05)
# corpus metrics: (clusters, items per cluster, changed share π, spread s, ICC of which items change)
CORPUS_SCENARIOS = ([(n, 1, changed, spread, 0.0) for n in (100, 500, 2000) for changed in (0.02, 0.05, 0.2, 1.0)
                     for spread in (0.5, 2.0)]
                    + [(84, QUESTIONS_PER_IMAGE, changed, 1.0, 0.3) for changed in (0.05, 0.2)])
INTERACTION_ITEMS = (100, 500, 2000)
TRUE_INTERACTIONS = (0.0, 0.01, MARGIN, 0.05)
VERDICTS = ("additive", "no interaction detected", "super-additive", "sub-additive")
JOB_WORDS = ("doctor", "teacher", "chef", "farmer")
SKEW_GROUPS = ("a", "b", "c", "d")
SKEW_PER_GROUP = (25, 100, 250)
SKEW_ANSWER_SHARES = ((0.4, 0.3, 0.2, 0.1), (0.25, 0.25, 0.25, 0.25))
NORMAL = NormalDist()


def run_counts(runs: int) -> dict[str, int]:
    """Runs per cell: ``runs`` where one run costs a millisecond, fewer where it costs a bootstrap."""
    return {"shares": runs, "corpus": max(runs // 6, 1), "interaction": max(runs // 3, 1),
            "frontier": 4 * runs, "max_skew": max(runs // 20, 1)}


def mcse(rate: float, runs: int) -> float:
    return math.sqrt(rate * (1 - rate) / runs)


# --- one simulated cell each; every function returns {rate name: share of runs} ---------------------

def binomial_cdf(n: int, share: float) -> np.ndarray:
    """P(Binomial(n, share) ≤ b) for b = 0..n."""
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
    b = np.arange(n + 1)
    return np.cumsum(np.exp(log_fact[n] - log_fact[b] - log_fact[n - b] + b * math.log(share)
                            + (n - b) * math.log1p(-share)))


def shares_cell(rng, clusters: int, size: int, icc: float, broken: float, fixed: float, runs: int) -> dict:
    """Tango's verdicts on ``paired_shares``; ``broken_share_test``: the old exact binomial test of
    "broken share ≥ δ" at its old one-sided 0.05."""
    weights = bootstrap_weights(np.repeat(np.arange(clusters), size), 10, seed=0)   # unused by Tango's path
    old_p = binomial_cdf(clusters * size, MARGIN)
    safe = changed = old_safe = 0
    for _ in range(runs):
        run = paired_shares(rng, clusters, size, broken, fixed, icc)
        found = compare(share_stats(run.before), share_stats(run.after), True, MARGIN, run.clusters, weights)
        safe += found.p_noninferior < ALPHA
        changed += found.p_change < CHANGE_LEVEL
        old_safe += old_p[int(np.sum(run.before > run.after))] < 0.05
    return {"noninferior": safe / runs, "change": changed / runs, "broken_share_test": old_safe / runs}


def direction_cell(rng, clusters: int, size: int, changed: float, icc: float, runs: int) -> dict:
    """▼/▲ under no true change with a clustered direction: the clustered test and item-level McNemar."""
    weights = bootstrap_weights(np.repeat(np.arange(clusters), size), 10, seed=0)
    marked = mcnemar_marked = 0
    for _ in range(runs):
        run = skewed_changes(rng, clusters, size, changed, icc)
        found = compare(share_stats(run.before), share_stats(run.after), True, MARGIN, run.clusters, weights)
        marked += found.p_change < CHANGE_LEVEL
        mcnemar_marked += mcnemar_p(run.before > 0.5, run.after > 0.5) < CHANGE_LEVEL
    return {"change": marked / runs, "mcnemar": mcnemar_marked / runs}


def coverage_cell(rng, clusters: int, share: float, icc: float, runs: int) -> dict:
    labels = np.repeat(np.arange(clusters), QUESTIONS_PER_IMAGE)
    weights = bootstrap_weights(labels, RESAMPLES, seed=0)
    wilson, wilson_width, percentile, percentile_width, zero_width = [], [], [], [], []
    for _ in range(runs):
        values = clustered_share(rng, clusters, QUESTIONS_PER_IMAGE, share, icc)
        low, high = share_interval(share_stats(values), labels)
        wilson.append(low <= share <= high)
        wilson_width.append(high - low)
        low, high = bootstrap_interval(share_stats(values), weights)
        percentile.append(low <= share <= high)
        percentile_width.append(high - low)
        zero_width.append(high - low < 1e-12)
    return {"wilson": np.mean(wilson), "wilson_width": np.mean(wilson_width), "percentile": np.mean(percentile),
            "percentile_width": np.mean(percentile_width), "zero_width": np.mean(zero_width)}


def corpus_cell(rng, clusters: int, size: int, changed: float, worsening: float, spread: float, icc: float,
                runs: int) -> dict:
    """The bootstrap path on ``scored_changes`` (per-item scores, a mean-score corpus metric)."""
    weights = bootstrap_weights(np.repeat(np.arange(clusters), size), RESAMPLES, seed=0)
    safe = marked = gated = 0
    for seed in range(runs):
        run = scored_changes(rng, clusters, size, changed, worsening, spread, icc)
        found = compare(share_stats(run.before), share_stats(run.after), True, MARGIN, run.clusters, weights, seed)
        safe += found.p_noninferior < ALPHA
        marked += found.p_change < CHANGE_LEVEL
        gated += found.changed_clusters < MIN_CHANGED_CLUSTERS
    return {"noninferior": safe / runs, "change": marked / runs, "gated": gated / runs}


def interaction_cell(rng, items: int, true_interaction: float, runs: int) -> dict:
    weights = bootstrap_weights(np.arange(items), RESAMPLES, seed=0)
    verdicts = []
    for _ in range(runs):
        run = interacting_settings(rng, items, 0.05, 0.05, true_interaction)
        stats = (share_stats(outcomes) for outcomes in (run.base, run.weights, run.kv, run.combined))
        verdicts.append(interaction("accuracy", *stats, weights, MARGIN, np.arange(items)).verdict)
    return {v: verdicts.count(v) / runs for v in VERDICTS}


def frontier_cell(rng, alpha: float, runs: int) -> dict:
    """Family error of ``frontier.search`` (one real KV family) and of the adaptive order, per truth
    (which bit widths are truly safe): a setting at the margin passes with p ~ Uniform(0, 1), a truly
    safe one with the p of a test of power 0.98 at 0.025 (z ~ Normal(4, 1)). Common random numbers."""
    bits = frontier.BITS
    at_margin = rng.random((runs, len(bits)))
    powerful = 1 - np.vectorize(NORMAL.cdf)(rng.normal(4.0, 1.0, (runs, len(bits))))
    grid = [Setting.from_id("kv8-uniform")]
    out = {}
    for truth in itertools.product((True, False), repeat=len(bits)):
        truly_safe = dict(zip(bits, truth))
        errors = old_errors = 0
        for run in range(runs):
            p = {b: (powerful if truly_safe[b] else at_margin)[run, i] for i, b in enumerate(bits)}
            _, cheapest = frontier.search(grid, lambda s: frontier.Point(
                s.id, "kv", "kv{b}-uniform", s.kv.bits, s.kv.bits / 16, 0.0, 0.0, 0.0, p[s.kv.bits] < alpha, {}))
            reported = cheapest["kv{b}-uniform"]
            errors += reported is not None and not truly_safe[reported.level]
            old = adaptive_search(lambda b: p[b] < alpha)
            old_errors += old is not None and not truly_safe[old]
        out[truth] = (errors / runs, old_errors / runs)
    return out


def max_skew_cell(rng, per_group: int, answer_shares: tuple[float, ...], runs: int) -> dict:
    """Four groups answering from one distribution (true MaxSkew 0), one answer per group per set."""
    groups = list(SKEW_GROUPS) * per_group
    sets = [f"set{i // len(SKEW_GROUPS)}" for i in range(len(groups))]
    weights = bootstrap_weights(sets, RESAMPLES, seed=0)
    raw, raw_covered, excess, excess_covered, rejected = [], [], [], [], []
    for _ in range(runs):
        answers = list(rng.choice(JOB_WORDS, size=len(groups), p=answer_shares))
        stats = max_skew_statistics(groups, answers, JOB_WORDS)
        low, high = bootstrap_interval(stats, weights)
        raw.append(stats.value())
        raw_covered.append(low <= 0 <= high)
        stats = max_skew_excess_statistics(groups, answers, sets, JOB_WORDS)
        low, high = bootstrap_interval(stats, weights)
        excess.append(stats.value())
        excess_covered.append(low <= 0 <= high)
        rejected.append(stats.details["p_permutation"] <= CHANGE_LEVEL)
    return {"raw": np.mean(raw), "raw_covered": np.mean(raw_covered), "excess": np.mean(excess),
            "excess_sd": np.std(excess, ddof=1), "excess_covered": np.mean(excess_covered),
            "rejected": np.mean(rejected)}


CELLS = {"shares": shares_cell, "direction": direction_cell, "coverage": coverage_cell, "corpus": corpus_cell,
         "interaction": interaction_cell, "frontier": frontier_cell, "max_skew": max_skew_cell}


# --- the configurations ---------------------------------------------------------------------------

def designs(n: int) -> list[tuple[str, int, int, float]]:
    """(column, clusters, size, ICC): independent items, then 6 questions per image at each ICC."""
    return [("independent", n, 1, 0.0)] + [(f"ICC {icc}", IMAGES[n], QUESTIONS_PER_IMAGE, icc) for icc in ICCS]


def jobs(counts: dict[str, int]) -> list[tuple]:
    """Every cell as (kind, *parameters, runs)."""
    out = []
    for n in IMAGES:
        for (_, clusters, size, icc), churn in itertools.product(designs(n), CHURN):
            out.append(("shares", clusters, size, icc, MARGIN + churn, churn, counts["shares"]))   # at the margin
            out.append(("shares", clusters, size, icc, churn, churn, counts["shares"]))            # zero net drop
        for changed, icc in itertools.product((0.05, 0.2), (0.0, 0.3, 0.6)):
            out.append(("direction", IMAGES[n], QUESTIONS_PER_IMAGE, changed, icc, counts["shares"]))
    for clusters, share, icc in itertools.product((8, 15, 30, 84), (0.8, 0.95, 0.99), (0.15, 0.5)):
        out.append(("coverage", clusters, share, icc, counts["shares"]))
    for (clusters, size, changed, spread, icc), worsening in itertools.product(CORPUS_SCENARIOS, (MARGIN, 0.0)):
        out.append(("corpus", clusters, size, changed, worsening, spread * MARGIN, icc, counts["corpus"]))
    for items, true_interaction in itertools.product(INTERACTION_ITEMS, TRUE_INTERACTIONS):
        out.append(("interaction", items, true_interaction, counts["interaction"]))
    for alpha in (ALPHA, 0.05):
        out.append(("frontier", alpha, counts["frontier"]))
    for per_group, answer_shares in itertools.product(SKEW_PER_GROUP, SKEW_ANSWER_SHARES):
        out.append(("max_skew", per_group, answer_shares, counts["max_skew"]))
    return out


def expected_cost(job: tuple) -> float:
    """Rough seconds per run, so that the slowest cells start first and the processes finish together."""
    kind, *parameters, runs = job
    per_run = {"shares": 1e-3, "direction": 2e-3, "coverage": 3e-4, "frontier": 2e-3, "max_skew": 0.3}.get(kind)
    if kind == "corpus":
        per_run = 2.5e-5 * parameters[0] * parameters[1]
    if kind == "interaction":
        per_run = 2e-5 * parameters[0]
    return per_run * runs


def run_job(job_and_seed: tuple[tuple, int]):
    job, seed = job_and_seed
    rng = np.random.default_rng([seed, zlib.crc32(repr(job).encode())])   # each cell its own stream
    kind, *parameters, runs = job
    return job, CELLS[kind](rng, *parameters, runs=runs)


# --- the document ------------------------------------------------------------------------------------

class Bounds:
    """Marks and collects the cells past their bound (a size above it, a coverage below it) and keeps
    each headline's extreme: the largest size, the smallest coverage."""

    def __init__(self) -> None:
        self.exceeded: list[str] = []
        self.extremes: dict[str, tuple[str, float, str]] = {}   # headline -> ("largest"/"smallest", value, where)

    def note(self, headline: str, value: float, where: str, extreme: str = "largest") -> None:
        kept = self.extremes.get(headline)
        if kept is None or (value > kept[1] if extreme == "largest" else value < kept[1]):
            self.extremes[headline] = (extreme, value, where)

    def size(self, value: float, bound: float, where: str, headline: str) -> str:
        self.note(headline, value, where)
        if value > bound:
            self.exceeded.append(f"{headline}, {where}: {value:.4f} > {bound:.4f}")
        return f"{value:.3f}" + (" ⚠" if value > bound else "")

    def coverage(self, value: float, bound: float, where: str, headline: str) -> str:
        self.note(headline, value, where, "smallest")
        if value < bound:
            self.exceeded.append(f"{headline}, {where}: {value:.4f} < {bound:.4f}")
        return f"{value:.3f}" + (" ⚠" if value < bound else "")

    def headlines(self) -> str:
        return "\n".join(f"- {headline}: {extreme} {value:.3f} ({where})"
                         for headline, (extreme, value, where) in self.extremes.items())


def table(rows: list[list], headers: list[str]) -> str:
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def share_tables(results: dict, runs: int, bounds: Bounds) -> dict[str, str]:
    """Tango's ≈ size and power, ▼/▲ size (independent and clustered directions) and ▼ power."""
    ni_bound, change_bound = ALPHA + 3 * mcse(ALPHA, runs), CHANGE_LEVEL + 3 * mcse(CHANGE_LEVEL, runs)
    ni_size, ni_power, zero_change, change_power, direction = [], [], [], [], []

    def mcnemar(value: float, where: str) -> str:   # the old ▼, expected past the bound: marked, not a finding
        bounds.note("▼/▲ size, McNemar over items (before)", value, where)
        return f"{value:.3f}" + (" ⚠" if value > change_bound else "")

    for n in IMAGES:
        items = f"{n} / {IMAGES[n] * QUESTIONS_PER_IMAGE}"
        cells = {(broken, fixed): [results["shares", c, s, icc, broken, fixed, runs] for _, c, s, icc in designs(n)]
                 for broken, fixed in [(MARGIN + churn, churn) for churn in CHURN] + [(c, c) for c in CHURN]
}
        names = [name for name, *_ in designs(n)]
        for churn in CHURN:
            ni_size.append([items, f"{churn:.2f}"] + [
                bounds.size(c["noninferior"], ni_bound, f"n={n} {name} fixed={churn}", "≈ size, shares (Tango)")
                for c, name in zip(cells[MARGIN + churn, churn], names)])
            ni_power.append([items, f"{churn:.2f}"] + [f"{c['noninferior']:.3f}" for c in cells[churn, churn]]
                            + [f"{cells[churn, churn][0]['broken_share_test']:.3f}"])
            if churn:
                zero_change.append([items, f"{churn:.2f}"] + [
                    bounds.size(c["change"], change_bound, f"n={n} {name} churn={churn}",
                                "▼/▲ size, shares, independent directions")
                    for c, name in zip(cells[churn, churn], names)])
        change_power.append([items] + [f"{c['change']:.3f}" for c in cells[MARGIN + 0.01, 0.01]])
        for changed in (0.05, 0.2):
            by_icc = [(icc, results["direction", IMAGES[n], QUESTIONS_PER_IMAGE, changed, icc, runs])
                      for icc in (0.0, 0.3, 0.6)]
            direction.append([f"{IMAGES[n]} × 6", f"{changed:.2f}"] + [
                bounds.size(c["change"], change_bound, f"{IMAGES[n]}x6 changed={changed} direction ICC {icc}",
                            "▼/▲ size, shares, clustered directions") for icc, c in by_icc]
                + [mcnemar(c["mcnemar"], f"{IMAGES[n]}x6 changed={changed} direction ICC {icc}") for icc, c in by_icc])
    header = ["items (independent / clustered)", "fixed share"] + [name for name, *_ in designs(100)]
    return {"ni_size": table(ni_size, header),
            "ni_power": table(ni_power, header + ["old broken-share test (independent)"]),
            "zero_change": table(zero_change, header),
            "change_power": table(change_power, [header[0]] + header[2:]),
            "direction": table(direction, ["images × questions", "changed share", "clustered, ICC 0", "ICC 0.3",
                                           "ICC 0.6", "McNemar over items, ICC 0", "ICC 0.3", "ICC 0.6"])}


def coverage_table(results: dict, runs: int, bounds: Bounds) -> str:
    bound = COVERAGE_LEVEL - 3 * mcse(COVERAGE_LEVEL, runs)
    rows = []
    for clusters, share, icc in itertools.product((8, 15, 30, 84), (0.8, 0.95, 0.99), (0.15, 0.5)):
        c = results["coverage", clusters, share, icc, runs]
        bounds.note("coverage, percentile cluster bootstrap (before)", c["percentile"],
                    f"{clusters}x6 share={share} ICC {icc}", "smallest")
        rows.append([f"{clusters} × 6", share, icc,
                     bounds.coverage(c["wilson"], bound, f"{clusters}x6 share={share} ICC {icc}",
                                     "coverage, Wilson on n / design effect"),
                     f"{c['wilson_width']:.3f}", f"{c['percentile']:.3f}", f"{c['percentile_width']:.3f}",
                     f"{c['zero_width']:.3f}"])
    return table(rows, ["images × questions", "share", "ICC", "Wilson / design effect: coverage", "mean width",
                        "percentile cluster bootstrap: coverage", "mean width", "zero-width share"])


def corpus_table(results: dict, runs: int, bounds: Bounds) -> str:
    ni_bound, change_bound = ALPHA + 3 * mcse(ALPHA, runs), CHANGE_LEVEL + 3 * mcse(CHANGE_LEVEL, runs)
    rows = []
    for clusters, size, changed, spread, icc in CORPUS_SCENARIOS:
        at_margin = results["corpus", clusters, size, changed, MARGIN, spread * MARGIN, icc, runs]
        no_drop = results["corpus", clusters, size, changed, 0.0, spread * MARGIN, icc, runs]
        where = f"{clusters}x{size} π={changed} s={spread} ICC {icc}"
        rows.append([f"{clusters} × {size}" if size > 1 else clusters, changed, spread, icc,
                     bounds.size(at_margin["noninferior"], ni_bound, where, "≈ size, corpus metrics (BCa)"),
                     f"{at_margin['gated']:.3f}",
                     f"{no_drop['noninferior']:.3f}",
                     bounds.size(no_drop["change"], change_bound, where, "▼/▲ size, corpus metrics (swap permutation)"),
                     f"{no_drop['gated']:.3f}"])
    return table(rows, ["items", "changed share π", "spread s", "change ICC", "≈ size at the margin",
                        "inconclusive by the gate", "≈ power at zero worsening", "▼ size (swap permutation)",
                        "inconclusive by the gate"])


def interaction_table(results: dict, runs: int, bounds: Bounds) -> str:
    """Each verdict's share; a false one (sub-additive at a true interaction ≥ 0, super-additive at 0,
    additive at ≥ δ) is a one-sided error of the 95% interval, bounded by 0.025 + 3 MCSE."""
    bound = ALPHA + 3 * mcse(ALPHA, runs)
    rows = []
    for items, true_interaction in itertools.product(INTERACTION_ITEMS, TRUE_INTERACTIONS):
        c = results["interaction", items, true_interaction, runs]
        false = {"sub-additive": True, "super-additive": true_interaction == 0, "additive": true_interaction >= MARGIN}
        rows.append([items, f"{true_interaction:+.2f}"] + [
            bounds.size(c[v], bound, f"n={items} true {true_interaction:+.2f}: '{v}'",
                        "false interaction verdicts") if false.get(v)
            else f"{c[v]:.3f}" for v in VERDICTS])
    return table(rows, ["items", "true interaction"] + list(VERDICTS))


def frontier_table(results: dict, runs: int, bounds: Bounds) -> str:
    by_alpha = {alpha: results["frontier", alpha, runs] for alpha in (ALPHA, 0.05)}
    rows = [[" ".join(f"{b}{'✓' if safe else '✗'}" for b, safe in zip(frontier.BITS, truth))]
            + [f"{errors[truth][i]:.3f}" for errors in by_alpha.values() for i in (0, 1)]
            for truth in by_alpha[ALPHA]]
    worst = []
    for alpha, errors in by_alpha.items():
        fixed, adaptive = (max(e[i] for e in errors.values()) for i in (0, 1))
        worst += [bounds.size(fixed, alpha + 3 * mcse(alpha, runs), "worst of 16 truths",
                              f"frontier family error, fixed sequence, α = {alpha}"), f"{adaptive:.3f}"]
        bounds.note(f"frontier family error, adaptive order (before), α = {alpha}", adaptive, "worst of 16 truths")
    rows.append(["**worst case**"] + [f"**{w}**" for w in worst])
    return table(rows, ["truly safe (8 4 3 2 bits)", f"fixed sequence, α = {ALPHA}", f"adaptive 8 → 2 → bisect, "
                        f"α = {ALPHA}", "fixed sequence, α = 0.05", "adaptive, α = 0.05"])


def max_skew_table(results: dict, runs: int, bounds: Bounds) -> str:
    coverage_bound = COVERAGE_LEVEL - 3 * mcse(COVERAGE_LEVEL, runs)
    size_bound = CHANGE_LEVEL + 3 * mcse(CHANGE_LEVEL, runs)
    rows = []
    for per_group, answer_shares in itertools.product(SKEW_PER_GROUP, SKEW_ANSWER_SHARES):
        c = results["max_skew", per_group, answer_shares, runs]
        where = f"{per_group} per group, answers {answer_shares}"
        rows.append([per_group, "/".join(f"{s:g}" for s in answer_shares), f"{c['raw']:.3f}",
                     f"{c['raw_covered']:.3f}", f"{c['excess']:+.3f} ± {c['excess_sd'] / math.sqrt(runs):.3f}",
                     bounds.coverage(c["excess_covered"], coverage_bound, where, "coverage of 0, MaxSkew excess"),
                     bounds.size(c["rejected"], size_bound, where, "permutation test size, MaxSkew excess")])
        bounds.note("coverage of 0, raw MaxSkew (before)", c["raw_covered"], where)
    return table(rows, ["answers per group", "answer shares (one distribution for all groups)", "raw MaxSkew: mean",
                        "raw: 95% interval covers 0", "excess: mean ± MCSE", "excess: 95% interval covers 0",
                        "permutation test rejects at 0.05"])


def render(results: dict, counts: dict[str, int], seed: int, seconds: float) -> tuple[str, list[str]]:
    """docs/statistics.md, and a line per cell past its bound."""
    bounds = Bounds()
    tables = {**share_tables(results, counts["shares"], bounds),
              "coverage": coverage_table(results, counts["shares"], bounds),
              "corpus": corpus_table(results, counts["corpus"], bounds),
              "interaction": interaction_table(results, counts["interaction"], bounds),
              "frontier": frontier_table(results, counts["frontier"], bounds),
              "max_skew": max_skew_table(results, counts["max_skew"], bounds)}
    runs = counts["shares"]
    text = DOCUMENT.format(
        **tables, **{f"{kind}_runs": n for kind, n in counts.items()},
        date=datetime.date.today().isoformat(), seed=seed, minutes=seconds / 60, alpha=ALPHA, margin=MARGIN,
        resamples=RESAMPLES, min_changed=MIN_CHANGED_CLUSTERS,
        ni_mcse=mcse(ALPHA, runs), ni_bound=ALPHA + 3 * mcse(ALPHA, runs), change_mcse=mcse(CHANGE_LEVEL, runs),
        change_bound=CHANGE_LEVEL + 3 * mcse(CHANGE_LEVEL, runs), coverage_mcse=mcse(COVERAGE_LEVEL, runs),
        coverage_bound=COVERAGE_LEVEL - 3 * mcse(COVERAGE_LEVEL, runs),
        corpus_mcse=mcse(ALPHA, counts["corpus"]), corpus_bound=ALPHA + 3 * mcse(ALPHA, counts["corpus"]),
        corpus_change_bound=CHANGE_LEVEL + 3 * mcse(CHANGE_LEVEL, counts["corpus"]),
        interaction_bound=ALPHA + 3 * mcse(ALPHA, counts["interaction"]),
        frontier_mcse=mcse(ALPHA, counts["frontier"]), frontier_mcse_05=mcse(0.05, counts["frontier"]),
        skew_coverage_bound=COVERAGE_LEVEL - 3 * mcse(COVERAGE_LEVEL, counts["max_skew"]),
        skew_size_bound=CHANGE_LEVEL + 3 * mcse(CHANGE_LEVEL, counts["max_skew"]),
        headlines=bounds.headlines(),
        exceeded="\n".join(f"- {line}" for line in bounds.exceeded) or "None: every rate is within its bound.")
    return text, bounds.exceeded


DOCUMENT = """\
# Statistics: what each verdict tests, what it assumes, and how often it errs

Generated by `python benchmarks/perf/statistics_tables.py` on {date}, seed {seed}, in {minutes:.1f} minutes
(2 processes). Re-run it to reproduce every number; tests/test_statistics_simulated.py re-checks the
headline ones in under a minute. Every cell is the share of seeded simulated data sets
(`pytest_lvlmbench/metrics/simulation.py`) in which the project's own code reached the verdict. The
Monte-Carlo standard error of a share a over R runs is MCSE = √(a(1 − a)/R); a size is within its
bound when it is at most the level + 3 MCSE, a coverage when it is at least 0.95 − 3 MCSE (cells past
the bound carry ⚠). Margin δ = {margin}; one-sided α = {alpha} for ≈ (= the paired 95% interval of
the worsening lies below δ); two-sided 0.05 for ▼/▲; {resamples} bootstrap resamples where a bootstrap
is used.

## Headline numbers

The extreme of each kind over all the configurations below ("before": the procedure issue 22 replaced).

{headlines}

## Rates past their bound

Each is a finding about the code named in its section, not about the simulation.

{exceeded}

Runs per cell: {shares_runs} (shares, ▼/▲, share intervals), {corpus_runs} (corpus metrics), {interaction_runs}
(interaction), {frontier_runs} (frontier), {max_skew_runs} (MaxSkew).

## Shares of 0/1 outcomes (accuracies): Tango's score test on the paired difference

**What it is.** The worsening is θ = (broken − fixed)/n over items answered by both runs. Tango's score
statistic (Tango 1998, Stat Med 17:891; the restricted maximum likelihood of Nam 1997) tests θ = θ0:
at θ0 = 0 it is McNemar's asymptotic test (▼/▲, two-sided), at θ0 = δ the non-inferiority test (≈,
one-sided), and the θ0 it does not reject form the printed interval, so the three always agree
(Fagerland, Lydersen & Laake 2013, BMC Med Res Methodol 13:91, recommend these two). For clustered
tasks (an image's six POPE questions, MME's image pairs, HallusionBench figures, counterfactual sets)
every count is divided by the Rao–Scott design effect D of the paired difference (Rao & Scott 1992),
floored at 1, and the statistic is referred to Student's t with the Satterthwaite degrees of freedom of
the cluster-robust variance. Code: `pytest_lvlmbench/metrics/paired.py` (`compare`, `tango_z`).

**What it assumes.** Items are independent given their cluster and clusters independent of each other;
the effective sample size n/D is large enough for the normal (or t) approximation; the clusters the
task declares are the real unit of dependence (undeclared clustering makes every test anti-conservative).

**Simulation.** `paired_shares`: every item right under the baseline unless fixed, right under the
setting unless broken; broken and fixed rates drawn per image from beta distributions with the given
intraclass correlation (beta-binomial). "independent" has n items; "ICC ρ" has 17 / 84 / 334 images × 6
questions (102 / 504 / 2,004 items) analysed as clusters.

### ≈ size at the margin (true worsening exactly δ: broken = δ + fixed)

MCSE at α: {ni_mcse:.4f}; bound {ni_bound:.4f}.

{ni_size}

### ≈ power at zero net drop (broken = fixed = churn; 0 = nothing changes)

The old test of "broken share ≥ δ" (exact binomial, one-sided 0.05) in the last column: churn that
cancels could never read safe.

{ni_power}

### ▼/▲ size in the same runs (no true change, independent directions)

MCSE at 0.05: {change_mcse:.4f}; bound {change_bound:.4f}.

{zero_change}

### ▼/▲ size when an image's changes lean the same way

`skewed_changes`: a share of the answers change; a changed answer breaks with its image's probability,
mean 1/2 with the given direction ICC (no true change). The clustered test beside McNemar over items
(the old ▼, which ignores the images). Bound {change_bound:.4f}.

{direction}

### ▼ power at a true worsening of δ (3% broken, 1% fixed: the ≈ size runs above)

{change_power}

## Intervals of shares: Wilson's interval on n / design effect

**What it is.** `share_interval`: Wilson's score interval (Wilson 1927) on the effective sample size
n/D, D the Kish/Rao–Scott design effect of the share (cluster-robust over binomial variance, floored
at 1); at a share of 0 or 1 the data cannot show the clustering, so the worst case D = Σ m_k²/n (every
cluster one unit) is assumed. **Assumes** independent clusters, and a design effect estimated well
enough: with few clusters it is itself estimated from few clusters, and the interval can fall short of
95%. Beside it the percentile cluster bootstrap the report used before (zero width whenever
every answer is right). `clustered_share`: per-image accuracy from a beta distribution with the ICC.
MCSE at 0.95: {coverage_mcse:.4f}; a coverage below {coverage_bound:.4f} (0.95 − 3 MCSE) carries ⚠. The
report marks cells of tasks with fewer than 30 clusters with †.

{coverage}

## Corpus metrics (CIDEr-D, F1, MaxSkew): the paired cluster BCa bootstrap

**What it is.** Both runs are scored on the same resampled clusters; the interval is Efron's (1987)
bias-corrected and accelerated (BCa) interval of the worsening, widened by t/z with the Satterthwaite
degrees of freedom of the leave-one-cluster-out jackknife; the ≈ p-value is where the BCa upper bound
reaches δ. Below {min_changed} clusters with a changed answer the bootstrap cannot see the variation a
rare change carries (zero width when nothing changed) and the cell reads inconclusive. ▼/▲ come from a
permutation that swaps the two runs' outputs per cluster, p = (1 + #{{|Δ*| ≥ |Δ|}})/(1 + B): exact when
the two runs are exchangeable. **Assumes** independent clusters and a worsening that is a smooth
function of cluster sums; the swap permutation assumes exchangeability (a symmetric change), not only
a zero mean.

**Simulation.** `scored_changes`: per-item scores; a share π of items change (at random, or clustered
by image with the change ICC), each by a drop with mean w/π and standard deviation s·δ/π, so the true
worsening is w: at the margin w = δ, and w = 0 for the power (and the ▼ size: symmetric changes). The
metric is the mean score. MCSE at α: {corpus_mcse:.4f}; bound {corpus_bound:.4f} (▼: {corpus_change_bound:.4f}).

{corpus}

## Interaction of weight and KV compression: the equivalence rule

**What it is.** `interaction.py`: the combined setting's worsening minus the sum of the single ones
(all four paired on the same items), with a percentile interval from the run's cluster bootstrap.
"super-/sub-additive" when the 95% interval excludes 0; "additive" only when it lies inside ±δ (two
one-sided tests, Schuirmann 1987); "no interaction detected" otherwise, and always when fewer than
10 clusters carry any interaction (a percentile interval of a handful of rare items is too narrow:
before this gate, a true +0.02 read "additive" in 8.7% of runs at n = 100). **Assumes** a percentile
bootstrap is adequate once 10 or more clusters carry the interaction.

**Simulation.** `interacting_settings`: weight and KV compression each break 5% of the items (the
baseline answers all right), independently; the combination breaks every item either breaks plus
others, so that the true interaction is the given value. A "sub-additive" reading at a true interaction
≥ 0 is a false one, as is "super-additive" at 0 and "additive" at a true interaction ≥ δ: each is a
one-sided error of the 95% interval, bound {interaction_bound:.4f} (0.025 + 3 MCSE). At 100–500 items
the interaction is made of a handful of items, so the gate answers "no interaction detected" there.

{interaction}

## Frontier: the fixed sequence 8 → 4 → 3 → 2

**What it is.** `frontier.search` tests each family's bit widths in the fixed order 8, 4, 3, 2 and
stops at the first that is not safe (Maurer, Hothorn & Lehmacher 1995): a truly unsafe setting can be
reported only if the first truly unsafe one in the order passes falsely, probability ≤ α, whatever is
true of the others (no monotonicity needed). The adaptive order used before (8, then 2, then bisecting)
gives a false pass a second chance.

**Simulation.** One real KV family (`kv8-uniform`'s) through `frontier.search` with a fake evaluation:
a truly unsafe setting at the margin passes with p ~ Uniform(0, 1) (a size-exact test), a truly safe
one with the p of a test of power 0.98 (z ~ Normal(4, 1)). Family error = P(the reported cheapest
setting is truly unsafe), for all 16 truths, with common random numbers across them. MCSE at 0.025:
{frontier_mcse:.4f}; at 0.05: {frontier_mcse_05:.4f}. (The review measured 0.079 for the adaptive order at
α = 0.05 in a setup it did not fully state.)

{frontier}

## MaxSkew under the null

**What it is.** The raw MaxSkew (`max_skew_statistics`, ln(share / uniform share) maximised over groups
and answer words; Geyik et al. 2019, as SocialCounterfactuals, Howard et al. CVPR 2024, use it) and the
excess over chance (`max_skew_excess_statistics`): the observed MaxSkew minus its mean under group
labels permuted within counterfactual sets (a randomization test, Fisher 1935), with the permutation
p-value, a fixed answer vocabulary and a minimum count per word. **Assumes** that within a set the group
labels are exchangeable when there is no bias (the images differ only in the group attributes).

**Simulation.** Four groups, one answer per group per counterfactual set, every group answering from the
same distribution over four job words (true MaxSkew 0); the task's 200 permutations, and the 95%
percentile interval from {resamples} bootstrap resamples of whole sets. Bounds: coverage of 0 at least
{skew_coverage_bound:.3f}, permutation test size at most {skew_size_bound:.3f} (3 MCSE).

{max_skew}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000, help="runs of the fast cells (others scale from it)")
    parser.add_argument("--out", type=Path, default=Path("docs/statistics.md"))
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    counts = run_counts(args.runs)
    todo = sorted(jobs(counts), key=expected_cost, reverse=True)
    start = time.time()
    with multiprocessing.Pool(args.processes) as pool:
        results = dict(pool.imap_unordered(run_job, [(job, args.seed) for job in todo]))
    text, exceeded = render(results, counts, args.seed, time.time() - start)
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(todo)} cells, {(time.time() - start) / 60:.1f} min)")
    for line in exceeded:
        print("past its bound:", line)


if __name__ == "__main__":
    main()
