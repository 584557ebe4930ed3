"""Published FP16 scores of the real checkpoints, and the guard that compares a run's baseline with them.

A compression delta is only as good as its baseline: a prompt, template or scorer that differs
from the published setup shifts FP16 and every setting with it. When a run evaluates a full dataset
(no ``--lvlm-limit``) in FP16 on a checkpoint listed here, the report shows its score beside the
published one and flags a relative gap above ``--lvlm-published-tolerance`` (default 3%);
``--lvlm-published-check fail`` fails the baseline test instead.

Source of every number: haotian-liu/LLaVA ``docs/MODEL_ZOO.md`` (c121f04), the original LLaVA
checkpoints evaluated with LLaVA's own scripts (system line in the prompt; the llava-hf chat templates
have none, see /docs of this repo) — llava-hf conversions may differ slightly, hence the tolerance.
Not listed, on purpose: VizWiz (published on test-dev; the suite scores val), HallusionBench (the
published "LLaVA-1.5" row does not say which size), MME cognition and COCO captions of LLaVA-1.5
(never published), and MM-Vet whenever the judge is not gpt-4-0613 (the table's judge).

Other families (:data:`FAMILY_SCORES`; research notes in docs/dev/family-prompts-baselines.md): Qwen2-VL
from its technical report (arXiv 2409.12191, image-benchmark table; the QwenLM/Qwen2-VL README gives the
same values), Qwen2.5-VL and SmolVLM from their model cards (read in copies of the cards; the hub is
unreachable here). Their TextVQA is val without OCR tokens (``textvqa_ocr_free``), their MME one sum of
perception and cognition, their MM-Vet judged by GPT-4-Turbo (VLMEvalKit's name for gpt-4-1106-preview,
the only judge accepted for them). Not listed: HallusionBench "avg" (the cards do not define it), Gemma
3's TextVQA (split not stated), and the families whose tables could not be read (LLaVA-OneVision,
InternVL3, Idefics3, SmolVLM2).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

MODEL_ZOO = "haotian-liu/LLaVA docs/MODEL_ZOO.md (c121f04)"
PUBLISHED_JUDGE = "gpt-4-0613"


@dataclass(frozen=True)
class PublishedScore:
    """A published FP16 score: ``metric`` averaged over ``tasks`` (POPE's number is the mean F1 of its
    three splits), in the suite's units (shares in [0, 1], MME and MM-Vet in their own points)."""

    model: str            # hub id of the checkpoint
    tasks: tuple[str, ...]
    metric: str
    value: float
    source: str = MODEL_ZOO
    judges: tuple[str, ...] = (PUBLISHED_JUDGE,)   # MM-Vet: the judge(s) the number was graded by (prefixes)
    total: bool = False            # the sum over the tasks (MME's perception + cognition), not the mean
    task_metrics: tuple[str, ...] = ()   # a metric per task where they differ (the sum's parts)

    @property
    def judged(self) -> bool:
        return self.metric.startswith("mmvet_")

    def measured(self, baselines: Mapping[str, Mapping[str, float]]) -> float:
        """The number the publication reports, from the full FP16 baselines of its tasks."""
        values = [baselines[t][m] for t, m in zip(self.tasks, self.task_metrics or (self.metric,) * len(self.tasks))]
        return sum(values) if self.total else sum(values) / len(values)


POPE_TASKS = ("pope_adversarial", "pope_popular", "pope_random")
_ROWS = {  # hub id: (GQA, SQA-IMG, TextVQA, POPE F1, MME perception, MME cognition, MM-Vet)
    "llava-hf/llava-1.5-7b-hf": (62.0, 66.8, 58.2, 85.9, 1510.7, None, 31.1),
    "llava-hf/llava-1.5-13b-hf": (63.3, 71.6, 61.3, 85.9, 1531.3, None, 36.1),
    "llava-hf/llava-v1.6-vicuna-7b-hf": (64.2, 70.1, 64.9, 86.5, 1519.0, 332.0, 43.9),
    "llava-hf/llava-v1.6-mistral-7b-hf": (64.8, 72.8, 65.7, 86.7, 1498.0, 321.0, 47.3),
}
_COLUMNS = ((("gqa",), "accuracy", 0.01), (("scienceqa_img",), "accuracy", 0.01), (("textvqa",), "vqa_accuracy", 0.01),
            (POPE_TASKS, "f1", 0.01), (("mme_perception",), "perception_score", 1.0),
            (("mme_cognition",), "cognition_score", 1.0), (("mmvet",), "mmvet_total", 1.0))
# LLaVA-1.6's TextVQA numbers match the prompt without the OCR line (LLaVA issue #1326: llava-v1.6-vicuna-7b
# gives 61.3 with it, 64.9 without); LLaVA-1.5's were measured with it (llava_textvqa_val_v051_ocr.jsonl).
_OCR_FREE_TEXTVQA = ("llava-hf/llava-v1.6-vicuna-7b-hf", "llava-hf/llava-v1.6-mistral-7b-hf")


def _tasks(model: str, tasks: tuple[str, ...]) -> tuple[str, ...]:
    return ("textvqa_ocr_free",) if tasks == ("textvqa",) and model in _OCR_FREE_TEXTVQA else tasks


