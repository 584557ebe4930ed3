"""Layer sensitivity: which decoder layers' compression costs a task the most?

``--lvlm-layer-sweep N`` runs every compressed setting once more on each block of N decoder
layers alone (``kv2-uniform@0-3``, ...). Here the blocks of a setting are ranked, per task, by how
much worse the task's primary metric got against fp16 (direction-aware), next to the drop of the
same setting on every layer.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.records import Record, worsening


def rank_blocks(records: Sequence[Record]) -> dict[tuple[str, str], list[tuple[str, float]]]:
    """{(whole setting id, task): [(layers, worsening), ...] worst first} for layer-restricted records."""
    base = {(r.model, r.task): r for r in records if r.is_baseline}
    ranked: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for record in records:
        setting = record.parsed_setting
        reference = base.get((record.model, record.task))
        if not setting.layered or reference is None:
            continue
        layers = (setting.kv_layers or setting.weight_layers).text
        drop = worsening(record.primary, reference.metrics[record.primary], record.metrics[record.primary])
        ranked.setdefault((setting.whole.id, record.task), []).append((layers, drop))
    return {key: sorted(blocks, key=lambda block: -block[1]) for key, blocks in ranked.items()}


def sensitivity_lines(records: Sequence[Record]) -> list[str]:
    """Report lines: each setting and task, the whole-model drop and the blocks worst first."""
    by_key = {(r.setting, r.task): r for r in records}
    base = {r.task: r for r in records if r.is_baseline}
    lines = []
    for (whole, task), blocks in rank_blocks(records).items():
        full = by_key.get((whole, task))
        primary = (full or base[task]).primary
        overall = ("" if full is None else
                   f", all layers {worsening(primary, base[task].metrics[primary], full.metrics[primary]):+.3f}")
        lines.append(f"  {whole} {task} ({primary} drop{overall}): "
                     + ", ".join(f"layers {layers} {drop:+.3f}" for layers, drop in blocks))
    return lines


__all__ = ["rank_blocks", "sensitivity_lines"]
