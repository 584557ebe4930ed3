"""MM-Vet (Yu et al., ICML 2024) from ``lmms-lab/MMVet``: 218 open-ended questions that need one or
more of six capabilities (rec, ocr, know, gen, spat, math), graded 0-1 by a model judge.

Rows: config ``default``, split ``test``; ``capability`` holds the item's tags comma-separated. The
prompt is the bare question (haotian-liu/LLaVA ``scripts/v1_5/eval/mmvet.sh``: no suffix; lmms-eval's
"think step by step" pre-prompt of 2024 is not used), greedy. New tokens: 1024, as LLaVA's
``llava/eval/model_vqa.py`` (c121f04) hard-codes for MM-Vet (lmms-eval ``mmvet.yaml`` also 1024):
MM-Vet's explain/describe items run past 128 tokens, and a cut answer is graded lower.

Grading (:func:`~pytest_lvlmbench.metrics.judged.mmvet_statistics`): the official few-shot prompt
(``MMVET_PROMPT``, yuweihao/MM-Vet ``mm-vet_evaluator.py``), one run; total = 100 x mean score, a tag's
score = 100 x mean over the items carrying it. Without ``--lvlm-judge-url`` the tasks skip: MM-Vet
has no offline scorer. Four tasks share the generations (same prompt and image: the generation cache)
and the judge's grades (the judge cache): ``mmvet`` over all items with the total and the six tag
scores, and ``mmvet_knowledge`` / ``mmvet_generation`` / ``mmvet_spatial`` over the items tagged know /
gen / spat, with the total over that subset (equal to ``mmvet``'s tag score on the same items).
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import metrics
from .data import HubDataset, HubSample, available_check, hub_loader
from ..metrics.scorers import Scorers
from ..metrics.judged import MMVET_CAPABILITIES, MMVET_PROMPT, mmvet_statistics
from .base import Task, register_task

MMVET = HubDataset("lmms-lab/MMVet", "default", "test",
                   {"question_id": "string", "image": "image", "question": "string", "answer": "string",
                    "capability": "string"})
MMVET_MAX_NEW_TOKENS = 1024
NO_JUDGE = "MM-Vet has no offline scorer: it needs --lvlm-judge-url"


def mmvet_tags(capability: str) -> tuple[str, ...]:
    """The item's tags from lmms-lab's comma-separated ``capability`` ("rec,ocr" -> ("rec", "ocr"))."""
    return tuple(tag.strip() for tag in capability.split(",") if tag.strip())


def mmvet_sample(row: dict) -> HubSample:
    return HubSample(id=str(row["question_id"]), question=row["question"], references=(row["answer"],),
                     meta={"capability": row["capability"], "tags": mmvet_tags(row["capability"])},
                     image_value=row["image"], source=MMVET.repo)


def _judged(samples: Sequence[HubSample], answers: Sequence[str],
            scorers: Scorers) -> dict[str, metrics.SampleStats]:
    if scorers.judge is None:   # Task.unavailable skips first; this guards direct calls
        raise ValueError(f"MM-Vet needs a model judge: {NO_JUDGE}")
    items = [{"question": s.question, "answer": s.references[0], "capability": s.meta["capability"]} for s in samples]
    return mmvet_statistics(items, list(answers), scorers.judge)


def mmvet_scores(samples: Sequence[HubSample], answers: Sequence[str],
                 scorers: Scorers) -> dict[str, metrics.SampleStats]:
    """The total and the six capability scores."""
    return _judged(samples, answers, scorers)


def mmvet_subset_scores(samples: Sequence[HubSample], answers: Sequence[str],
                        scorers: Scorers) -> dict[str, metrics.SampleStats]:
    """The total over a tag's items (the task's loader keeps only those)."""
    return {"mmvet_total": _judged(samples, answers, scorers)["mmvet_total"]}


def _task(name: str, capability: str, score, metric_names: tuple[str, ...], tag: str | None, description: str) -> Task:
    where = None if tag is None else (lambda row, tag=tag: tag in mmvet_tags(row["capability"]))
    selects = "rows" if tag is None else f"items tagged {tag!r} (column 'capability')"
    return register_task(Task(
        name, capability, MMVET.repo, hub_loader(MMVET, mmvet_sample, where=where, selects=selects), score,
        metric_names, "mmvet_total", max_new_tokens=MMVET_MAX_NEW_TOKENS, available=available_check(MMVET),
        uses=("judge",), requires_judge=True, judge_prompt=MMVET_PROMPT, description=description))


MMVET_TASKS = (
    _task("mmvet", "recognition", mmvet_scores, ("mmvet_total", *(f"mmvet_{t}" for t in MMVET_CAPABILITIES)), None,
          "MM-Vet, all 218 items: judge-graded total and the six capability scores (official prompt)"),
    _task("mmvet_knowledge", "knowledge", mmvet_subset_scores, ("mmvet_total",), "know",
          "MM-Vet items tagged know: judge-graded total"),
    _task("mmvet_generation", "language_generation", mmvet_subset_scores, ("mmvet_total",), "gen",
          "MM-Vet items tagged gen: judge-graded total"),
    _task("mmvet_spatial", "spatial", mmvet_subset_scores, ("mmvet_total",), "spat",
          "MM-Vet items tagged spat: judge-graded total"),
)