QWEN2_VL_REPORT = "Qwen2-VL technical report (arXiv 2409.12191), image benchmarks table"
QWEN25_VL_CARD = "Qwen/Qwen2.5-VL-7B-Instruct model card, image benchmark table"
MME_SUM = dict(tasks=("mme_perception", "mme_cognition"), metric="mme_sum", total=True,
               task_metrics=("perception_score", "cognition_score"))
# VLMEvalKit's "GPT-4-Turbo" judge is gpt-4-1106-preview (its judge model_map); the later gpt-4-turbo
# (2024-04-09) is another model, so it is not accepted
TURBO = ("gpt-4-1106-preview",)
FAMILY_SCORES = (
    PublishedScore("Qwen/Qwen2-VL-2B-Instruct", ("textvqa_ocr_free",), "vqa_accuracy", 0.797, QWEN2_VL_REPORT),
    PublishedScore("Qwen/Qwen2-VL-7B-Instruct", ("textvqa_ocr_free",), "vqa_accuracy", 0.843, QWEN2_VL_REPORT),
    PublishedScore(value=1872.0, model="Qwen/Qwen2-VL-2B-Instruct", source=QWEN2_VL_REPORT, **MME_SUM),
    PublishedScore(value=2326.8, model="Qwen/Qwen2-VL-7B-Instruct", source=QWEN2_VL_REPORT, **MME_SUM),
    PublishedScore("Qwen/Qwen2-VL-2B-Instruct", ("mmvet",), "mmvet_total", 49.5, QWEN2_VL_REPORT, TURBO),
    PublishedScore("Qwen/Qwen2-VL-7B-Instruct", ("mmvet",), "mmvet_total", 62.0, QWEN2_VL_REPORT, TURBO),
    PublishedScore("Qwen/Qwen2.5-VL-7B-Instruct", ("textvqa_ocr_free",), "vqa_accuracy", 0.849, QWEN25_VL_CARD),
    PublishedScore("Qwen/Qwen2.5-VL-7B-Instruct", ("mmvet",), "mmvet_total", 67.1, QWEN25_VL_CARD, TURBO),
    PublishedScore(value=2347.0, model="Qwen/Qwen2.5-VL-7B-Instruct", **MME_SUM,
                   source="Qwen/Qwen2.5-Omni-7B model card, image-to-text table, column Qwen2.5-VL-7B"),
    PublishedScore("Qwen/Qwen2.5-VL-3B-Instruct", ("textvqa_ocr_free",), "vqa_accuracy", 0.793,
                   "Qwen/Qwen2.5-VL-3B-Instruct model card, image benchmark table"),
    PublishedScore("HuggingFaceTB/SmolVLM-Instruct", ("textvqa_ocr_free",), "vqa_accuracy", 0.727,
                   "HuggingFaceTB/SmolVLM-Instruct model card, benchmarks table"),
)
PUBLISHED = tuple(PublishedScore(model, _tasks(model, tasks), metric, value * unit)
                  for model, row in _ROWS.items()
                  for (tasks, metric, unit), value in zip(_COLUMNS, row) if value is not None) + FAMILY_SCORES


@dataclass(frozen=True)
class PublishedCheck:
    """A full-dataset FP16 score beside its published value."""

    tasks: tuple[str, ...]
    metric: str
    measured: float
    published: float
    tolerance: float
    source: str

    @property
    def gap(self) -> float:
        """Relative gap (measured - published) / published."""
        return (self.measured - self.published) / self.published

    @property
    def drifted(self) -> bool:
        return abs(self.gap) > self.tolerance

    def message(self) -> str:
        what = "+".join(self.tasks) if len(self.tasks) > 1 else self.tasks[0]
        verdict = "DRIFT" if self.drifted else "ok"
        return (f"{what} {self.metric}: FP16 measured {self.measured:.4g}, published {self.published:.4g} "
                f"({self.gap:+.1%}, tolerance ±{self.tolerance:.0%}) {verdict} [{self.source}]")

    def as_dict(self) -> dict:
        return {**asdict(self), "gap": self.gap, "drifted": self.drifted}


def published_scores(model_source: str) -> list[PublishedScore]:
    return [score for score in PUBLISHED if score.model == model_source]


def check_published(model_source: str, task: str, baselines: Mapping[str, Mapping[str, float]],
                    tolerance: float, judge: str = "") -> list[PublishedCheck]:
    """The checks that ``task``'s full FP16 baseline completes: ``baselines`` maps task names to the
    metric values of full-dataset FP16 records of this model (``task`` included). A score over
    several tasks is checked once all of them are there; MM-Vet only when judged by the table's judge."""
    checks = []
    for score in published_scores(model_source):
        if task not in score.tasks or not all(t in baselines for t in score.tasks):
            continue
        if score.judged and not judge.startswith(score.judges):
            continue
        checks.append(PublishedCheck(score.tasks, score.metric, score.measured(baselines), score.value, tolerance,
                                     score.source))
    return checks


def published_table() -> list[list[str]]:
    """Rows (model, GQA, SQA-IMG, TextVQA, POPE F1, MME P, MME C, MM-Vet) for the README and listings."""
    return [[model, *("–" if v is None else f"{v:g}" for v in row)] for model, row in _ROWS.items()]

