"""Calibration inputs for activation-aware weight quantization (AWQ): pictures and prompts that are
never an evaluated item, from a source the report names.

- ``shapes``: shapes-world training examples, the distribution the embedded models were trained on.
- ``coco``: the first COCO-Caption2017 **test** images (the ``coco_caption`` task evaluates ``val``)
  with the caption prompt: natural images for real checkpoints, as AWQ calibrates on generic data.
"""

from __future__ import annotations

from pathlib import Path

from ..tasks.data import HubDataset, decode_image, read_rows, unavailable_reason

CALIBRATION_SAMPLES = 32
COCO_TEST = HubDataset("lmms-lab/COCO-Caption2017", "default", "test", {"question_id": "string", "image": "image"})
CAPTION_PROMPT = "Provide a one-sentence caption for the provided image."


def calibration_source(option: str, model_source: str) -> str:
    """The source ``--lvlm-calibration`` means for a model: ``auto`` is ``shapes`` for the embedded
    models (what they were trained on), ``coco`` for any other checkpoint."""
    if option != "auto":
        return option
    from .models import MODELS_DIR

    return "shapes" if Path(model_source).resolve().is_relative_to(MODELS_DIR.resolve()) else "coco"


def calibration_unavailable(source: str) -> str | None:
    """Why a calibration source cannot be read here (its dataset is missing), or None."""
    if source != "coco":
        return None
    reason = unavailable_reason(COCO_TEST)
    return reason and (f"AWQ calibrates on COCO-Caption2017 test images (--lvlm-calibration coco), and {reason}; "
                       "or pass --lvlm-calibration shapes")


def calibration_examples(source: str, n: int = CALIBRATION_SAMPLES) -> tuple[list, list[str]]:
    """(images, questions) of a calibration source; a missing dataset raises DatasetUnavailable."""
    if source == "shapes":
        from ..tasks.shapes.world import calibration_examples as shapes_examples

        examples = shapes_examples(n)
        return [scene.image() for scene, _ in examples], [question for _, question in examples]
    if source == "coco":
        rows = list(read_rows(COCO_TEST, limit=n))
        images = [decode_image(row["image"], f"{COCO_TEST} item {row['question_id']!r}") for row in rows]
        return images, [CAPTION_PROMPT] * len(images)
    raise ValueError(f"unknown calibration source {source!r}: allowed are shapes, coco")
