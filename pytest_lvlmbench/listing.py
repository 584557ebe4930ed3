"""What ``--lvlm-list-tasks`` and ``--lvlm-list-models`` print: the registries as tables."""

from __future__ import annotations

from tabulate import tabulate

from .metrics import direction_mark
from .judges import Scorers
from .models import ALIASES, describe_model
from .tasks import all_tasks


SHOWN_METRICS = 5   # the rest (MME's per-subtask scores) is counted, keeping the table narrow


def task_table(scorers: Scorers | None = None) -> str:
    """One row per registered task: capability, dataset, metrics with their direction (the primary
    starred), and whether it runs here, offline (else why not, in short; the full reasons, with
    how to get each dataset, follow the table)."""
    rows, reasons = [], {}
    for task in all_tasks():
        reason = task.unavailable(scorers)
        marked = [f"{m}{direction_mark(m)}" + ("*" if m == task.primary else "") for m in task.metrics]
        metrics = ", ".join(marked[:SHOWN_METRICS]) + (f", +{len(marked) - SHOWN_METRICS} more"
                                                       if len(marked) > SHOWN_METRICS else "")
        if reason is None:
            here = "yes"
        elif isinstance(task.unavailable(Scorers(judge=JUDGE_PRESENT)), str):
            here = "no (not downloaded)"
            reasons.setdefault(reason, task.name)
        else:
            here = "no (needs a judge)"
            reasons.setdefault(reason, task.name)
        rows.append([task.name, task.capability, task.dataset, metrics, here])
    return ("lvlmbench tasks (↑ higher is better, ↓ lower is better, · no direction; * primary metric)\n"
            + tabulate(rows, headers=["task", "capability", "dataset", "metrics", "offline"])
            + "".join(f"\n- {reason}" for reason in reasons))


class _AnyJudge:
    """Stands for "some judge is configured" when telling a missing dataset from a missing judge."""

    name = "any judge"


JUDGE_PRESENT = _AnyJudge()


def model_table() -> str:
    """One row per model alias: where it comes from, its architecture, whether it is here."""
    rows = [[alias, *describe_model(alias)] for alias in ALIASES]
    return ("lvlmbench models (--model takes an alias, a local directory or a hub id)\n"
            + tabulate(rows, headers=["alias", "source", "architecture", "available here"]))
