"""TextVQA (Singh et al., CVPR 2019) from ``lmms-lab/textvqa``: questions about text in the image,
config ``default``, split ``validation`` (5,000 rows, ten human answers each).

Two tasks, differing only in the prompt:

* ``textvqa``: the prompt behind LLaVA-1.5's published TextVQA number (LLaVA-1.5-7B 58.2,
  ``docs/MODEL_ZOO.md``), with the reference OCR tokens;
* ``textvqa_ocr_free``: the same without the OCR line, lmms-eval's default (``ocr: false``).

Confirmed (sources read 2026-11):

* LLaVA's prompt: ``scripts/v1_5/eval/textvqa.sh`` runs ``llava/eval/model_vqa_loader.py`` on
  ``playground/data/eval/textvqa/llava_textvqa_val_v051_ocr.jsonl`` (eval.zip contents, in
  haotian-liu/LLaVA's object store at 32cebc3). All 5,000 lines read
  ``question.capitalize() + "\\nReference OCR token: " + ", ".join(ocr_tokens) + "\\nAnswer the question
  using a single word or phrase."``, e.g. ``"What is the brand of this camera?\\nReference OCR token:
  DAKOTA, DIGITAL, Single-Use, Camera, Pire, digitat\\nAnswer the question using a single word or
  phrase."``. Capitalised with ``str.capitalize`` (no question has an upper-case letter after its
  first character; ``"/?what needs to be taken away?"`` keeps its lower-case w); the OCR line is there
  even without tokens (``"...that you can see?\\nReference OCR token: \\nAnswer ..."``); every token is
  listed (up to 95), none dropped. lmms-eval ``textvqa_doc_to_text`` with ``ocr: true`` builds the same
  string (``f"{question.capitalize()}\\nReference OCR token: {', '.join(ocr_tokens)}{post_prompt}"``);
  with its default ``ocr: false`` the line is absent (``textvqa_ocr_free``).
* Scoring: ``llava/eval/eval_textvqa.py`` -> ``llava/eval/m4c_evaluator.py``
  ``TextVQAAccuracyEvaluator`` (EvalAIAnswerProcessor on prediction and answers, leave-one-out
  min(1, matches/3)), i.e. :func:`~pytest_lvlmbench.metrics.textvqa_accuracy`; lmms-eval
  ``textvqa_process_results`` computes the same (reported as ``exact_match``). Metric ``vqa_accuracy``.
* 128 new tokens: ``model_vqa_loader.py``'s default (LLaVA-1.5-13B's TextVQA answers reach 280
  characters; lmms-eval sets no limit here).

* The OCR tokens are TextVQA's own Rosetta OCR tokens v0.2 (haotian-liu/LLaVA issue #976, answered by
  the maintainer).

LLaVA-1.6 (LLaVA-NeXT): its published TextVQA numbers were apparently measured *without* the OCR line:
haotian-liu/LLaVA issue #1326 (users, not the maintainer) gets 61.3 for llava-v1.6-vicuna-7b with the
1.5 question file and the published 64.9 once the OCR line is dropped. So ``textvqa`` is the task to
compare with LLaVA-1.5's published number and ``textvqa_ocr_free`` probably the one for LLaVA-1.6's.

Unconfirmed: that ``lmms-lab/textvqa``'s ``ocr_tokens`` are the same (Rosetta v0.2, cased) tokens, in
the same order, as in LLaVA's question file; this task reads the column as it is. The LLaVA-1.6
finding above (no official 1.6 evaluation script exists).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .. import metrics
from .data import DatasetSchemaError, HubDataset, HubSample, available_check, hub_loader
from .base import Task, register_task
from .base import SHORT_ANSWER

REPO = "lmms-lab/textvqa"
_COLUMNS = {"question_id": "int", "image_id": "string", "question": "string", "image": "image",
            "answers": "list<string>"}
TEXTVQA = HubDataset(REPO, "default", "validation", {**_COLUMNS, "ocr_tokens": "list<string>"})
TEXTVQA_OCR_FREE = HubDataset(REPO, "default", "validation", _COLUMNS)
OCR_LINE = "\nReference OCR token: "


def textvqa_question(row: dict, ocr: bool) -> str:
    """LLaVA's TextVQA question text (the short-answer suffix is the task's post-prompt)."""
    question = row["question"].capitalize()
    if ocr:
        question += OCR_LINE + ", ".join(row["ocr_tokens"] or [])
    return question


def _sample(row: dict, ocr: bool) -> HubSample:
    image_id = str(row["image_id"])
    if row["image"] is None:
        raise DatasetSchemaError(f"{TEXTVQA}: question {row['question_id']!r} has no image in column 'image': "
                                 f"re-download {REPO}")
    return HubSample(id=str(row["question_id"]), question=textvqa_question(row, ocr),
                     references=tuple(row["answers"] or ()),
                     meta={"image_id": image_id, "cluster": image_id, "raw_question": row["question"]},
                     image_value=row["image"], source=REPO)


def textvqa_sample(row: dict) -> HubSample:
    return _sample(row, ocr=True)


def textvqa_ocr_free_sample(row: dict) -> HubSample:
    return _sample(row, ocr=False)


def textvqa_scores(samples: Sequence[HubSample], answers: Sequence[str]) -> dict[str, metrics.SampleStats]:
    """m4c TextVQAAccuracyEvaluator per question (exactly ten answers, else ValueError), averaged."""
    values = [metrics.textvqa_accuracy(answer, sample.references) for sample, answer in zip(samples, answers)]
    return {"vqa_accuracy": replace(metrics.share_stats(values), binary=False)}


TEXTVQA_TASKS = (
    register_task(Task(
        "textvqa", "recognition", REPO, hub_loader(TEXTVQA, textvqa_sample), textvqa_scores, ("vqa_accuracy",),
        "vqa_accuracy", post_prompt=SHORT_ANSWER, max_new_tokens=128, available=available_check(TEXTVQA),
        description="TextVQA val with the reference OCR tokens in the prompt, as LLaVA-1.5's published number "
                    "(llava_textvqa_val_v051_ocr; m4c TextVQA accuracy)")),
    register_task(Task(
        "textvqa_ocr_free", "recognition", REPO, hub_loader(TEXTVQA_OCR_FREE, textvqa_ocr_free_sample),
        textvqa_scores, ("vqa_accuracy",), "vqa_accuracy", post_prompt=SHORT_ANSWER, max_new_tokens=128,
        available=available_check(TEXTVQA_OCR_FREE),
        description="TextVQA val without OCR tokens (lmms-eval's default ocr=false); not comparable with "
                    "LLaVA-1.5's published number (LLaVA-1.6's is reportedly measured this way)")),
)
