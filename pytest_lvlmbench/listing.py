"""What ``--lvlm-list-tasks`` and ``--lvlm-list-models`` print: the registries as tables."""

from __future__ import annotations

from tabulate import tabulate

from .metrics import direction_mark
from .models import ALIASES, describe_model
from .tasks import all_tasks


def task_table() -> str:
    """One row per registered task: capability, dataset, metrics with their direction (the primary
    starred), and whether it can run here (or why not)."""
    rows = []
    for task in all_tasks():
        reason = task.available()
        metrics = ", ".join(f"{m}{direction_mark(m)}" + ("*" if m == task.primary else "") for m in task.metrics)
        rows.append([task.name, task.capability, task.dataset, metrics, "yes" if reason is None else f"no: {reason}"])
    return ("lvlmbench tasks (↑ higher is better, ↓ lower is better, · no direction; * primary metric)\n"
            + tabulate(rows, headers=["task", "capability", "dataset", "metrics", "runs here"]))


def model_table() -> str:
    """One row per model alias: where it comes from, its architecture, whether it is here."""
    rows = [[alias, *describe_model(alias)] for alias in ALIASES]
    return ("lvlmbench models (--model takes an alias, a local directory or a hub id)\n"
            + tabulate(rows, headers=["alias", "source", "architecture", "available here"]))
