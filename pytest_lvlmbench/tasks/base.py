"""A task is data: a loader, a prompt builder, an answer parser, a scorer and its metrics, registered once.

Like an lmms-eval task (``dataset_path``, ``doc_to_text``, ``process_results``, ``metric_list``), but
as one frozen dataclass whose fields are plain callables, so a task is written, read and tested
without the plugin. Samples only have to look like :class:`Sample`; nothing here knows a dataset.

Tasks outside this package register through the entry-point group ``lvlmbench.tasks`` (an entry
point names a module that calls :func:`register_task` on import, or a callable returning tasks) or
with ``--lvlm-include MODULE_OR_FILE``, like lmms-eval's external task path.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..metrics.scorers import SCORER_KINDS, Scorers
from ..core.capabilities import CAPABILITIES
from ..metrics import METRICS, SampleStats

ENTRY_POINT_GROUP = "lvlmbench.tasks"


@runtime_checkable
class Sample(Protocol):
    """One question about one image, whatever the dataset.

    ``question`` is the dataset's own text (the task adds its post-prompt), ``references`` the
    reference answers or label as text, ``meta`` anything the scorer or the bootstrap cluster
    needs (an image id, a counterfactual set, MME's question pair ...)."""

    id: str
    question: str
    references: tuple[str, ...]
    meta: Mapping[str, Any]

    def image(self) -> Any: ...


def cluster_of(sample: Sample) -> str:
    """What a bootstrap resamples whole: ``meta['cluster']`` when the task sets one, else the sample."""
    return str(sample.meta.get("cluster", sample.id))


def has_image(sample: Sample) -> bool:
    """Whether the question comes with a picture: a sample says so with ``has_image`` (text-only
    questions such as HallusionBench's non_image split), else it has one."""
    return bool(getattr(sample, "has_image", True))


def always_available() -> str | None:
    return None


@dataclass(frozen=True)
class Task:
    """One dataset (or split) measured for one capability.

    ``score`` receives the samples and the *parsed* answers and returns per-sample statistics
    for exactly ``metrics``; directions come from the metric registry. ``available`` returns
    None when the task can run here, else the reason it cannot (a missing dataset, how to get it).
    """

    name: str                      # shown in test ids, reports and thresholds keys
    capability: str
    dataset: str                   # where the samples come from (a hub id, or what generates them)
    load: Callable[[int | None], Sequence[Sample]]
    score: Callable[[Sequence[Sample], Sequence[Any]], dict[str, SampleStats]]
    metrics: tuple[str, ...]
    primary: str                   # the headline metric: reports, plots, "*" thresholds and model cards
    parse: Callable[[str], Any] = str.strip
    post_prompt: str = ""          # e.g. "\nAnswer the question using a single word or phrase."
    cluster: Callable[[Sample], str] = cluster_of
    max_new_tokens: int = 16
    available: Callable[[], str | None] = always_available
    description: str = ""
    judge: str = ""                # who decides correctness when no model judge is used; reported
    uses: tuple[str, ...] = ()     # scorers the score function takes as a third argument: "judge", "toxicity"
    requires_judge: bool = False   # without a model judge the task skips (MM-Vet); else it falls back (``judge``)
    judge_prompt: str = ""         # the official judge prompt template: its hash goes in the report
    subgroups: tuple[str, ...] = ()   # meta keys of counterfactual attributes: flips are counted per value

    def __post_init__(self) -> None:
        where = f"task {self.name!r}"
        if self.capability not in CAPABILITIES:
            raise ValueError(f"{where}: unknown capability {self.capability!r}, known are {CAPABILITIES}")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise ValueError(f"{where}: metrics {unknown} are not registered (pytest_lvlmbench.metrics."
                             "register_metric); registered are " + ", ".join(sorted(METRICS)))
        if self.primary not in self.metrics:
            raise ValueError(f"{where}: primary metric {self.primary!r} is not one of its metrics {self.metrics}")
        unknown_uses = [u for u in self.uses if u not in SCORER_KINDS]
        if unknown_uses:
            raise ValueError(f"{where}: uses {unknown_uses}; known scorers are {SCORER_KINDS}")
        if self.requires_judge and "judge" not in self.uses:
            raise ValueError(f"{where}: requires_judge without 'judge' in uses")
        if self.max_new_tokens < 1:
            raise ValueError(f"{where}: max_new_tokens must be positive, got {self.max_new_tokens}")

    def prompt(self, sample: Sample) -> str:
        """The user turn's text: the dataset's question plus the task's post-prompt."""
        return sample.question + self.post_prompt

    def statistics(self, samples: Sequence[Sample], predictions: Sequence[str],
                   scorers: Scorers | None = None) -> dict[str, SampleStats]:
        """Per-sample statistics of every metric, in the task's metric order. A task that ``uses`` a
        judge or a toxicity scorer gets ``scorers`` (default: no judge, the lexicon toxicity scorer)."""
        if len(samples) != len(predictions):
            raise ValueError(f"task {self.name!r}: {len(samples)} samples but {len(predictions)} predictions")
        parsed = [self.parse(p) for p in predictions]
        stats = (self.score(samples, parsed, scorers or Scorers()) if self.uses
                 else self.score(samples, parsed))
        if set(stats) != set(self.metrics):
            raise ValueError(f"task {self.name!r}: its scorer returned metrics {sorted(stats)}, "
                             f"the task declares {list(self.metrics)}")
        return {metric: stats[metric] for metric in self.metrics}

    def unavailable(self, scorers: Scorers | None = None) -> str | None:
        """Why the task cannot run here (its data is missing, it needs a judge and has none), or None;
        when both are missing, both, so the user fixes them in one go."""
        data = self.available()
        judge = (f"task {self.name!r} is scored by a model judge and none is configured: pass --lvlm-judge-url "
                 "URL --lvlm-judge-model NAME (an OpenAI-compatible endpoint; key in LVLMBENCH_JUDGE_API_KEY)"
                 if self.requires_judge and (scorers is None or scorers.judge is None) else None)
        return "; and ".join(reason for reason in (data, judge) if reason) or None

    def scored_by(self, scorers: Scorers | None = None) -> str:
        """Who decided correctness or toxicity for this run's records, as the report names it."""
        scorers = scorers or Scorers()
        said = []
        if "judge" in self.uses and scorers.judge is not None:
            said.append(scorers.judge.describe(self.judge_prompt))
        elif self.judge:
            said.append(self.judge)
        if "toxicity" in self.uses:
            said.append(f"toxicity scored by {scorers.toxicity.name}")
        return "; ".join(said)

    def __str__(self) -> str:
        return self.name


TASKS: dict[str, Task] = {}
_external_loaded = False


def register_task(task: Task) -> Task:
    """Add a task to the registry; a name already taken raises ValueError."""
    if not isinstance(task, Task):
        raise TypeError(f"register_task needs a Task, got {type(task).__name__}")
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def _register_all(result: object, origin: str) -> None:
    """Register what an entry point's callable returned: a Task, an iterable of them, or None."""
    if result is None:
        return
    for task in [result] if isinstance(result, Task) else result if isinstance(result, Iterable) else [result]:
        if not isinstance(task, Task):
            raise ValueError(f"{origin} returned {task!r}: expected Task objects")
        if TASKS.get(task.name) is not task:
            register_task(task)


def load_entry_points() -> None:
    """Import every ``lvlmbench.tasks`` entry point once; a broken one is an error naming it."""
    global _external_loaded
    if _external_loaded:
        return
    _external_loaded = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {point.name!r} ({point.value}) of group {ENTRY_POINT_GROUP!r}"
        try:
            loaded = point.load()
            _register_all(loaded() if callable(loaded) else None, origin)
        except Exception as error:
            raise ValueError(f"{origin} failed: {type(error).__name__}: {error}") from error


def include(spec: str) -> None:
    """Import a module by dotted name or a ``.py`` file by path; its import registers its tasks."""
    path = Path(spec).expanduser()
    if spec.endswith(".py") or path.exists():
        if not path.is_file():
            raise ValueError(f"--lvlm-include {spec!r}: no such Python file")
        name = f"lvlmbench_include_{path.stem}"
        if name in sys.modules:
            return
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[name]
            raise ValueError(f"--lvlm-include {spec!r} failed: {type(error).__name__}: {error}") from error
        return
    try:
        importlib.import_module(spec)
    except ImportError as error:
        raise ValueError(f"--lvlm-include {spec!r}: cannot import it ({error}); give a module name or a .py file") \
            from error


def all_tasks() -> list[Task]:
    """Every registered task, entry points included, in registration order."""
    load_entry_points()
    return list(TASKS.values())


def get_task(name: str) -> Task:
    load_entry_points()
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}: registered are {sorted(TASKS)}")
    return TASKS[name]


def tasks_for(capability: str) -> list[Task]:
    if capability not in CAPABILITIES:
        raise ValueError(f"unknown capability {capability!r}: known are {CAPABILITIES}")
    return [task for task in all_tasks() if task.capability == capability]


SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
