"""Quantization, eviction and visual-token pruning side by side at matched KV bytes, per capability.

    python benchmarks/perf/kv_families.py [--model tiny] [--items 500] [--settings ID,ID,...]

Every setting runs through the suite's Session (same prompts, batching, generation cache and paired
tests as ``pytest benchmarks/``) on the first ``--items`` items of each embedded shapes task. Rows are
sorted by the KV bytes they store over float (so settings of similar bytes sit together); columns are
the measured KV bytes over float, the share of the prompt's KV entries kept, the agreement with fp16
(share of identical answers, EffiVLM-Bench's "loyalty"), for settings that drop tokens the prefill
time over the same batches' without dropping (timed beside them in the run), and per capability
the change of its tasks' primary metric vs fp16 (the mean over hallucination's three POPE splits),
marked as the report marks cells: ▼/▲ significantly worse/better (paired, clustered, Benjamini-Hochberg
over the table; direction-aware: less toxic is better), ≈ non-inferior at the default margin (any ▼
among a capability's tasks shows ▼; ≈ only when all of them are ≈).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pytest_lvlmbench.analysis.noninferiority import verdicts
from pytest_lvlmbench.metrics import higher_is_better
from pytest_lvlmbench.core.capabilities import CAPABILITIES
from pytest_lvlmbench.core.options import Options
from pytest_lvlmbench.core.records import flips
from pytest_lvlmbench.core.settings import BASELINE, Setting
from pytest_lvlmbench.engine.reruns import attach_noninferiority
from pytest_lvlmbench.engine.session import Session
from pytest_lvlmbench.report.tables import SIGNIFICANCE, adjusted_p_values
from pytest_lvlmbench.tasks.shapes.tasks import SHAPES_TASKS

SETTINGS = (
    # about three quarters of float: half the image tokens pruned (FastV, VisionZip and the two baselines the
    # literature says to beat, random and pooling) or 70% of the prompt's KV kept
    "vtok-fastv-k1-r50", "vtok-visionzip-r50", "vtok-random-r50", "vtok-pool2", "evict-snapkv-b70-w4",
    "evict-streaming-b70",
    # about a quarter: 8-bit quantization or 20% of the prompt's KV kept
    "kv8-uniform", "evict-snapkv-b20-w4", "evict-pyramidkv-b20-w4", "evict-adakv-b20-w4", "evict-h2o-b20-w4",
    "evict-streaming-b20",
    # about an eighth: 4-bit quantization, or 8-bit quantization of what eviction / pruning kept
    "kv4-uniform", "kv8-uniform+evict-snapkv-b50-w4", "kv8-uniform+vtok-pool2",
)


def family(setting: Setting) -> str:
    kinds = [name for name, used in (("quantization", not setting.kv.is_float), ("eviction", setting.evict is not None),
                                     ("pruning", setting.vtok is not None)) if used]
    return " + ".join(kinds) or "fp16"


def table(model: str, items: int, settings: list[str], cache_dir: Path) -> str:
    chosen = [BASELINE] + [Setting.from_id(s) for s in settings]
    session = Session(Options(models=[model], settings=chosen, limit=items, cache_dir=cache_dir))
    records = []
    for setting in chosen:   # the baseline first: paired tests compare against it
        for task in SHAPES_TASKS:
            record = session.evaluate(model, setting, task)
            records.append(record if setting.is_baseline else attach_noninferiority(
                session, record, {task.primary: session.options.margin}))
    adjusted = adjusted_p_values(records)
    verdict = verdicts(records, adjusted, SIGNIFICANCE)
    base = {r.task: r for r in records if r.is_baseline}
    rows = []
    for setting in chosen:
        mine = [r for r in records if r.setting == setting.id]
        mean = lambda values: sum(values) / len(values)  # noqa: E731
        cells = []
        for capability in CAPABILITIES:
            tasks = [r for r in mine if r.capability == capability]
            if setting.is_baseline:
                cells.append(" / ".join(f"{r.metrics[r.primary]:.3f}" for r in tasks[:1]))
                continue
            delta = mean([r.metrics[r.primary] - base[r.task].metrics[r.primary] for r in tasks])
            changed = [(r.metrics[r.primary] - base[r.task].metrics[r.primary]) * (1 if higher_is_better(r.primary) else -1)
                       for r in tasks if adjusted.get((r.setting, r.task, r.primary), 1.0) < SIGNIFICANCE]
            safe = all(verdict.get((r.setting, r.task, r.primary)) == "non-inferior" for r in tasks)
            mark = "▼" if any(c < 0 for c in changed) else "▲" if any(c > 0 for c in changed) else "≈" if safe else ""
            cells.append(f"{delta:+.3f}{mark}")
        ratios = [r.prefill["prefill_vs_undropped"] for r in mine if r.prefill and "prefill_vs_undropped" in r.prefill]
        kept = [r.kv_kept for r in mine if r.kv_kept is not None]
        agreement = "" if setting.is_baseline else f"{mean([1 - flips(r, base[r.task]) for r in mine]):.3f}"
        rows.append((mean([r.kv_ratio for r in mine]), [f"`{setting.id}`", family(setting),
                                                       f"{mean([r.kv_ratio for r in mine]):.3f}",
                                                       f"{mean(kept):.2f}" if kept else "", agreement,
                                                       f"{mean(ratios):.2f}" if ratios else "", *cells]))
    rows.sort(key=lambda row: -row[0])
    header = ["setting", "family", "KV/float", "kept", "agree", "prefill ×", *(c.replace("_", " ") for c in CAPABILITIES)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(cells) + " |" for _, cells in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--cache-dir", default=None, help="generation cache (default: a fresh temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        print(table(args.model, args.items, args.settings.split(","), Path(args.cache_dir or scratch)))


if __name__ == "__main__":
    main()
