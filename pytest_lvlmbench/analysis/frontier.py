"""Safe-setting search: the cheapest settings that are non-inferior to fp16 on every selected task.

``pytest --lvlm-frontier CAPABILITIES`` answers "how far can I compress this model?" without
running the whole grid. Each method family of the grid (KV uniform, KIVI group, GEAR outlier;
weight RTN, group, AWQ, outlier, GPTQ) is searched over bit widths 8 > 4 > 3 > 2 as a fixed
sequence: test 8 bits, then 4, 3, 2, and stop at the first that is not safe; the cheapest safe
setting before it is the answer.

The fixed sequence keeps the chance that the reported cheapest setting is in truth unsafe at the
test's level α without any adjustment (Maurer, Hothorn & Lehmacher 1995): the first truly unsafe
setting in the order must be falsely passed for an unsafe one to be reported, and that happens with
probability ≤ α. (The earlier adaptive order, 8 then 2 then bisecting, gave a false "safe" a second
chance: 0.079 with a size-exact test at α = 0.05; docs/statistics.md.) It also assumes nothing about
monotonicity in bits; it only costs a run per bit width down to the first failure.

"Safe" means non-inferior at the margin on every selected task at the one-sided level
:data:`~.noninferiority.ALPHA` (:mod:`.metrics.paired`'s p-values, unadjusted: an intersection-union
test needs no multiplicity correction to claim "safe on all", and the table's Benjamini-Hochberg
answers another question, the share of false "safe" cells among many). Cost is the measured storage
over float: the KV cache's bytes for KV settings, the quantized linears' for weight settings. The band
of a point is the mean over tasks of the paired 95% interval of the primary metric's worsening. The
Pareto front keeps the evaluated settings that no other setting of the same kind beats on both cost
and mean worsening.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ..core.records import Record
from ..core.records import worsening
from ..core.settings import Setting

BITS = (8, 4, 3, 2)   # most to least expensive


@dataclass(frozen=True)
class Point:
    setting: str
    kind: str                  # "kv" or "weights"
    family: str                # the setting's id with its bits written as "{b}"
    bits: int
    cost: float                # stored bytes over float
    worsening: float           # mean over tasks of the primary metric's worsening vs fp16
    low: float                 # ... its 95% band (mean of the tasks' interval ends)
    high: float
    safe: bool                 # non-inferior on every task
    verdicts: dict[str, bool]  # task -> non-inferior


def family_of(setting: Setting) -> tuple[str, str]:
    """(kind, family id): the setting with its bits replaced by "{b}" (one family per method and options)."""
    if not setting.kv.is_float and setting.weights.is_float:
        return "kv", setting.kv_id.replace(f"kv{setting.kv.bits}-", "kv{b}-", 1)
    if not setting.weights.is_float and setting.kv.is_float:
        return "weights", setting.weights_id.replace(f"w{setting.weights.bits}-", "w{b}-", 1)
    raise ValueError(f"setting {setting.id!r}: the frontier searches KV or weight settings, not both at once")


def families(settings: Sequence[Setting]) -> dict[str, Callable[[int], Setting]]:
    """{family id: bits -> Setting} of the grid's compressed single-part settings."""
    out: dict[str, Callable[[int], Setting]] = {}
    for setting in settings:
        if setting.is_baseline or setting.layered or (not setting.kv.is_float and not setting.weights.is_float):
            continue
        kind, family = family_of(setting)
        if kind == "kv":
            out[family] = lambda b, s=setting: replace(s, kv=replace(s.kv, bits=b))
        else:
            out[family] = lambda b, s=setting: replace(s, weights=replace(s.weights, bits=b))
    return out


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
    bits = setting.kv.bits if kind == "kv" else setting.weights.bits
    return Point(setting.id, kind, family, bits, mean(ratios) if ratios else 1.0, mean(drops), mean(lows),
                 mean(highs), all(verdicts.values()), verdicts)


def search(grid: Sequence[Setting], evaluate: Callable[[Setting], Point]) -> tuple[list[Point], dict[str, Point | None]]:
    """Every point evaluated, and each family's cheapest safe point (None: not even 8 bits is safe),
    by the fixed sequence 8 → 4 → 3 → 2 that stops at the first unsafe setting."""
    seen: dict[str, Point] = {}
    cheapest: dict[str, Point | None] = {}
    for family, make in families(grid).items():
        cheapest[family] = None
        for bits in BITS:
            setting = make(bits)
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


__all__ = ["BITS", "Point", "families", "family_of", "pareto", "point", "search"]
