"""Safe-setting search: the cheapest settings that are non-inferior to fp16 on every selected task.

``pytest --lvlm-frontier CAPABILITIES`` answers "how far can I compress this model?" without
running the whole grid. Each method family of the grid (KV uniform, KIVI group, GEAR outlier;
weight RTN, group, AWQ, outlier, GPTQ; each KV eviction and visual-token pruning method) is
searched over its ladder as a fixed sequence, most to least expensive: bit widths 8 > 4 > 3 > 2;
eviction budgets (percent of the prompt's KV kept) 80 > 60 > 40 > 20 > 10; pruning ratios (percent of
image tokens removed) 25 > 50 > 75 > 90, or pooling factors 2 > 3 > 4. It tests the first rung, then the
next, and stops at the first that is not safe; the cheapest safe setting before it is the answer.

The fixed sequence keeps the chance that the reported cheapest setting is in truth unsafe at the
test's level α without any adjustment (Maurer, Hothorn & Lehmacher 1995), whatever the ladder: the
first truly unsafe setting in the order must be falsely passed for an unsafe one to be reported, and
that happens with probability ≤ α. (The earlier adaptive order, 8 then 2 then bisecting, gave a false
"safe" a second chance: 0.079 with a size-exact test at α = 0.05; docs/statistics.md.) It also
assumes nothing about monotonicity along the ladder; it only costs a run per rung down to the first failure.

"Safe" means non-inferior at the margin on every selected task at the one-sided level
:data:`~.noninferiority.ALPHA` (:mod:`.metrics.paired`'s p-values, unadjusted: an intersection-union
test needs no multiplicity correction to claim "safe on all", and the table's Benjamini-Hochberg
answers another question, the share of false "safe" cells among many). Cost is the measured storage
over float: the KV cache's bytes for KV settings (quantized, evicted or pruned: one front), the
quantized linears' for weight settings. The band of a point is the mean over tasks of the paired 95%
interval of the primary metric's worsening. The Pareto front keeps the evaluated settings that no other
setting of the same kind beats on both cost and mean worsening.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ..core.records import Record
from ..core.records import worsening
from ..core.settings import Setting

BITS = (8, 4, 3, 2)   # most to least expensive
BUDGETS = (80, 60, 40, 20, 10)   # KV eviction: percent of the prompt's KV kept
RATIOS = (25, 50, 75, 90)        # visual-token pruning (fastv, random): percent of image tokens removed
POOLS = (2, 3, 4)                # visual-token pooling factor


@dataclass(frozen=True)
class Point:
    setting: str
    kind: str                  # "kv" (quantized, evicted or pruned KV) or "weights"
    family: str                # the setting's id with its rung written as "{b}"
    level: int                 # its rung: bits, percent kept, percent removed or pooling factor
    cost: float                # stored bytes over float
    worsening: float           # mean over tasks of the primary metric's worsening vs fp16
    low: float                 # ... its 95% band (mean of the tasks' interval ends)
    high: float
    safe: bool                 # non-inferior on every task
    verdicts: dict[str, bool]  # task -> non-inferior


@dataclass(frozen=True)
class Ladder:
    """One family: its kind, id, rungs (most to least expensive), the setting at a rung and a setting's rung."""

    kind: str
    family: str
    rungs: tuple[int, ...]
    make: Callable[[int], Setting]
    rung_of: Callable[[Setting], int]


