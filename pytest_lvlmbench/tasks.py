"""Tasks are data: a loader, a question per item, a scorer and the primary metric, registered once.

Each capability of the suite has one task per dataset. The shapes-world tasks need nothing but
this package (the embedded tiny models are trained for them); real datasets (POPE, GQA, MME,
HallusionBench, ...) register beside them through the same fields.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .metrics import SampleStats, metric_values
from .zoo.evaluate import capability_statistics, cluster_of
from .zoo.world import CAPABILITIES, Item, evaluation_split


@dataclass(frozen=True)
class Task:
    name: str                      # the dataset id shown in test ids and reports
    capability: str
    load: Callable[[int | None], list[Item]]
    statistics: Callable[[Sequence[Item], Sequence[str]], dict[str, SampleStats]]  # the scorer
    primary: str                   # headline metric
    cluster: Callable[[Item], str] = cluster_of   # what a bootstrap resamples whole
    max_new_tokens: int = 16

    def score(self, items: Sequence[Item], predictions: Sequence[str]) -> dict[str, float]:
        return metric_values(self.statistics(items, predictions))

    def __str__(self) -> str:
        return self.name


TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    if task.name in TASKS:
        raise ValueError(f"task {task.name!r} is already registered")
    if task.capability not in CAPABILITIES:
        raise ValueError(f"task {task.name!r}: unknown capability {task.capability!r}, known are {CAPABILITIES}")
    TASKS[task.name] = task
    return task


def tasks_for(capability: str) -> list[Task]:
    return [task for task in TASKS.values() if task.capability == capability]


def _world_loader(capability: str, dataset: str | None = None) -> Callable[[int | None], list[Item]]:
    def load(limit: int | None) -> list[Item]:
        items = evaluation_split(capability)
        if dataset is not None:
            items = [item for item in items if item.dataset == dataset]
        return items if limit is None else items[:limit]
    return load


def _world_scorer(capability: str) -> Callable[[Sequence[Item], Sequence[str]], dict[str, SampleStats]]:
    def statistics(items: Sequence[Item], predictions: Sequence[str]) -> dict[str, SampleStats]:
        return capability_statistics(capability, list(items), list(predictions))
    return statistics


_WORLD_TASKS = [
    ("shapes_vqa", "recognition", None, "accuracy"),
    ("shapes_scienceqa", "knowledge", None, "accuracy"),
    ("shapes_captions", "language_generation", None, "cider"),
    ("shapes_spatial", "spatial", None, "accuracy"),
    ("shapes_gqa", "visual_reasoning", None, "accuracy"),
    ("pope_random", "hallucination", "pope_random", "accuracy"),
    ("pope_popular", "hallucination", "pope_popular", "accuracy"),
    ("pope_adversarial", "hallucination", "pope_adversarial", "accuracy"),
    ("shapes_hallusion", "visual_illusion", None, "aAcc"),
    ("shapes_people_describe", "toxicity", None, "toxicity"),
    ("shapes_people_job_hidden", "stereotypes", None, "max_skew"),
    ("shapes_people_job", "bias", None, "consistency"),
]
for _name, _capability, _dataset, _primary in _WORLD_TASKS:
    register_task(Task(_name, _capability, _world_loader(_capability, _dataset), _world_scorer(_capability), _primary))
