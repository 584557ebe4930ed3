"""VizWiz-VQA (Gurari et al., CVPR 2018) from ``lmms-lab/VizWiz-VQA``: questions blind people asked
about their own photos, many unanswerable; config ``default``, split ``val`` (4,319 rows).

LLaVA-1.5's published VizWiz number (LLaVA-1.5-7B 50.0, ``docs/MODEL_ZOO.md``) is the EvalAI
**test-dev** score of answers uploaded by ``scripts/convert_vizwiz_for_submission.py``; test answers
are not public, so this task scores **val** locally, which is not comparable with it.

Confirmed (sources read 2026-11):

* Prompt: LLaVA's question file ``playground/data/eval/vizwiz/llava_test.jsonl`` (eval.zip contents, in
  haotian-liu/LLaVA's object store at 32cebc3; 8,000 test lines) reads ``question.capitalize() +
  "\\nWhen the provided information is insufficient, respond with 'Unanswerable'.\\nAnswer the question
  using a single word or phrase."``: no letter after the first is upper case, leading and trailing
  spaces are kept (``" what color is this shirt?"``, ``"What is this? "``), as ``str.capitalize`` does.
  lmms-eval ``vizwiz_vqa_doc_to_text`` (``question.capitalize()`` + the same ``post_prompt``,
  ``_default_template_vqa_yaml``) builds the same string for val.
* Scoring: lmms-eval ``vizwiz_vqa_process_results`` (``lmms_eval/tasks/vizwiz_vqa/utils.py``), the
  local val scorer behind lmms-eval's LLaVA numbers: ``EvalAIAnswerProcessor`` (= LLaVA
  ``m4c_evaluator.py``'s, :func:`~pytest_lvlmbench.metrics.textvqa_normalize`) on the prediction and on
  every answer, then mean over answers i of min(1, #other answers equal to the prediction / 3); no
  answers -> 0. LLaVA applies the same processor to its test-dev upload. Metric ``vqa_accuracy``.
* 128 new tokens: ``llava/eval/model_vqa_loader.py``'s default.

Unconfirmed: the EvalAI server's own scorer (a VizWiz API copy of ``vqaEval.py`` normalises only the
prediction); whether every val row has ten answers (any count is scored by the formula above).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .. import metrics
from .data import DatasetSchemaError, HubDataset, HubSample, available_check, hub_loader
from .base import Task, register_task
from .base import SHORT_ANSWER

REPO = "lmms-lab/VizWiz-VQA"
VIZWIZ = HubDataset(REPO, "default", "val",
                    {"question_id": "string", "image": "image", "question": "string", "answers": "list<string>"})
UNANSWERABLE = "\nWhen the provided information is insufficient, respond with 'Unanswerable'."


def vizwiz_sample(row: dict) -> HubSample:
    question_id = str(row["question_id"])
    if row["image"] is None:
        raise DatasetSchemaError(f"{VIZWIZ}: question {question_id!r} has no image in column 'image': "
                                 f"re-download {REPO}")
    return HubSample(id=question_id, question=row["question"].capitalize(), references=tuple(row["answers"] or ()),
                     meta={"cluster": question_id, "raw_question": row["question"]}, image_value=row["image"], source=REPO)


def vizwiz_scores(samples: Sequence[HubSample], answers: Sequence[str]) -> dict[str, metrics.SampleStats]:
    values = [metrics.vizwiz_accuracy(answer, sample.references) for sample, answer in zip(samples, answers)]
    return {"vqa_accuracy": replace(metrics.share_stats(values), binary=False)}


VIZWIZ_TASK = register_task(Task(
    "vizwiz_vqa", "recognition", REPO, hub_loader(VIZWIZ, vizwiz_sample), vizwiz_scores, ("vqa_accuracy",),
    "vqa_accuracy", post_prompt=UNANSWERABLE + SHORT_ANSWER, max_new_tokens=128, available=available_check(VIZWIZ),
    description="VizWiz-VQA val, LLaVA's 'Unanswerable' prompt, lmms-eval's VQA soft accuracy; LLaVA's published "
                "VizWiz number is EvalAI test-dev, so val scores are not comparable with it"))
