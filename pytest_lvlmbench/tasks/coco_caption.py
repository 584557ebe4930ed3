"""COCO Captions 2017 (Chen et al., 2015) from ``lmms-lab/COCO-Caption2017``, config ``default``, split
``val`` (5,000 images, about five reference captions each). LLaVA publishes no COCO captioning number;
the task follows lmms-eval's ``coco2017_cap_val``.

Confirmed (sources read 2026-11, EvolvingLMMs-Lab/lmms-eval ``lmms_eval/tasks/coco_cap/``):

* Prompt: ``coco_doc_to_text`` returns "Provide a one-sentence caption for the provided image." for every
  image (the dataset's ``question`` column is not read), no post-prompt; ``coco2017_cap_val.yaml``:
  ``max_new_tokens: 64``, greedy.
* Scoring: ``coco_aggregation_result``: references = the row's ``answer`` list, pycocoevalcap's
  PTBTokenizer, then Bleu_1-4, METEOR, ROUGE_L, CIDEr over the split (SPICE commented out). Here
  :func:`~pytest_lvlmbench.metrics.caption_statistics` (pure-Python PTB tokenizer, BLEU, ROUGE-L,
  CIDEr-D as pycocoevalcap computes them). The id is ``question_id`` (the COCO file name; lmms-eval's
  image id is the integer in it), also the bootstrap cluster.

Left out: METEOR. pycocoevalcap's METEOR needs Java and its jar, and its corpus score is the jar's
score of the pooled statistics, which per-image statistics cannot resample; the captions module has
only per-image ``meteor_scores`` (not in ``caption_statistics``). CIDEr-D's document frequencies are
those of the samples scored (the full split, or the ``--lvlm-limit`` prefix), as in lmms-eval.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import metrics
from .data import DatasetSchemaError, HubDataset, HubSample, available_check, hub_loader
from .base import Task, register_task

REPO = "lmms-lab/COCO-Caption2017"
COCO_VAL = HubDataset(REPO, "default", "val", {"question_id": "string", "image": "image", "answer": "list<string>"})
CAPTION_PROMPT = "Provide a one-sentence caption for the provided image."
CAPTION_METRICS = ("cider_d", "bleu_4", "bleu_1", "bleu_2", "bleu_3", "rouge_l")


def coco_sample(row: dict) -> HubSample:
    name = str(row["question_id"])
    if row["image"] is None:
        raise DatasetSchemaError(f"{COCO_VAL}: {name!r} has no image in column 'image': re-download {REPO}")
    return HubSample(id=name, question=CAPTION_PROMPT, references=tuple(row["answer"] or ()),
                     meta={"cluster": name}, image_value=row["image"], source=REPO)


def coco_scores(samples: Sequence[HubSample], answers: Sequence[str]) -> dict[str, metrics.SampleStats]:
    return metrics.caption_statistics(list(answers), [list(sample.references) for sample in samples])


COCO_TASK = register_task(Task(
    "coco_caption", "language_generation", REPO, hub_loader(COCO_VAL, coco_sample), coco_scores, CAPTION_METRICS,
    "cider_d", post_prompt="", max_new_tokens=64, available=available_check(COCO_VAL),
    description="COCO 2017 val one-sentence captions (lmms-eval coco2017_cap_val prompt; pycocoevalcap "
                "CIDEr-D, BLEU, ROUGE-L; no METEOR); no published LLaVA number"))
