"""The non-test modes of the plugin, each a plain function of the parsed :class:`~.core.options.Options`:
``--lvlm-list-tasks`` / ``--lvlm-list-models`` (the registries as tables), ``--lvlm-merge`` (one report
from saved runs) and ``--lvlm-frontier`` (the safe-setting search). Each returns an exit code; bad input
is a ValueError the plugin turns into a usage error."""

from __future__ import annotations


from tabulate import tabulate

from .metrics import direction_mark
from .metrics.scorers import Scorers
from .engine.models import ALIASES, describe_model
from .tasks import TASKS, all_tasks


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
    """One row per model alias: where it comes from, its architecture, what to download, whether it is here."""
    rows = [[alias, *describe_model(alias)] for alias in ALIASES]
    return ("lvlmbench models (--model takes an alias, a local directory or a hub id)\n"
            + tabulate(rows, headers=["alias", "source", "architecture", "download", "available here"]))


def run_command(options, verbose: bool = False) -> int:
    """Run the mode ``options.command`` names; ValueError on bad input (before anything is evaluated)."""
    if options.command == "merge":
        return merge(options, verbose)
    if options.command == "frontier":
        return frontier(options)
    if options.list_tasks:
        print(task_table(Scorers(judge=JUDGE_PRESENT) if options.judge_url else None))
    if options.list_models:
        print(model_table())
    return 0


def frontier(options) -> int:
    """``--lvlm-frontier CAPS``: the fixed-sequence safe-setting search (:mod:`.analysis.frontier`) on each
    model, printed (and plotted with --lvlm-plot)."""
    from .analysis.frontier import families, pareto, point, search
    from .analysis.noninferiority import ALPHA
    from .analysis.proof import KV_UNCOMPRESSED
    from .core.settings import BASELINE
    from .engine.reruns import attach_noninferiority
    from .engine.session import Session
    from .report.plots import write_frontier_plot
    from .tasks import tasks_for

    session = Session(options)
    tasks = [t for c in options.frontier for t in tasks_for(c) if not t.unavailable(session.scorers)]
    if not tasks:
        raise ValueError(f"--lvlm-frontier {','.join(options.frontier)}: none of these capabilities' tasks can run "
                         "here")
    for model in options.models:
        baseline = {t.name: session.evaluate(model, BASELINE, t) for t in tasks}

        def evaluate(setting):
            records = [attach_noninferiority(session, session.evaluate(model, setting, t),
                                             {t.primary: options.margin}) for t in tasks]
            return point(setting, records, baseline, ALPHA)

        points, cheapest = search(options.settings, evaluate)
        rows = [[p.setting, f"{p.cost:.3f}", f"{p.worsening:+.3f} [{p.low:+.3f}, {p.high:+.3f}]",
                 "yes" if p.safe else "no", " ".join(("✓" if ok else "✗") + task for task, ok in p.verdicts.items())]
                for p in sorted(points, key=lambda p: (p.kind, p.cost))]
        print(f"lvlmbench frontier: {model} on {', '.join(t.name for t in tasks)} (margin {options.margin}, "
              f"{options.limit or 'all'} items per task)\n"
              + tabulate(rows, headers=["setting", "bytes/float", "mean drop [95%]", "safe", "non-inferior per task"]))
        ladders = families(options.settings)
        print("cheapest non-inferior setting per family:")
        for family, best in cheapest.items():
            idle = best is not None and best.cost >= KV_UNCOMPRESSED
            first = ladders[family].make(ladders[family].rungs[0]).id
            print(f"  {family}: {best.setting if best else f'none (not even {first})'}"
                  + (" (compresses nothing here: every token stayed in full precision)" if idle else ""))
        print("Pareto front (cost vs mean drop): " + ", ".join(p.setting for p in pareto(points)))
        print(f"evaluated {len(points)} of the {sum(len(l.rungs) for l in ladders.values())} settings of "
              f"{len(ladders)} families (" + "; ".join(sorted({'/'.join(map(str, l.rungs)) for l in ladders.values()}))
              + ", each a fixed sequence stopping at the first unsafe)")
        if options.plot:
            write_frontier_plot(points, options.plot)
            print(f"lvlmbench: frontier plot written to {options.plot}")
    return 0


def merge(options, verbose: bool = False) -> int:
    """Print (and write, with --lvlm-report/-md/-csv) the report of saved runs combined; ValueError
    naming the files when they cannot be merged."""
    from .core.records import Results
    from .report.documents import write_json, write_tables
    from .report.tables import tables
    from .storage.runs import merge_runs

    _, records = merge_runs(options.merge)
    results = Results(records, order=(options.models, [setting.id for setting in options.settings], list(TASKS)))
    for table in tables(results, options, full=verbose):
        print(table)
    print(f"lvlmbench: merged {len(records)} records from {len(options.merge)} runs")
    if options.report:
        write_json(results, options, options.report)
    for line in write_tables(results, options):
        print(line)
    return 0
