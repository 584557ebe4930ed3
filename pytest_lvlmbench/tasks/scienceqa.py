"""ScienceQA-IMG (Lu et al., NeurIPS 2022) from ``lmms-lab/ScienceQA``, config ``ScienceQA-IMG``, split
``test`` (2,017 rows, every one with an image): multiple-choice science questions; LLaVA-1.5 publishes
its IMG accuracy as "SQA" (LLaVA-1.5-7B 66.8, ``docs/MODEL_ZOO.md``).

Confirmed (sources read 2026-11):

* Prompt: ``scripts/v1_5/eval/sqa.sh`` runs ``llava/eval/model_vqa_science.py --single-pred-prompt`` on
  ``playground/data/eval/scienceqa/llava_test_CQM-A.json`` (eval.zip contents, in haotian-liu/LLaVA's
  object store at 32cebc3: 4,241 test problems, 2,017 with an image, in ``pid_splits.json`` order). Its
  human turns read ``"<image>\\nContext: {hint}\\n{question}\\nA. {c0}\\nB. {c1}..."``, the Context line only
  when the hint is non-empty (problem 11: ``"<image>\\nWhat is the name of the colony shown?\\nA.
  Maryland\\nB. New Hampshire\\nC. Rhode Island\\nD. Vermont"``; problem 5 with its hint, the hint's own
  newlines kept). ``model_vqa_science.py`` takes ``value.replace('<image>', '').strip()`` and appends
  ``"\\n" + "Answer with the option's letter from the given choices directly."``. So the question text
  here is ``(f"Context: {hint}\\n" if hint else "") + f"{question}\\n" + "\\n".join(f"{letter}. {choice}")``,
  stripped, letters A-E (``convert_sqa_to_llava_base_prompt.py``'s options); lmms-eval
  ``sqa_doc_to_text`` (format ``default``) builds the same string, without the outer strip.
  (``scripts/convert_sqa_to_llava.py``'s "Context: ...\\nQuestion: ...\\nOptions: (A) ..." format is
  the training conversion, not the CQM-A test file.)
* Scoring: ``llava/eval/eval_science_qa.py`` (bare letter, "X. " prefix, or "The answer is X."; else
  FAILED), i.e. :func:`~pytest_lvlmbench.metrics.scienceqa_correct`; the published number is its
  IMG accuracy. Metric ``accuracy``.
* 16 new tokens: lmms-eval ``scienceqa_img.yaml`` (``model_vqa_science.py`` allowed 1,024; the prompt asks
  for a letter).

``lmms-lab/ScienceQA`` has no problem id column: a sample's id is ``test-<row index>``, its row in the
split (the file order, deterministic); the image-less problems of ScienceQA are not in this config, so
a row without an image is a :class:`DatasetSchemaError`.

Unconfirmed: that ``lmms-lab/ScienceQA``'s hint/question/choices strings are byte-identical to
``problems.json``'s (checked for the problems quoted above only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .. import metrics
from .data import DatasetSchemaError, HubDataset, HubSample, available_check, hub_loader
from .base import Task, register_task

REPO = "lmms-lab/ScienceQA"
SCIENCEQA_IMG = HubDataset(REPO, "ScienceQA-IMG", "test",
                           {"image": "image", "question": "string", "choices": "list<string>", "answer": "int",
                            "hint": "string"})
MULTIPLE_CHOICE = "\nAnswer with the option's letter from the given choices directly."


def scienceqa_question(hint: str | None, question: str, choices: Sequence[str]) -> str:
    """LLaVA's CQM-A question text (the multiple-choice suffix is the task's post-prompt)."""
    options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(metrics.SCIENCEQA_OPTIONS, choices))
    context = f"Context: {hint}\n" if hint else ""
    return f"{context}{question}\n{options}".strip()


def scienceqa_sample(row: dict) -> HubSample:
    choices = list(row["choices"] or [])
    answer = row["answer"]
    where = f"{SCIENCEQA_IMG}: a row (question {row['question']!r})"
    if not 1 <= len(choices) <= len(metrics.SCIENCEQA_OPTIONS):
        raise DatasetSchemaError(f"{where} has {len(choices)} choices in column 'choices'; LLaVA's prompt letters "
                                 f"them {', '.join(metrics.SCIENCEQA_OPTIONS)}: re-download {REPO}")
    if answer is None or not 0 <= int(answer) < len(choices):
        raise DatasetSchemaError(f"{where} has column 'answer' {answer!r}, not an index into its {len(choices)} "
                                 f"choices: re-download {REPO}")
    if row["image"] is None:
        raise DatasetSchemaError(f"{where} has no image in column 'image'; every ScienceQA-IMG problem has one: "
                                 f"re-download {REPO}")
    return HubSample(id="", question=scienceqa_question(row["hint"], row["question"], choices),
                     references=(metrics.SCIENCEQA_OPTIONS[int(answer)],),
                     meta={"answer": int(answer), "n_choices": len(choices)}, image_value=row["image"], source=REPO)


def number_rows(samples: list[HubSample]) -> list[HubSample]:
    """Ids from the row index (no where filter, so sample i is row i of the split)."""
    return [replace(sample, id=f"test-{i}", meta={**sample.meta, "cluster": f"test-{i}"})
            for i, sample in enumerate(samples)]


def scienceqa_scores(samples: Sequence[HubSample], answers: Sequence[str]) -> dict[str, metrics.SampleStats]:
    return {"accuracy": metrics.share_stats([metrics.scienceqa_correct(answer, s.meta["answer"], s.meta["n_choices"])
                                             for s, answer in zip(samples, answers)])}


SCIENCEQA_TASK = register_task(Task(
    "scienceqa_img", "knowledge", REPO, hub_loader(SCIENCEQA_IMG, scienceqa_sample, prepare=number_rows),
    scienceqa_scores, ("accuracy",), "accuracy", post_prompt=MULTIPLE_CHOICE, max_new_tokens=16,
    available=available_check(SCIENCEQA_IMG),
    description="ScienceQA-IMG test, LLaVA's CQM-A prompt and eval_science_qa.py letter parse (published 'SQA')"))
