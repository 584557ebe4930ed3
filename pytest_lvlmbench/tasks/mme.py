"""MME (Fu et al., 2023) from ``lmms-lab/MME``, config ``default``, split ``test`` (2,374 rows): two
yes/no questions per image (``question_id`` is the image path, e.g. ``code_reasoning/0020.png``), in 10
perception and 4 cognition subtasks; one task per family. LLaVA-1.5 publishes perception only
(LLaVA-1.5-7B 1510.7, ``docs/MODEL_ZOO.md``).

Confirmed (sources read 2026-11):

* Prompt: ``scripts/v1_5/eval/mme.sh`` runs ``llava/eval/model_vqa_loader.py`` on
  ``playground/data/eval/MME/llava_mme.jsonl`` (eval.zip contents, in haotian-liu/LLaVA's object store at
  32cebc3): 2,374 lines, each MME question without its " Please answer yes or no." sentence, nothing
  left after the question (no trailing space, even where MME has two spaces before the sentence, as
  ``convert_answer_to_mme.py``'s double-space fallback shows), then "\\nAnswer the question using a single
  word or phrase." (``"Is a python code shown in the picture?\\nAnswer the question using a single word or
  phrase."``). Here: the question stripped, the trailing "Please answer yes or no." cut off, stripped
  again, plus the short-answer suffix. lmms-eval ``mme_doc_to_text`` (``question.strip()``, then
  ``replace(" Please answer yes or no.", "")``, then its default ``post_prompt``, the same suffix) differs
  only where MME has the double space (it keeps one trailing space).
* Scoring: ``convert_answer_to_mme.py`` then MME's ``eval_tool/calculation.py``: the parse
  :func:`~pytest_lvlmbench.metrics.mme_parse` of the ``.strip()``-ped answer (``model_vqa_loader.py``
  strips), per subtask acc, acc+ and 100*acc + 100*acc+ (:func:`~pytest_lvlmbench.metrics.mme_statistics`),
  the family total the sum over subtasks (:func:`~pytest_lvlmbench.metrics.mme_totals`). LLaVA's file
  lists an image's two questions on consecutive lines (all 1,187 images), as the tool's pairing needs.
* 16 new tokens: lmms-eval ``mme.yaml`` (LLaVA-1.5-13B's longest MME answer is 13 characters).

Metrics: ``perception_score`` / ``cognition_score`` (primary), ``accuracy`` and ``accuracy_plus`` over the
whole family (questions / images; not an MME figure), and ``mme_<subtask>`` for each subtask. Per-sample
rows line up across metrics (a subtask's statistics sit on its own samples' rows, zeros elsewhere), and
the bootstrap cluster is the image, so pairs are resampled whole.

``--lvlm-limit N`` reads the first N rows of the family; an image whose second question lies beyond the
limit is dropped (its pair is incomplete), so a limited load can hold N - 1 questions. A subtask with
no questions in the run scores 0.0 with a note naming the cause (the limit, only when it cut the read,
or a copy without that subtask), and the family total is then partial (``mme_totals``
``allow_partial=True``), said in its note: never silently a full-family number. In a full read, an
image without exactly two questions is a :class:`DatasetSchemaError`; a copy without a single question
of the family makes the task skip, naming the dataset and the categories it looked for.

Unconfirmed: that every ``lmms-lab/MME`` question carries the "Please answer yes or no." sentence (a
question without it is kept as it is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from .. import metrics
from .data import DatasetSchemaError, HubDataset, HubSample, available_check, data_dirs, hub_loader, require_samples
from .base import Task, register_task
from .base import SHORT_ANSWER

REPO = "lmms-lab/MME"
MME = HubDataset(REPO, "default", "test", {"question_id": "string", "image": "image", "question": "string",
                                           "answer": "string", "category": "string"})
YES_NO_SENTENCE = "Please answer yes or no."
FAMILIES = {"perception_score": metrics.MME_PERCEPTION, "cognition_score": metrics.MME_COGNITION}


def mme_question(question: str) -> str:
    """LLaVA's MME question: without the trailing "Please answer yes or no." and the spaces before it."""
    text = question.strip()
    if text.endswith(YES_NO_SENTENCE):
        text = text[:-len(YES_NO_SENTENCE)].rstrip()
    return text