def ladder_of(setting: Setting) -> Ladder:
    """The family a single-part setting belongs to (eviction and pruning settings may carry a KV spec:
    their ladder is the budget or ratio, the KV spec stays)."""
    if not setting.weights.is_float and (not setting.kv.is_float or setting.drops_tokens):
        raise ValueError(f"setting {setting.id!r}: the frontier searches KV or weight settings, not both at once")
    if setting.evict is not None and setting.vtok is not None:
        raise ValueError(f"setting {setting.id!r}: the frontier searches eviction or pruning, not both at once")
    if setting.evict is not None:
        family = setting.id.replace(setting.evict.id, setting.evict.id.replace(f"-b{setting.evict.budget}", "-b{b}", 1))
        return Ladder("kv", family, BUDGETS, lambda b: replace(setting, evict=replace(setting.evict, budget=b)),
                      lambda s: s.evict.budget)
    if setting.vtok is not None and setting.vtok.method == "pool":
        return Ladder("kv", setting.id.replace(setting.vtok.id, "vtok-pool{b}"), POOLS,
                      lambda b: replace(setting, vtok=replace(setting.vtok, pool=b)), lambda s: s.vtok.pool)
    if setting.vtok is not None:
        family = setting.id.replace(setting.vtok.id, setting.vtok.id.replace(f"-r{setting.vtok.ratio}", "-r{b}"))
        return Ladder("kv", family, RATIOS,
                      lambda b: replace(setting, vtok=replace(setting.vtok, ratio=b)), lambda s: s.vtok.ratio)
    if not setting.kv.is_float:
        return Ladder("kv", setting.kv_id.replace(f"kv{setting.kv.bits}-", "kv{b}-", 1), BITS,
                      lambda b: replace(setting, kv=replace(setting.kv, bits=b)), lambda s: s.kv.bits)
    return Ladder("weights", setting.weights_id.replace(f"w{setting.weights.bits}-", "w{b}-", 1), BITS,
                  lambda b: replace(setting, weights=replace(setting.weights, bits=b)), lambda s: s.weights.bits)


def family_of(setting: Setting) -> tuple[str, str]:
    """(kind, family id): the setting with its rung replaced by "{b}" (one family per method and options)."""
    ladder = ladder_of(setting)
    return ladder.kind, ladder.family


def families(settings: Sequence[Setting]) -> dict[str, Ladder]:
    """{family id: its ladder} of the grid's compressed single-part settings."""
    return {ladder.family: ladder for ladder in (ladder_of(s) for s in settings
                                                  if not s.is_baseline and not s.layered
                                                  and (s.kv.is_float or s.weights.is_float)
                                                  and (s.weights.is_float or not s.drops_tokens))}


def point(setting: Setting, records: Sequence[Record], baseline: dict[str, Record], alpha: float) -> Point:
    kind, family = family_of(setting)
    drops, lows, highs, verdicts = [], [], [], {}
    for record in records:
        metric, base = record.primary, baseline[record.task]
        drops.append(worsening(metric, base.metrics[metric], record.metrics[metric]))
        paired = record.paired.get(metric)
        lows.append(paired["low"] if paired else drops[-1])
        highs.append(paired["high"] if paired else drops[-1])
        verdicts[record.task] = record.noninferiority.get(metric, {}).get("p", 1.0) < alpha
    ratios = [r.kv_ratio if kind == "kv" else r.weight_ratio for r in records]
    ratios = [r for r in ratios if r is not None]
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    level = ladder_of(setting).rung_of(setting)
    return Point(setting.id, kind, family, level, mean(ratios) if ratios else 1.0, mean(drops), mean(lows),
                 mean(highs), all(verdicts.values()), verdicts)


def search(grid: Sequence[Setting], evaluate: Callable[[Setting], Point]) -> tuple[list[Point], dict[str, Point | None]]:
    """Every point evaluated, and each family's cheapest safe point (None: not even its first rung is
    safe), by the fixed sequence along its ladder that stops at the first unsafe setting."""
    seen: dict[str, Point] = {}
    cheapest: dict[str, Point | None] = {}
    for family, ladder in families(grid).items():
        cheapest[family] = None
        for rung in ladder.rungs:
            setting = ladder.make(rung)
            if setting.id not in seen:
                seen[setting.id] = evaluate(setting)
            if not seen[setting.id].safe:
                break
            cheapest[family] = seen[setting.id]
    return list(seen.values()), cheapest


def pareto(points: Sequence[Point]) -> list[Point]:
    """Points of each kind that no other point of that kind beats on cost and worsening, by cost."""
    front = [p for p in points if not any(
        q.kind == p.kind and q.cost <= p.cost and q.worsening <= p.worsening
        and (q.cost < p.cost or q.worsening < p.worsening) for q in points)]
    return sorted(front, key=lambda p: (p.kind, p.cost))


__all__ = ["BITS", "BUDGETS", "POOLS", "RATIOS", "Ladder", "Point", "families", "family_of", "ladder_of", "pareto", "point",
           "search"]
