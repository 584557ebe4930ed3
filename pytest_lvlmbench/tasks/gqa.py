"""GQA (Hudson & Manning, CVPR 2019) from ``lmms-lab/GQA``: compositional questions on Visual Genome
images, the ``testdev_balanced`` tier LLaVA-1.5 publishes (LLaVA-1.5-7B 62.0, ``docs/MODEL_ZOO.md``).

Data: questions from config ``testdev_balanced_instructions``, split ``testdev`` (12,578 rows), images
from config ``testdev_balanced_images``, split ``testdev`` (398 rows), joined on question ``imageId`` ==
image ``id``, as lmms-eval's ``gqa_process_docs`` (``lmms_eval/tasks/gqa/utils.py``) joins them. The image
config is read once per data directory, into an id -> image index, the first time a question needs it.

Confirmed (sources read 2026-11):

* Prompt: the bare GQA question plus "\\nAnswer the question using a single word or phrase.". LLaVA's own
  question file ``playground/data/eval/gqa/llava_gqa_testdev_balanced.jsonl`` (eval.zip contents, in
  haotian-liu/LLaVA's object store at 32cebc3) holds 12,578 lines of exactly that form
  (``"Is it overcast?\\nAnswer the question using a single word or phrase."``); lmms-eval ``gqa.yaml``
  (default ``post_prompt``) and ``gqa_doc_to_text`` build the same string.
* Scoring: LLaVA ``scripts/v1_5/eval/gqa.sh`` -> ``scripts/convert_gqa_for_eval.py``
  (``text.rstrip('.').lower()``) -> GQA ``eval.py --tier testdev_balanced`` (exact match), i.e.
  :func:`~pytest_lvlmbench.metrics.gqa_correct`; the saved text is ``.strip()``-ped by
  ``llava/eval/model_vqa_loader.py``. Metric ``accuracy``.
* 16 new tokens: lmms-eval ``gqa.yaml``; LLaVA-1.5-13B's longest GQA answer in its answer file is 20
  characters (LLaVA itself allowed 128).

``gqa_spatial`` keeps the relation questions: ``types.semantic == "rel"`` (GQA's semantic types are
rel / attr / obj / cat / global). Not a published LLaVA number; a subset chosen here (another public
"GQA-Spatial" also admits ``types.detailed`` starting with "position"; not followed). ``--lvlm-limit N``
is the first N relation questions.

Unconfirmed: the nesting of ``types`` in the parquet files (read here as a struct with a ``semantic``
field, per the hub card's ``dataset_info``; another shape is a :class:`DatasetSchemaError`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import metrics
from .data import DatasetSchemaError, HubDataset, HubSample, available_check, data_dirs, hub_loader, read_rows
from .base import Task, register_task
from .base import SHORT_ANSWER

REPO = "lmms-lab/GQA"
GQA_QUESTIONS = HubDataset(REPO, "testdev_balanced_instructions", "testdev",
                           {"id": "string", "imageId": "string", "question": "string", "answer": "string"})
GQA_SPATIAL_QUESTIONS = HubDataset(REPO, "testdev_balanced_instructions", "testdev",
                                   {**GQA_QUESTIONS.columns, "types": "struct"})
GQA_IMAGES = HubDataset(REPO, "testdev_balanced_images", "testdev", {"id": "string", "image": "image"})
SEMANTIC_RELATION = "rel"
RELATION_QUESTIONS = f"relation questions (types.semantic == {SEMANTIC_RELATION!r})"   # what gqa_spatial reads

_image_indexes: dict[tuple, dict[str, Any]] = {}


def image_index() -> dict[str, Any]:
    """{image id: hub Image value} of the testdev images, read once per set of data directories."""
    key = data_dirs()
    if key not in _image_indexes:
        index: dict[str, Any] = {}
        for row in read_rows(GQA_IMAGES):
            index.setdefault(str(row["id"]), row["image"])
        _image_indexes[key] = index
    return _image_indexes[key]


def gqa_sample(row: dict) -> HubSample:
    image_id = str(row["imageId"])
    index = image_index()
    if index.get(image_id) is None:
        raise DatasetSchemaError(f"{GQA_QUESTIONS}: question {row['id']!r} has imageId {image_id!r}, and no row "
                                 f"of {GQA_IMAGES} with that 'id' has an image ({len(index)} ids); the two configs "
                                 f"do not match: re-download {REPO}")
    return HubSample(id=str(row["id"]), question=row["question"], references=(row["answer"],),
                     meta={"image_id": image_id, "cluster": image_id},
                     image_value=index[image_id], source=GQA_IMAGES.repo)


def is_relation_question(row: dict) -> bool:
    """Whether a question's ``types.semantic`` is "rel"; a ``types`` without it is a schema error."""
    types = row.get("types")
    if not isinstance(types, Mapping) or "semantic" not in types:
        raise DatasetSchemaError(f"{GQA_SPATIAL_QUESTIONS}: column 'types' of question {row.get('id')!r} is "
                                 f"{types!r}, the task reads its field 'semantic' (types.semantic); re-download "
                                 f"{REPO}")
    return types["semantic"] == SEMANTIC_RELATION


def gqa_scores(samples: Sequence[HubSample], answers: Sequence[str]) -> dict[str, metrics.SampleStats]:
    return {"accuracy": metrics.share_stats([metrics.gqa_correct(answer, sample.references[0])
                                             for sample, answer in zip(samples, answers)])}


GQA_TASKS = (
    register_task(Task(
        "gqa", "visual_reasoning", REPO, hub_loader(GQA_QUESTIONS, gqa_sample), gqa_scores, ("accuracy",),
        "accuracy", post_prompt=SHORT_ANSWER, max_new_tokens=16,
        available=available_check(GQA_QUESTIONS, GQA_IMAGES),
        description="GQA testdev-balanced compositional questions (LLaVA convert_gqa_for_eval + GQA eval.py "
                    "exact match; published LLaVA-1.5 number)")),
    register_task(Task(
        "gqa_spatial", "spatial", REPO, hub_loader(GQA_SPATIAL_QUESTIONS, gqa_sample, where=is_relation_question,
                                                   selects=RELATION_QUESTIONS),
        gqa_scores, ("accuracy",), "accuracy", post_prompt=SHORT_ANSWER, max_new_tokens=16,
        available=available_check(GQA_SPATIAL_QUESTIONS, GQA_IMAGES),
        description="GQA testdev-balanced relation questions only (types.semantic == 'rel'), scored as gqa; "
                    "a subset, no published number")),
)