def mme_answer(text: str) -> str:
    """The answer as the official tool reads LLaVA's answer file: stripped (model_vqa_loader.py), then
    ``mme_parse`` (yes / no / other)."""
    return metrics.mme_parse(text.strip())


def mme_sample(row: dict) -> HubSample:
    label = str(row["answer"]).strip()
    if label.lower() not in ("yes", "no"):
        raise DatasetSchemaError(f"{MME}: column 'answer' of {row['question_id']!r} is {row['answer']!r}, not "
                                 f"Yes/No: re-download {REPO}")
    image = str(row["question_id"])
    if row["image"] is None:
        raise DatasetSchemaError(f"{MME}: question of {image!r} has no image in column 'image': re-download {REPO}")
    return HubSample(id=image, question=mme_question(row["question"]), references=(label,),
                     meta={"category": row["category"], "image_id": image, "cluster": image,
                           "raw_question": str(row["question"]).strip()},
                     image_value=row["image"], source=REPO)


def _in_family(family: tuple[str, ...]):
    known = metrics.MME_PERCEPTION + metrics.MME_COGNITION

    def where(row: dict) -> bool:
        if row["category"] not in known:
            raise DatasetSchemaError(f"{MME}: column 'category' holds {row['category']!r}, not an MME subtask "
                                     f"({', '.join(known)}): re-download {REPO}")
        return row["category"] in family
    return where


def pair_up(samples: list[HubSample], limit: int | None) -> list[HubSample]:
    """Keep whole pairs: with a limit that cut the read short, drop the images whose second question
    lies beyond it; otherwise an image without exactly two questions is a schema error. Ids become
    ``<question_id>#<0|1>`` (the question's place in its pair)."""
    counts: dict[str, int] = {}
    for sample in samples:
        counts[sample.id] = counts.get(sample.id, 0) + 1
    cut = limit is not None and len(samples) >= limit
    bad = {image: n for image, n in counts.items() if n > 2 or (n == 1 and not cut)}
    if bad:
        raise DatasetSchemaError(f"{MME}: every image (question_id) has exactly two questions; not so for "
                                 f"{dict(list(bad.items())[:5])}: re-download {REPO}")
    seen: dict[str, int] = {}
    kept = []
    for sample in samples:
        if counts[sample.id] != 2:
            continue
        place = seen.get(sample.id, 0)
        seen[sample.id] = place + 1
        kept.append(replace(sample, id=f"{sample.id}#{place}"))
    return kept


def mme_loader(family: tuple[str, ...], kind: str):
    """Whole pairs of the family's questions; each sample's meta ``cut_by_limit`` holds the --lvlm-limit
    when it cut the read short (else None), so a missing subtask's note names the right cause."""
    rows = hub_loader(MME, mme_sample, where=_in_family(family),
                      selects=f"{kind} questions (column 'category' one of {', '.join(family)})")
    memo: dict[tuple, list[HubSample]] = {}

    def load(limit: int | None) -> list[HubSample]:
        key = (limit, data_dirs())
        if key not in memo:
            read = None if limit is None else limit + 1   # the limit rounds up to a whole pair
            found = rows(read)
            cut = limit if read is not None and len(found) >= read else None
            pairs = require_samples(pair_up(found, read), MME, "whole question pair (an image's two questions)", cut)
            memo[key] = [replace(s, meta={**s.meta, "cut_by_limit": cut}) for s in pairs]
        return memo[key]
    return load


def _spread(rows: np.ndarray, index: list[int], n: int) -> np.ndarray:
    """A subtask's per-sample rows placed on the task's samples (zeros on the other subtasks' rows)."""
    full = np.zeros((n, rows.shape[1]))
    if index:
        full[index] = rows
    return full


