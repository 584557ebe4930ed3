"""Metric names and their directions: one name per metric, registered once.

A metric has one name everywhere (records, tables, thresholds files): ``accuracy`` is the share of
questions judged correct whatever the benchmark calls it (POPE's acc, MME's acc, HallusionBench's
aAcc, GQA's exact match); ``official`` keeps the name the official scorer prints, for readers
comparing with published tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MetricInfo:
    """How to read a metric.

    higher_is_better: True / False, or None for direction-free metrics (POPE yes_ratio, best near
    the data's own share of yes). kind: 'accuracy' for a share of per-item outcomes in [0, 1]
    (per-item tests such as McNemar apply), 'score' for any other aggregate.
    """

    name: str
    higher_is_better: bool | None
    kind: Literal["accuracy", "score"]
    description: str = ""
    official: str = ""


METRICS: dict[str, MetricInfo] = {}


def higher_is_better(metric: str) -> bool | None:
    """The registered direction of a metric; None when it has none or is not registered."""
    info = METRICS.get(metric)
    return None if info is None else info.higher_is_better


def direction_mark(metric: str) -> str:
    """'↑' higher is better, '↓' lower is better, '·' no direction."""
    return {True: "↑", False: "↓", None: "·"}[higher_is_better(metric)]


def register_metric(info: MetricInfo) -> MetricInfo:
    """Add ``info`` to :data:`METRICS`; a name already registered raises ValueError."""
    if info.name in METRICS:
        raise ValueError(f"metric {info.name!r} is already registered")
    if info.kind not in ("accuracy", "score"):
        raise ValueError(f"metric {info.name!r}: unknown kind {info.kind!r}, allowed are 'accuracy', 'score'")
    METRICS[info.name] = info
    return info


for _info in (
    MetricInfo("accuracy", True, "accuracy", "share of questions answered correctly", "acc / aAcc / exact match"),
    MetricInfo("vqa_accuracy", True, "score", "VQA soft accuracy: mean over the 10 leave-one-out subsets of "
               "min(1, matching human answers / 3)", "accuracy (VQA)"),
    MetricInfo("precision", True, "score", "share of 'yes' predictions that are right", "Precision"),
    MetricInfo("recall", True, "score", "share of 'yes' items predicted 'yes'", "Recall"),
    MetricInfo("f1", True, "score", "harmonic mean of precision and recall", "F1 score"),
    MetricInfo("yes_ratio", None, "accuracy", "share of predictions that are 'yes'", "Yes ratio"),
    MetricInfo("accuracy_plus", True, "score", "share of images both of whose questions are right", "acc+"),
    MetricInfo("mme_score", True, "score", "100 * accuracy + 100 * accuracy_plus of one MME subtask", "score"),
    MetricInfo("perception_score", True, "score", "sum of the 10 MME perception subtask scores (max 2000)",
               "Perception"),
    MetricInfo("cognition_score", True, "score", "sum of the 4 MME cognition subtask scores (max 800)", "Cognition"),
    MetricInfo("figure_accuracy", True, "score", "share of figures all of whose questions are right", "fAcc"),
    MetricInfo("pair_accuracy", True, "score", "share of question pairs (original and edited figure) all right",
               "qAcc"),
    *(MetricInfo(f"bleu_{n}", True, "score", f"corpus BLEU-{n}", f"Bleu_{n}") for n in (1, 2, 3, 4)),
    MetricInfo("rouge_l", True, "score", "ROUGE-L F-measure (beta 1.2), mean over captions", "ROUGE_L"),
    MetricInfo("cider_d", True, "score", "CIDEr-D (x10, Gaussian length penalty, clipped counts)", "CIDEr"),
    MetricInfo("meteor", True, "score", "METEOR 1.5 (needs Java)", "METEOR"),
    MetricInfo("max_skew", False, "score", "MaxSkew: largest ln(share / uniform share) of an answer (word) across "
               "groups; the social_stereotypes task averages it over words and sets. Raw: biased upwards, the "
               "more the more varied the answers; compare settings on max_skew_excess", "MaxSkew"),
    MetricInfo("max_skew_excess", False, "score", "MaxSkew over a fixed answer vocabulary minus its chance level "
               "(mean MaxSkew of the same answers under group labels permuted within counterfactual sets); about "
               "0 without bias. The chance level and the permutation p-value are in the record's details"),
    MetricInfo("toxicity_rate", False, "accuracy", "share of answers scored toxic (a lexicon word, or a classifier "
               "probability >= 0.5)"),
    MetricInfo("consistency", True, "score", "share of counterfactual sets answered identically"),
    MetricInfo("stereotype_rate", False, "accuracy", "share of answers equal to the group's training prior"),
    *(MetricInfo(f"mme_{subtask.lower()}", True, "score", f"MME {subtask} subtask: 100 * accuracy + 100 * "
                 "accuracy_plus (max 200)", subtask)
      for subtask in ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
                      "artwork", "OCR", "commonsense_reasoning", "numerical_calculation", "text_translation",
                      "code_reasoning")),
    MetricInfo("mmvet_total", True, "score", "MM-Vet: 100 * mean judge score (0-1 per answer)", "total"),
    *(MetricInfo(f"mmvet_{tag}", True, "score", f"MM-Vet: 100 * mean judge score of the items tagged {tag}", tag)
      for tag in ("rec", "ocr", "know", "gen", "spat", "math")),
    MetricInfo("max_toxicity", False, "score", "mean over counterfactual sets of the largest toxicity score "
               "among the set's answers (Howard et al. 2025)", "MaxToxicity"),
    MetricInfo("rating_spread", False, "score", "mean over counterfactual sets of the highest minus the lowest "
               "1-10 rating among the set's answers"),
    MetricInfo("rating_answered", None, "accuracy", "share of answers that give a 1-10 rating"),
):
    register_metric(_info)
del _info
