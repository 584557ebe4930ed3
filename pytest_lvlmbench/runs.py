"""Saved runs: ``--lvlm-save NAME`` stores a whole run as JSON under the cache directory,
``--lvlm-compare NAME`` fails tests whose metrics got worse than it."""

from __future__ import annotations

import json
from pathlib import Path

from .metrics import higher_is_better
from .results import Record


def worsening(metric: str, before: float, after: float) -> float:
    """How much worse ``after`` is than ``before`` (negative: better), by the metric's direction."""
    return before - after if higher_is_better(metric) else after - before


def runs_dir(cache_dir: Path) -> Path:
    return cache_dir / "runs"


class SavedRun:
    """A whole run stored by ``--lvlm-save NAME`` (JSON under the cache directory), compared
    against by ``--lvlm-compare NAME``: like pytest-benchmark's --benchmark-compare-fail, but a
    metric fails when it got *worse* by its own direction, never merely because it moved."""

    @classmethod
    def load(cls, cache_dir: Path, name: str, tolerance: float = 0.0) -> SavedRun:
        return cls(name, runs_dir(cache_dir) / f"{name}.json", tolerance)

    def __init__(self, name: str, path: Path, tolerance: float = 0.0) -> None:
        if not path.exists():
            saved = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.exists() else []
            raise ValueError(f"no saved run {name!r} at {path}; saved runs: {saved or 'none'} "
                             "(store one with --lvlm-save NAME)")
        data = json.loads(path.read_text())
        self.name, self.tolerance = name, tolerance
        self.metrics = {(r["model"], r["setting"], r["task"]): r["metrics"] for r in data["records"]}

    def breaches(self, record: Record) -> list[str]:
        saved = self.metrics.get(record.key)
        if saved is None:
            return []
        out = []
        for metric, value in record.metrics.items():
            if metric not in saved or higher_is_better(metric) is None:
                continue
            drop = worsening(metric, saved[metric], value)
            if drop > self.tolerance + 1e-12:
                out.append(f"{record.task} {metric} = {value:.4f} is {drop:.4f} worse than saved run "
                           f"{self.name!r} ({saved[metric]:.4f}); allowed {self.tolerance:.4f}")
        return out


def save_run(results, options, name: str) -> Path:
    """Store a whole run for later ``--lvlm-compare NAME``."""
    from .report import write_json

    path = runs_dir(options.cache_dir) / f"{name}.json"
    write_json(results, options, path)
    return path