def mme_family_scores(total: str, family: tuple[str, ...]):
    def score(samples: Sequence[HubSample], answers: Sequence[str]) -> dict[str, metrics.SampleStats]:
        n = len(samples)
        per_subtask: dict[str, np.ndarray] = {}
        out: dict[str, metrics.SampleStats] = {}
        accuracy_rows, plus_rows = np.zeros((n, 2)), np.zeros((n, 2))
        cut = next((s.meta["cut_by_limit"] for s in samples if s.meta.get("cut_by_limit")), None)
        why = f"--lvlm-limit {cut} read only part of {REPO}" if cut else f"this copy of {REPO} has none"
        for subtask in family:
            index = [i for i, s in enumerate(samples) if s.meta["category"] == subtask]
            name = f"mme_{subtask.lower()}"
            if not index:
                per_subtask[subtask] = np.zeros((n, 4))
                out[name] = metrics.SampleStats(per_subtask[subtask], _subtask_score,
                                                undefined=f"subtask {subtask} has no questions in this run "
                                                          f"({why}): 0/0, reported as 0.0")
                continue
            stats = metrics.mme_statistics([{"image_id": samples[i].meta["image_id"], "prediction": answers[i],
                                             "label": samples[i].references[0]} for i in index])
            rows = _spread(stats["mme_score"].rows, index, n)
            per_subtask[subtask] = rows
            out[name] = metrics.SampleStats(rows, _subtask_score, undefined=stats["mme_score"].undefined)
            accuracy_rows[index] = stats["accuracy"].rows
            plus_rows[index] = stats["accuracy_plus"].rows
        out["accuracy"] = metrics.share_stats(accuracy_rows[:, 0])
        out["accuracy_plus"] = metrics.ratio_stats(plus_rows[:, 0], plus_rows[:, 1], empty="no images")
        present = [subtask for subtask in family if per_subtask[subtask][:, 1].sum() > 0]
        absent = [subtask for subtask in family if subtask not in present]
        order = list(family)

        def family_total(sums: np.ndarray) -> np.ndarray:
            scores = {subtask: _subtask_score(sums[:, 4 * order.index(subtask):4 * order.index(subtask) + 4])
                      for subtask in present}
            return np.array([metrics.mme_totals({s: float(v[b]) for s, v in scores.items()}, allow_partial=True)
                             .get(total, 0.0) for b in range(len(sums))])

        note = (f"partial total: subtask(s) {', '.join(absent)} have no questions in this run ({why}), so "
                f"this sums the {len(present)} of {len(family)} subtasks present (mme_totals allow_partial=True), "
                f"not the full MME {total}" if absent else "")
        out[total] = metrics.SampleStats(np.hstack([per_subtask[s] for s in family]), family_total, undefined=note)
        return out
    return score


def _subtask_score(sums: np.ndarray) -> np.ndarray:
    """100 * acc + 100 * acc+ from the sums of a subtask's mme_score rows (acc num, den, acc+ num, den)."""
    return (metrics.safe_divide(sums[:, 0], sums[:, 1]) * 100
            + metrics.safe_divide(sums[:, 2], sums[:, 3]) * 100)


def _task(name: str, capability: str, total: str) -> Task:
    family = FAMILIES[total]
    return register_task(Task(
        name, capability, REPO, mme_loader(family, total.removesuffix("_score")), mme_family_scores(total, family),
        (total, "accuracy", "accuracy_plus", *(f"mme_{s.lower()}" for s in family)), total,
        parse=mme_answer, post_prompt=SHORT_ANSWER, max_new_tokens=16, available=available_check(MME),
        description=f"MME {total.removesuffix('_score')}: sum of 100*acc + 100*acc+ over its {len(family)} "
                    "subtasks (official calculation.py on LLaVA's prompt); a run that leaves a subtask out (a "
                    "--lvlm-limit, or a copy without it) gives a partial total, noted"))


MME_TASKS = (
    _task("mme_perception", "recognition", "perception_score"),
    _task("mme_cognition", "visual_reasoning", "cognition_score"),
)
