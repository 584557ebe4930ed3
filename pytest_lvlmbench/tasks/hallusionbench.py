"""HallusionBench (Guan et al., CVPR 2024) from ``lmms-lab/HallusionBench``: yes/no questions on
charts, tables, maps, illusions and video frames, asked on an original figure, on edited figures and
(visual-supplement questions) without any figure.

Rows: config ``default``, splits ``image`` (951 rows) then ``non_image`` (178 text-only rows, the
VS questions with ``figure_id`` "0"); together the official 1,129 questions of
tianyi-lab/HallusionBench ``HallusionBench.json``. lmms-eval reads ``image`` only (its
``hb_doc_to_visual`` would fail on a row without a picture), so its numbers are over 951 questions.
The prompt is the bare question, greedy, 128 new tokens (lmms-eval ``hallusion_bench_image.yaml``).

Scoring (:func:`~pytest_lvlmbench.metrics.hallusion_statistics`, tianyi-lab ``utils.py`` at 744007c):
aAcc (``accuracy``), fAcc (``figure_accuracy``), qAcc (``pair_accuracy``). With a model judge
(``--lvlm-judge-url``) each answer is judged by the official GPT prompt
(:func:`~pytest_lvlmbench.metrics.judged.hallusion_gpt_judge`); without one, by lmms-eval's offline
rule (``hb_aggregation_result_intern``: "yes" anywhere in the answer means "1"). The rule applies to
the non_image rows too: their ``gt_answer`` is "0"/"1" like every row's (95 "0", 83 "1" in the
official file); the rule never says "unclear", so the official "unclear counts as correct for VS
questions without a figure" (``assign_correctness``) only matters with the model judge.

Limits and clusters: a *set* (category, subcategory, set_id) holds every question pair (key
category_subcategory_set_id_question_id, which spans both splits: the no-figure question of a VS
pair is in ``non_image``) and every figure group (category_subcategory_set_id_figure_id). The loader
therefore reads both splits whole (1,129 rows) and, with ``--lvlm-limit N``, keeps whole sets in the
order of their first row (image split first) until at least N questions are kept: the limit counts
questions, rounded up to the end of the set that reaches it, so no pair or figure is cut. The
bootstrap cluster is the set, the smallest unit holding both kinds of group whole (clustering by
pair would split figure groups, whose outcome :func:`~pytest_lvlmbench.metrics.all_correct_stats`
keeps on their first question).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .. import metrics
from .data import HubDataset, HubSample, available_check, data_dirs, read_rows, require_samples
from ..metrics.scorers import Scorers
from ..metrics.judged import HALLUSION_JUDGE_PROMPT, hallusion_gpt_judge
from .base import Task, register_task

_COLUMNS = {"category": "string", "subcategory": "string", "visual_input": "string", "set_id": "string",
            "figure_id": "string", "question_id": "string", "question": "string", "gt_answer_details": "string",
            "gt_answer": "string"}
HALLUSION_IMAGE = HubDataset("lmms-lab/HallusionBench", "default", "image", {**_COLUMNS, "image": "image"})
HALLUSION_NON_IMAGE = HubDataset("lmms-lab/HallusionBench", "default", "non_image", _COLUMNS)
RULE_JUDGE = ("rule judge (lmms-eval's offline rule: 'yes' in the answer) — no --lvlm-judge-url; the published "
              "numbers are GPT-4-judged")
_RECORD_FIELDS = ("category", "subcategory", "set_id", "figure_id", "question_id", "visual_input", "gt_answer",
                  "gt_answer_details")


def set_key(row: Mapping) -> str:
    """The unit kept whole by limits and resampled whole by the bootstrap: category_subcategory_set_id."""
    return "_".join(str(row[field]) for field in ("category", "subcategory", "set_id"))


def hallusion_sample(row: dict, source: HubDataset) -> HubSample:
    """One question; ``id`` is the official question key category_subcategory_setid_figureid_questionid.
    ``image_value`` is None for the non_image split (a text-only question)."""
    meta = {field: str(row[field]) for field in _RECORD_FIELDS}
    return HubSample(id="_".join(meta[f] for f in ("category", "subcategory", "set_id", "figure_id", "question_id")),
                     question=row["question"], references=(meta["gt_answer"],),
                     meta={**meta, "split": source.split, "cluster": set_key(row)},
                     image_value=row.get("image"), source=source.repo)


def whole_sets(samples: Sequence[HubSample], limit: int | None) -> list[HubSample]:
    """Whole sets, in the order of their first question, until at least ``limit`` questions are kept
    (all of them for None); each set's questions in reading order."""
    sets: dict[str, list[HubSample]] = {}
    for sample in samples:
        sets.setdefault(sample.meta["cluster"], []).append(sample)
    kept: list[HubSample] = []
    for members in sets.values():
        if limit is not None and len(kept) >= limit:
            break
        kept.extend(members)
    return kept


_MEMO: dict[tuple, list[HubSample]] = {}


def load_hallusionbench(limit: int | None) -> list[HubSample]:
    """Both splits, image first, cut to whole sets (see the module docstring); memoised per
    (limit, data directories)."""
    key = (limit, data_dirs())
    if key not in _MEMO:
        rows = [hallusion_sample(row, HALLUSION_IMAGE) for row in read_rows(HALLUSION_IMAGE)]
        rows += [hallusion_sample({**row, "image": None}, HALLUSION_NON_IMAGE)
                 for row in read_rows(HALLUSION_NON_IMAGE)]
        _MEMO[key] = require_samples(whole_sets(rows, limit), HALLUSION_IMAGE, "rows in its image and non_image splits")
    return _MEMO[key]


def hallusion_task_scores(samples: Sequence[HubSample], answers: Sequence[str],
                          scorers: Scorers) -> dict[str, metrics.SampleStats]:
    """aAcc / fAcc / qAcc with the official grouping; the GPT judge when one is configured, else the rule."""
    judge = hallusion_gpt_judge(scorers.judge) if scorers.judge is not None else metrics.hallusion_rule_judge
    records = [{**sample.meta, "question": sample.question, "prediction": answer}
               for sample, answer in zip(samples, answers)]
    return metrics.hallusion_statistics(records, judge)


HALLUSIONBENCH = register_task(Task(
    "hallusionbench", "visual_illusion", HALLUSION_IMAGE.repo, load_hallusionbench, hallusion_task_scores,
    ("accuracy", "figure_accuracy", "pair_accuracy"), "accuracy", max_new_tokens=128,
    available=available_check(HALLUSION_IMAGE, HALLUSION_NON_IMAGE), uses=("judge",), judge=RULE_JUDGE,
    judge_prompt=HALLUSION_JUDGE_PROMPT,
    description="HallusionBench, all 1,129 questions (image + non_image splits): aAcc, fAcc, qAcc "
                "(tianyi-lab utils.py); limits keep whole sets"))
