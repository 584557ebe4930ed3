"""POPE (Li et al., EMNLP 2023) from ``lmms-lab/POPE``: object-existence yes/no questions on COCO
val2014 images, negatives sampled three ways, one task per way.

Rows come from config ``default``, split ``test`` (9,000 rows: 3,000 per ``category``). The prompt is
LLaVA's (``docs/Evaluation.md``): the question plus "\\nAnswer the question using a single word or
phrase."; scoring is LLaVA's ``eval_pope`` per category (:func:`~pytest_lvlmbench.metrics.pope_parse`,
:func:`~pytest_lvlmbench.metrics.pope_statistics`). LLaVA publishes the mean F1 of the three.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import metrics
from .data import HubDataset, HubSample, available_check, hub_loader
from .base import SHORT_ANSWER, Task, register_task

POPE = HubDataset("lmms-lab/POPE", "default", "test",
                  {"question_id": "string", "question": "string", "answer": "string", "image_source": "string",
                   "image": "image", "category": "string"})
CATEGORIES = ("adversarial", "popular", "random")


def pope_sample(row: dict) -> HubSample:
    return HubSample(id=str(row["question_id"]), question=row["question"], references=(row["answer"],),
                     meta={"category": row["category"], "cluster": row["image_source"]},
                     image_value=row["image"], source=POPE.repo)


def pope_task_scores(samples: Sequence[HubSample], answers: Sequence[str]) -> dict[str, metrics.SampleStats]:
    return metrics.pope_statistics(list(answers), [sample.references[0] for sample in samples])


POPE_TASKS = tuple(
    register_task(Task(
        f"pope_{category}", "hallucination", POPE.repo,
        hub_loader(POPE, pope_sample, where=lambda row, category=category: row["category"] == category,
                   selects=f"questions of category {category!r}"),
        pope_task_scores, ("f1", "accuracy", "precision", "recall", "yes_ratio"), "f1",
        parse=metrics.pope_parse, post_prompt=SHORT_ANSWER, max_new_tokens=16, available=available_check(POPE),
        description=f"POPE {category}: does the COCO image contain the object? (LLaVA eval_pope)"))
    for category in CATEGORIES)
