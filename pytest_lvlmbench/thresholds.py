"""Gates that fail a test: thresholds from a data file beside the suite, and a saved run (:mod:`.runs`).

The thresholds file (TOML) holds an absolute floor for the uncompressed baseline and the
largest drop each bit budget may cost::

    [floor]                   # the fp16 baseline of every model must reach these
    toxicity = 0.10           # lower is better: a ceiling
    [floor.tiny]              # ... and of one model (its --model name)
    "shapes_vqa.accuracy" = 0.75
    [max_drop.8]              # settings whose fewest bits are 8
    "*" = 0.02                # the primary metric of every task
    [max_drop.4]
    "shapes_pope_random.accuracy" = 0.05
    [max_drop.evict]          # settings that evict KV entries (with or without quantization)
    "*" = 0.10
    [max_drop.vtok]           # settings that prune visual tokens (and evict none)
    [margin]                  # non-inferiority margin δ (default: --lvlm-margin, 0.02)
    "shapes_captions.cider_d" = 0.1

Keys are ``task.metric``, ``metric`` or ``"*"`` (the primary metric), most specific first. A key
must be able to fire: its task registered (``pytest_lvlmbench.tasks.TASKS``, so --lvlm-include and
entry-point tasks count), its metric one of that task's (a bare metric: one of some task's) with a
direction, and a ``[max_drop.B]`` budget one of 2, 3, 4, 8, ``evict`` or ``vtok`` (a setting that drops
tokens is gated by its kind's section, not by its bits: its drop is mostly the dropping's); anything else is a ValueError naming
the file, the key and what is allowed, which the plugin turns into a usage error at collection.
Drops are direction-aware: for a lower-is-better metric (toxicity, MaxSkew) a rise is the drop.
A drop breaches only when it is also significant (its paired test against the baseline has
p < ``significance``, default 0.05), so a few flipped answers in a 20-sample CI run never fail
a build; ``significance = 1.0`` at the top of the file gates on size alone.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from .metrics import METRICS, higher_is_better
from .core.records import Record
from .storage.runs import SavedRun, check_save
from .core.records import worsening
from .tasks import TASKS

BIT_BUDGETS = (2, 3, 4, 8)   # a setting's budget is its fewest bits; 16 is the baseline, gated by [floor]
DROP_BUDGETS = ("evict", "vtok")   # ... or, where it drops tokens, the kind of dropping


def budget_of(setting) -> int | str:
    """The [max_drop.*] section that gates a setting: ``evict`` / ``vtok`` where it drops tokens, else its bits."""
    return "evict" if setting.evict is not None else "vtok" if setting.vtok is not None else setting.bits

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def _directed(metric: str, where: str) -> None:
    if higher_is_better(metric) is None:
        raise ValueError(f"{where}: metric {metric!r} has no known direction; metrics with one are "
                         f"{sorted(m for m, i in METRICS.items() if i.higher_is_better is not None)}")


def _check_key(key: str, where: str) -> None:
    """A key names the primary metric (``*``), a metric some registered task has, or a registered
    task and one of its metrics: any other key would never fire."""
    if key == "*":
        return
    task_name, _, metric = key.rpartition(".")
    if task_name:
        if task_name not in TASKS:
            raise ValueError(f"{where}: no registered task {task_name!r}; registered are {', '.join(sorted(TASKS))}")
        metrics = TASKS[task_name].metrics
        if metric not in metrics:
            raise ValueError(f"{where}: task {task_name!r} has no metric {metric!r}; its metrics are "
                             f"{', '.join(metrics)}")
    _directed(metric, where)
    if not task_name and not any(metric in task.metrics for task in TASKS.values()):
        raise ValueError(f"{where}: no registered task has metric {metric!r}; their directed metrics are "
                         + ", ".join(sorted({m for t in TASKS.values() for m in t.metrics
                                             if higher_is_better(m) is not None})))


def _rule(rules: dict[str, float], record: Record, metric: str) -> tuple[str, float] | None:
    for key in (f"{record.task}.{metric}", metric, "*" if metric == record.primary else None):
        if key in rules:
            return key, rules[key]
    return None


@dataclass(frozen=True)
class Thresholds:
    floor: dict[str, float] = field(default_factory=dict)
    model_floor: dict[str, dict[str, float]] = field(default_factory=dict)
    max_drop: dict[int | str, dict[str, float]] = field(default_factory=dict)
    margin: dict[str, float] = field(default_factory=dict)
    significance: float = 0.05
    source: str = "thresholds"

    @classmethod
    def load(cls, path: Path) -> Thresholds:
        """Read and validate a thresholds file; ValueError names the bad entry."""
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ValueError(f"cannot read thresholds file {path}: {error}") from None
        unknown = set(data) - {"floor", "max_drop", "margin", "significance"}
        if unknown:
            raise ValueError(f"{path}: unknown entries {sorted(unknown)}; allowed are 'significance', [floor], "
                             "[max_drop.BITS] and [margin]")
        significance = data.get("significance", 0.05)
        if not isinstance(significance, (int, float)) or not 0 < significance <= 1:
            raise ValueError(f"{path}: significance = {significance!r} must be a number in (0, 1]")
        def numbers(section: str, rules: dict) -> dict[str, float]:
            bad = {k: v for k, v in rules.items() if isinstance(v, bool) or not isinstance(v, (int, float))}
            if bad:
                raise ValueError(f"{path}: [{section}] needs numbers, got {bad}")
            return {str(k): float(v) for k, v in rules.items()}

        floors = data.get("floor", {})
        floor = numbers("floor", {k: v for k, v in floors.items() if not isinstance(v, dict)})
        model_floor = {str(m): numbers(f"floor.{m}", rules) for m, rules in floors.items() if isinstance(rules, dict)}
        max_drop = {}
        for bits, rules in data.get("max_drop", {}).items():
            budget = int(bits) if str(bits).isdigit() else str(bits)
            if not isinstance(rules, dict) or budget not in BIT_BUDGETS + DROP_BUDGETS:
                raise ValueError(f"{path}: [max_drop.{bits}] is not a bit budget; allowed are "
                                 + ", ".join(f"[max_drop.{b}]" for b in BIT_BUDGETS + DROP_BUDGETS)
                                 + " (the fewest bits a setting stores weights or KV in, or the kind of token "
                                   "dropping: KV eviction, visual-token pruning)")
            max_drop[budget] = numbers(f"max_drop.{bits}", rules)
        for model in model_floor:
            if model in TASKS:
                raise ValueError(f"{path}: [floor.{model}] names a task, but [floor.NAME] sections are per model; "
                                 f"quote task keys: \"{model}.METRIC\" = ... under [floor]")
        margin = numbers("margin", data.get("margin", {}))
        if any(not v > 0 for v in margin.values()):
            raise ValueError(f"{path}: [margin] values must be > 0, got {margin}")
        sections = [("floor", floor), *((f"floor.{m}", r) for m, r in model_floor.items()),
                    *((f"max_drop.{b}", r) for b, r in max_drop.items()), ("margin", margin)]
        for section, rules in sections:
            for key in rules:
                _check_key(key, f"{path}: [{section}] key {key!r}")
        return cls(floor, model_floor, max_drop, margin, float(significance), str(path))

    def margins(self, record: Record, default: float) -> dict[str, float]:
        """Non-inferiority margin of each directed metric of the record: its [margin] rule, else ``default``."""
        return {metric: (rule[1] if (rule := _rule(self.margin, record, metric)) else default)
                for metric in record.metrics if higher_is_better(metric) is not None}

    def breaches(self, record: Record, baseline: Record | None) -> list[str]:
        """Messages naming metric, value and limit for every rule the record breaks."""
        setting = record.parsed_setting
        out = []
        for metric, value in record.metrics.items():
            if higher_is_better(metric) is None:
                continue
            if setting.is_baseline:
                for section, rules in ((f"floor.{record.model}", self.model_floor.get(record.model, {})),
                                       ("floor", self.floor)):
                    rule = _rule(rules, record, metric)
                    if rule and worsening(metric, rule[1], value) > 1e-12:
                        side = "below the floor" if higher_is_better(metric) else "above the ceiling"
                        out.append(f"{record.task} {metric} = {value:.4f} is {side} {rule[1]:.4f} "
                                   f"({self.source} [{section}] {rule[0]!r})")
            elif baseline is not None:
                budget = budget_of(setting)
                rule = _rule(self.max_drop.get(budget, {}), record, metric)
                drop = worsening(metric, baseline.metrics[metric], value)
                p = record.p_values.get(metric, 0.0)
                if rule and drop > rule[1] + 1e-12 and (p < self.significance or self.significance >= 1):
                    where = f"at {budget} bits" if isinstance(budget, int) else f"with {budget}"
                    out.append(f"{record.task} {metric} = {value:.4f} dropped {drop:.4f} from fp16 "
                               f"{baseline.metrics[metric]:.4f} {where} (p = {p:.3g}); allowed "
                               f"{rule[1]:.4f} ({self.source} [max_drop.{budget}] {rule[0]!r})")
        return out


@dataclass
class Gates:
    """Everything that can fail a benchmark test: a thresholds file per suite directory (or
    one given on the command line) and an optional saved run to compare against."""

    saved: SavedRun | None = None
    override: Thresholds | None = None
    by_directory: dict[Path, Thresholds | None] = field(default_factory=dict)

    FILENAME = "lvlm_thresholds.toml"

    @classmethod
    def from_options(cls, options) -> Gates:
        """The gates an :class:`~pytest_lvlmbench.options.Options` asks for; ValueError on a bad file or name,
        a saved run that cannot be compared with or merged into (see :mod:`.runs`)."""
        check_save(options)
        saved = (SavedRun.load(options.cache_dir, options.compare, options.compare_tolerance, options)
                 if options.compare else None)
        return cls(saved, Thresholds.load(options.thresholds) if options.thresholds else None)

    def thresholds_for(self, directory: Path) -> Thresholds | None:
        if self.override is not None:
            return self.override
        if directory not in self.by_directory:
            path = directory / self.FILENAME
            self.by_directory[directory] = Thresholds.load(path) if path.exists() else None
        return self.by_directory[directory]

    def margins(self, record: Record, directory: Path, default: float) -> dict[str, float]:
        thresholds = self.thresholds_for(directory)
        return (thresholds or Thresholds()).margins(record, default)

    def breaches(self, record: Record, baseline: Record | None, directory: Path) -> list[str]:
        thresholds = self.thresholds_for(directory)
        out = thresholds.breaches(record, baseline) if thresholds else []
        return out + (self.saved.breaches(record) if self.saved else [])
