"""The degradation table: per model, rows capability / dataset / metric, columns the baseline
then each setting, cells ``value (Δ)`` signed against the baseline, plus the flips per setting."""

from __future__ import annotations

import json
from pathlib import Path

from tabulate import tabulate

from .metrics import METRICS
from .session import Session
from .settings import BASELINE


def _direction(metric: str) -> bool | None:
    info = METRICS.get(metric)
    return None if info is None else info.higher_is_better


def _cell(value: float, base: float | None, metric: str) -> str:
    if base is None:
        return f"{value:.3f}"
    delta = value - base
    better = _direction(metric)
    mark = ""
    if better is not None and abs(delta) > 1e-12:
        mark = " ▲" if (delta > 0) == better else " ▼"
    return f"{value:.3f} ({delta:+.3f}){mark}"


def tables(session: Session) -> list[str]:
    """One rendered table per model."""
    out = []
    for model in dict.fromkeys(r.model for r in session.records):
        records = [r for r in session.records if r.model == model]
        settings = [BASELINE.id] + [s for s in dict.fromkeys(r.setting for r in records) if s != BASELINE.id]
        by_key = {(r.task, r.setting): r for r in records}
        rows = []
        for task in dict.fromkeys(r.task for r in records):
            sample = next(r for r in records if r.task == task)
            base = by_key.get((task, BASELINE.id))
            for metric in sample.metrics:
                row = [sample.capability, task, metric + (" *" if metric == sample.primary else "")]
                for setting in settings:
                    record = by_key.get((task, setting))
                    if record is None:
                        row.append("")
                        continue
                    reference = None if base is None or record is base else base.metrics[metric]
                    row.append(_cell(record.metrics[metric], reference, metric))
                rows.append(row)
            flips = ["", task, "flips vs fp16"] + [
                "" if (task, s) not in by_key or s == BASELINE.id else f"{session.flips(by_key[(task, s)]):.3f}"
                for s in settings]
            rows.append(flips)
        out.append(f"lvlmbench: {model} ({session.machine()['dtype']} baseline on {session.options.device}); "
                   "* primary metric, ▲ better / ▼ worse than fp16\n"
                   + tabulate(rows, headers=["capability", "dataset", "metric", *settings], disable_numparse=True))
    return out


def write_json(session: Session, path: Path, answers: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(session.as_json(answers), indent=1))
