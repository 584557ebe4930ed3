"""Small offline copies of the ten real datasets, in their public schema and hub repository layout.

``write_dataset("lmms-lab/POPE", root)`` writes ``root/lmms-lab/POPE/`` the way
``huggingface-cli download --repo-type dataset lmms-lab/POPE --local-dir root/lmms-lab/POPE`` would:
the README.md dataset card (YAML header with ``dataset_info`` and, where the real card has one, a
``configs`` block) and parquet shards named and placed as on the hub, with a few rows each. Columns
carry the Arrow types that ``datasets`` Features produce (Image -> struct<bytes, path>, Sequence ->
list, nested dicts -> struct, lists of dicts -> list<struct>), and each file carries the
``huggingface`` schema metadata ``datasets`` writes, so ``datasets.load_dataset(dir, config)`` reads
these copies too. Pictures are tiny generated PNG/JPEG files (RGB, RGBA, grayscale, palette), the
same bytes on every run.

What is confirmed and what is guessed (read 2026-11; "card" = the README.md on the hub, "tree" = the
hub's file listing; lmms-eval task YAMLs give dataset_path / dataset_name / test_split):

- POPE: tree ``data/test-0000{0,1,2}-of-00003.parquet`` and a ``Full/`` folder; card features (a
  duplicate, giobin/POPE). Guessed: the file names inside ``Full/``, the row order, ``question_id``
  restarting at 1 per category.
- GQA: tree ``testdev_balanced_{instructions,images}/testdev-00000-of-00001.parquet``; card features of
  the instructions config (commit 6ac3999: ``groups`` became a struct). Guessed: the nesting of
  ``annotations`` and ``semantic`` (the diff is cut off), the string form of ``entailed`` /
  ``equivalent``. The real card lists about twenty configs; two are written.
- textvqa: card (duplicate pppop7/textvqa) and tree ``data/{train,validation,test}-*``.
- VizWiz-VQA: card has ``dataset_info`` and NO ``configs``; files ``data/val-0000N-of-00005-<hash>``.
  Guessed: ``category`` values (VizWiz answer types), ``question_id`` form, empty test answers.
- ScienceQA: card (configs ScienceQA-FULL and ScienceQA-IMG, splits validation and test only) and tree
  ``ScienceQA-IMG/test-00000-of-00001.parquet``. IMG rows all have an image (it is the image subset);
  FULL has text-only rows (image null).
- MME: card (configs default/test ``data/test-*``); files ``data/test-0000N-of-00004-<hash>``. Guessed:
  ``question_id`` paths of the perception categories.
- HallusionBench: card (splits image / non_image, ``data/image-*``, ``data/non_image-*``) and tree.
  Guessed: ``filename`` values, null ``filename`` in non_image.
- COCO-Caption2017: tree ``data/val-0000{0,1}-of-00002.parquet``, ``data/test-000NN-of-00014``. Card
  not read: the features follow the notes, the ``configs`` block is assumed. Guessed: the
  ``question_id`` form, empty ``answer`` lists in test.
- MMVet: card (commit 6f71fda) and tree ``data/test-00000-of-00001.parquet``. Guessed: ``question_id``
  "v1_N".
- SocialCounterfactuals: the card is ``license: mit`` only (21 bytes: no dataset_info, no configs);
  files ``data/train-000NN-of-00061-<hash>``. Columns follow the notes (not confirmed). Captions and
  their articles follow IntelLabs/multimodal_cognitive_ai ``Uncovering_LVLM_Bias/metadata/*.csv``.
  Guessed: the ``dataset_segment`` and ``counterfactual_set`` strings.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from PIL import Image, ImageDraw

DATASETS = (
    "lmms-lab/POPE",
    "lmms-lab/GQA",
    "lmms-lab/textvqa",
    "lmms-lab/VizWiz-VQA",
    "lmms-lab/ScienceQA",
    "lmms-lab/MME",
    "lmms-lab/HallusionBench",
    "lmms-lab/COCO-Caption2017",
    "lmms-lab/MMVet",
    "Intel/SocialCounterfactuals",
)

# The (config, split) each benchmark task evaluates (lmms-eval's dataset_name / test_split).
PRIMARY = {
    "lmms-lab/POPE": ("default", "test"),
    "lmms-lab/GQA": ("testdev_balanced_instructions", "testdev"),
    "lmms-lab/textvqa": ("default", "validation"),
    "lmms-lab/VizWiz-VQA": ("default", "val"),
    "lmms-lab/ScienceQA": ("ScienceQA-IMG", "test"),
    "lmms-lab/MME": ("default", "test"),
    "lmms-lab/HallusionBench": ("default", "image"),
    "lmms-lab/COCO-Caption2017": ("default", "val"),
    "lmms-lab/MMVet": ("default", "test"),
    "Intel/SocialCounterfactuals": ("default", "train"),
}


# --------------------------------------------------------------------------------------------------
# Features: the datasets feature types, as Arrow types, card YAML and the parquet schema metadata.

class Feature:
    def arrow(self) -> pa.DataType:
        raise NotImplementedError

    def card(self, name: str) -> dict:
        """This feature's entry in a card's ``dataset_info.features`` list."""
        raise NotImplementedError

    def hf(self) -> Any:
        """This feature as ``datasets.Features.to_dict()`` writes it into the parquet metadata."""
        raise NotImplementedError


_VALUE_TYPES = {"string": pa.string(), "bool": pa.bool_(), "int8": pa.int8(), "int32": pa.int32(),
                "int64": pa.int64()}


@dataclass(frozen=True)
class Value(Feature):
    dtype: str

    def arrow(self):
        return _VALUE_TYPES[self.dtype]

    def card(self, name):
        return {"name": name, "dtype": self.dtype}

    def hf(self):
        return {"dtype": self.dtype, "_type": "Value"}


@dataclass(frozen=True)
class ImageFeature(Feature):
    def arrow(self):
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])

    def card(self, name):
        return {"name": name, "dtype": "image"}

    def hf(self):
        return {"_type": "Image"}


@dataclass(frozen=True)
class Sequence(Feature):
    """``Sequence(Value(...))``: a list of scalars (card ``sequence: string`` as the 2024 cards write it)."""
    item: Value

    def arrow(self):
        return pa.list_(self.item.arrow())

    def card(self, name):
        return {"name": name, "sequence": self.item.dtype}

    def hf(self):
        return {"feature": self.item.hf(), "_type": "Sequence"}


@dataclass(frozen=True)
class Struct(Feature):
    fields: tuple[tuple[str, Feature], ...]

    def arrow(self):
        return pa.struct([(name, f.arrow()) for name, f in self.fields])

    def card(self, name):
        return {"name": name, "struct": [f.card(n) for n, f in self.fields]}

    def hf(self):
        return {n: f.hf() for n, f in self.fields}


@dataclass(frozen=True)
class ListOf(Feature):
    """A list of dicts (card ``list:``), stored as list<struct>."""
    item: Struct

    def arrow(self):
        return pa.list_(self.item.arrow())

    def card(self, name):
        return {"name": name, "list": [f.card(n) for n, f in self.item.fields]}

    def hf(self):
        return [self.item.hf()]


STRING, BOOL, INT8, INT32, INT64 = (Value(t) for t in ("string", "bool", "int8", "int32", "int64"))
IMAGE = ImageFeature()
STRINGS = Sequence(STRING)


def arrow_schema(features: tuple[tuple[str, Feature], ...]) -> pa.Schema:
    """The schema ``datasets`` writes for these features, with its ``huggingface`` metadata."""
    meta = json.dumps({"info": {"features": {n: f.hf() for n, f in features}}})
    return pa.schema([(n, f.arrow()) for n, f in features], metadata={"huggingface": meta})


# --------------------------------------------------------------------------------------------------
# Pictures: deterministic, different for each seed; the seed is also written into pixel (0, 0).

def _colour(seed: int, salt: str) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{salt}:{seed}".encode()).digest()
    return digest[0], digest[1], digest[2]


@functools.lru_cache(maxsize=None)
def picture(seed: int, size: tuple[int, int] = (32, 32), mode: str = "RGB", fmt: str = "PNG") -> bytes:
    """A small picture (a coloured shape on a coloured ground) unique to ``seed``; ``mode`` RGB, RGBA,
    L (grayscale) or P (palette); ``fmt`` PNG or JPEG. The same bytes on every run."""
    width, height = size
    image = Image.new("RGB", size, _colour(seed, "ground"))
    draw = ImageDraw.Draw(image)
    box = (width // 5, height // 5, width - 1 - width // 6, height - 1 - height // 6)
    (draw.ellipse if seed % 2 else draw.rectangle)(box, fill=_colour(seed, "shape"))
    image.putpixel((0, 0), (seed & 255, (seed >> 8) & 255, (seed >> 16) & 255))
    if mode == "RGBA":
        image = image.convert("RGBA")
        alpha = Image.new("L", size, 255)
        ImageDraw.Draw(alpha).rectangle((0, 0, width // 3, height - 1), fill=96)
        image.putalpha(alpha)
    elif mode == "P":
        image = image.quantize(colors=8, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    elif mode != "RGB":
        image = image.convert(mode)
    out = io.BytesIO()
    if fmt == "JPEG":
        image.save(out, "JPEG", quality=90, subsampling=2, optimize=False, progressive=False)
    else:
        image.save(out, "PNG", compress_level=6, optimize=False)
    return out.getvalue()


def image_value(seed: int, path: str | None, **kwargs) -> dict:
    return {"bytes": picture(seed, **kwargs), "path": path}


def _hash(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Repository specs.

@dataclass
class Shard:
    path: str                      # relative to the repository root
    rows: list[dict]


@dataclass
class SplitSpec:
    name: str
    pattern: str                   # the card's data_files path for this split
    shards: list[Shard]

    @property
    def rows(self) -> list[dict]:
        return [row for shard in self.shards for row in shard.rows]


@dataclass
class ConfigSpec:
    name: str
    features: tuple[tuple[str, Feature], ...]
    splits: list[SplitSpec]

    def split(self, name: str) -> SplitSpec:
        return next(s for s in self.splits if s.name == name)


@dataclass
class RepoSpec:
    repo: str
    configs: list[ConfigSpec]
    card_configs: bool = True       # the real card has a ``configs`` block
    card_dataset_info: bool = True  # the real card has a ``dataset_info`` block
    card_extra: dict = field(default_factory=dict)
    image_target: tuple[str, str] | None = None   # (config, split) that corrupt_image_row refers to

    def config(self, name: str) -> ConfigSpec:
        return next(c for c in self.configs if c.name == name)


def shard_rows(folder: str, split: str, rows: list[dict], counts: list[int], total: int | None = None,
               hashed: str | None = None) -> list[Shard]:
    """``rows`` cut into shards of ``counts`` rows, named ``folder/split-0000i-of-0000n[-hash].parquet``."""
    assert sum(counts) == len(rows), (split, counts, len(rows))
    n = total or len(counts)
    shards, start = [], 0
    for i, count in enumerate(counts):
        suffix = f"-{_hash(hashed, split, i)}" if hashed else ""
        shards.append(Shard(f"{folder}/{split}-{i:05d}-of-{n:05d}{suffix}.parquet", rows[start:start + count]))
        start += count
    return shards


def _split(folder: str, name: str, rows: list[dict], counts: list[int] | None = None, **kwargs) -> SplitSpec:
    return SplitSpec(name, f"{folder}/{name}-*", shard_rows(folder, name, rows, counts or [len(rows)], **kwargs))


# --------------------------------------------------------------------------------------------------
# 1. POPE

POPE_FEATURES = (("id", STRING), ("question_id", STRING), ("question", STRING), ("answer", STRING),
                 ("image_source", STRING), ("image", IMAGE), ("category", STRING))
POPE_IMAGES = ("COCO_val2014_000000310196", "COCO_val2014_000000210789")
POPE_OBJECTS = {  # category -> (image index, object, answer), 3 yes and 3 no per category
    "adversarial": [(0, "person", "yes"), (0, "bench", "no"), (0, "dining table", "yes"),
                    (1, "cup", "no"), (1, "car", "yes"), (1, "truck", "no")],
    "popular": [(0, "person", "yes"), (0, "chair", "no"), (0, "dining table", "yes"),
                (1, "person", "no"), (1, "car", "yes"), (1, "bottle", "no")],
    "random": [(0, "person", "yes"), (0, "giraffe", "no"), (0, "dining table", "yes"),
               (1, "toothbrush", "no"), (1, "car", "yes"), (1, "kite", "no")],
}


def _pope_image(index: int) -> dict:
    return image_value(7000 + index, f"{POPE_IMAGES[index]}.jpg", size=(48, 36), fmt="JPEG")


def _pope_rows(category: str, first_id: int) -> list[dict]:
    rows = []
    for j, (image, obj, answer) in enumerate(POPE_OBJECTS[category]):
        article = "an" if obj[0] in "aeiou" else "a"
        rows.append({"id": str(first_id + j), "question_id": str(j + 1),
                     "question": f"Is there {article} {obj} in the image?", "answer": answer,
                     "image_source": POPE_IMAGES[image], "image": _pope_image(image), "category": category})
    return rows


def _pope() -> RepoSpec:
    test = [row for k, cat in enumerate(POPE_OBJECTS) for row in _pope_rows(cat, 6 * k)]
    full = [_split("Full", cat, _pope_rows(cat, 0)[:2]) for cat in POPE_OBJECTS]
    return RepoSpec("lmms-lab/POPE", [
        ConfigSpec("default", POPE_FEATURES, [_split("data", "test", test, [6, 6, 6])]),
        ConfigSpec("Full", POPE_FEATURES, full),
    ], image_target=("default", "test"))


# --------------------------------------------------------------------------------------------------
# 2. GQA

OBJECT_REF = Struct((("objectId", STRING), ("value", STRING)))
GQA_INSTRUCTION_FEATURES = (
    ("id", STRING), ("imageId", STRING), ("question", STRING), ("answer", STRING), ("fullAnswer", STRING),
    ("isBalanced", BOOL), ("groups", Struct((("global", STRING), ("local", STRING)))),
    ("entailed", STRING), ("equivalent", STRING),
    ("types", Struct((("structural", STRING), ("semantic", STRING), ("detailed", STRING)))),
    ("annotations", Struct((("question", ListOf(OBJECT_REF)), ("answer", ListOf(OBJECT_REF)),
                            ("fullAnswer", ListOf(OBJECT_REF))))),
    ("semantic", ListOf(Struct((("operation", STRING), ("argument", STRING),
                                ("dependencies", Sequence(INT32)))))),
    ("semanticStr", STRING),
)
GQA_IMAGE_FEATURES = (("id", STRING), ("image", IMAGE))
GQA_IMAGE_IDS = ("n161313", "n235859", "n336443")


def _gqa_row(qid: str, image: str, question: str, answer: str, full: str, types: tuple[str, str, str],
             program: list[tuple[str, str, list[int]]], group: tuple[str | None, str]) -> dict:
    obj = str(1000 + int(qid[-3:]))
    return {
        "id": qid, "imageId": image, "question": question, "answer": answer, "fullAnswer": full,
        "isBalanced": True, "groups": {"global": group[0], "local": group[1]},
        "entailed": f"['{int(qid) + 1}']", "equivalent": f"['{qid}']",
        "types": dict(zip(("structural", "semantic", "detailed"), types)),
        "annotations": {"question": [{"objectId": obj, "value": "3"}], "answer": [],
                        "fullAnswer": [{"objectId": obj, "value": "1"}]},
        "semantic": [{"operation": op, "argument": arg, "dependencies": deps} for op, arg, deps in program],
        "semanticStr": " ".join(f"[{i}] {op}: {arg}" for i, (op, arg, _) in enumerate(program)),
    }


def _gqa() -> RepoSpec:
    a, b, c = GQA_IMAGE_IDS
    rows = [
        _gqa_row("201307251", a, "Is the woman to the left of the bus?", "yes",
                 "Yes, the woman is to the left of the bus.",
                 ("verify", "rel", "relVerify"),
                 [("select", "bus (1307)", []), ("relate", "woman,to the left of,s (1251)", [0]),
                  ("verify rel", "woman,to the left of,o", [1])], (None, "13-bus_to the left of,s")),
        _gqa_row("201307252", a, "What is the vehicle to the right of the woman?", "bus", "The vehicle is a bus.",
                 ("query", "rel", "relS"),
                 [("select", "woman (1251)", []), ("relate", "vehicle,to the right of,s (1307)", [0]),
                  ("query", "name", [1])], ("vehicle", "14-woman_to the right of,s")),
        _gqa_row("201307253", a, "What color is the bus?", "white", "The bus is white.",
                 ("query", "attr", "directOf"),
                 [("select", "bus (1307)", []), ("query", "color", [0])], ("color", "10q-bus_color")),
        _gqa_row("05451384", b, "Is there a fence in the picture?", "no", "No, there is no fence.",
                 ("verify", "obj", "exist"),
                 [("select", "fence", []), ("exist", "?", [0])], (None, "06-fence")),
        _gqa_row("05451385", b, "Which place is this?", "beach", "It is a beach.",
                 ("query", "global", "place"), [("select", "scene", []), ("query", "place", [0])],
                 ("place", "02q-place")),
        _gqa_row("17781034", c, "What is the man holding?", "umbrella", "The man is holding an umbrella.",
                 ("query", "rel", "relO"),
                 [("select", "man (1034)", []), ("relate", "_,holding,o (1099)", [0]), ("query", "name", [1])],
                 ("object", "14-man_holding,o")),
    ]
    images = [{"id": image_id, "image": image_value(7100 + i, f"{image_id}.jpg", size=(40, 30), fmt="JPEG",
                                                    mode="L" if i == 2 else "RGB")}
              for i, image_id in enumerate(GQA_IMAGE_IDS)]
    return RepoSpec("lmms-lab/GQA", [
        ConfigSpec("testdev_balanced_images", GQA_IMAGE_FEATURES,
                   [_split("testdev_balanced_images", "testdev", images)]),
        ConfigSpec("testdev_balanced_instructions", GQA_INSTRUCTION_FEATURES,
                   [_split("testdev_balanced_instructions", "testdev", rows)]),
    ], card_extra={"license": "mit"}, image_target=("testdev_balanced_images", "testdev"))


# --------------------------------------------------------------------------------------------------
# 3. TextVQA

TEXTVQA_FEATURES = (
    ("image_id", STRING), ("question_id", INT32), ("question", STRING), ("question_tokens", STRINGS),
    ("image", IMAGE), ("image_width", INT32), ("image_height", INT32), ("flickr_original_url", STRING),
    ("flickr_300k_url", STRING), ("answers", STRINGS), ("image_classes", STRINGS), ("set_name", STRING),
    ("ocr_tokens", STRINGS),
)
TEXTVQA_ITEMS = [  # question, 10 answers, ocr tokens, classes
    ("what is the brand of this camera?",
     ["nous les gosses"] * 2 + ["dakota"] * 3 + ["clos culombu"] * 4 + ["dakota digital"],
     ["DAKOTA", "DIGITAL", "Single-Use", "Camera"], ["Camera"]),
    ("what does the small white text spell?", ["copenhagen"] * 7 + ["thursday"] * 2 + ["copenhagen thursday"],
     ["COPENHAGEN", "Thursday", "Oct"], ["Poster"]),
    ("what kind of beer is this?", ["ale"] * 6 + ["sublimely self-righteous ale"] * 3 + ["stone"],
     ["SUBLIMELY", "SELF-RIGHTEOUS", "ALE", "STONE"], ["Beer", "Bottle"]),
    ("what number is on the player's jersey?", ["22"] * 10, ["22", "TEXAS"], ["Person", "Ball"]),
    ("who is the author of the book?", ["stephen king"] * 5 + ["king"] * 3 + ["unanswerable", "s. king"],
     ["STEPHEN", "KING", "IT"], ["Book"]),
]


def _textvqa_row(i: int, set_name: str, answered: bool = True) -> dict:
    question, answers, ocr, classes = TEXTVQA_ITEMS[i % len(TEXTVQA_ITEMS)]
    size = (40 + 4 * i, 30)
    image_id = _hash("textvqa", set_name, i)
    return {"image_id": image_id, "question_id": 34602 + i, "question": question,
            "question_tokens": question.rstrip("?").split() + ["?"],
            "image": image_value(7200 + i + 50 * ("train", "val", "test").index(set_name), f"{image_id}.jpg",
                                 size=size, fmt="JPEG"),
            "image_width": size[0], "image_height": size[1],
            "flickr_original_url": f"https://farm2.staticflickr.com/4/{image_id}_o.jpg",
            "flickr_300k_url": f"https://c4.staticflickr.com/4/{image_id}_z.jpg",
            "answers": list(answers) if answered else [], "image_classes": list(classes), "set_name": set_name,
            "ocr_tokens": list(ocr)}


def _textvqa() -> RepoSpec:
    return RepoSpec("lmms-lab/textvqa", [ConfigSpec("default", TEXTVQA_FEATURES, [
        _split("data", "train", [_textvqa_row(0, "train")]),
        _split("data", "validation", [_textvqa_row(i, "val") for i in range(5)], [2, 2, 1]),
        _split("data", "test", [_textvqa_row(0, "test", answered=False)]),
    ])], image_target=("default", "validation"))


# --------------------------------------------------------------------------------------------------
# 4. VizWiz-VQA (the real card has dataset_info but no configs block)

VIZWIZ_FEATURES = (("question_id", STRING), ("image", IMAGE), ("question", STRING), ("answers", STRINGS),
                   ("category", STRING))
VIZWIZ_ITEMS = [
    ("What is this?", ["unanswerable"] * 6 + ["blurry"] * 2 + ["unsuitable", "nothing"], "unanswerable"),
    ("What color is this shirt?", ["blue"] * 8 + ["light blue", "unanswerable"], "other"),
    ("Is this coffee or tea?", ["coffee"] * 7 + ["tea", "unanswerable", "coffee beans"], "other"),
    ("How many dollars is this bill?", ["20"] * 9 + ["twenty"], "number"),
    ("Is the light on?", ["yes"] * 7 + ["no"] * 2 + ["unanswerable"], "yes/no"),
]


def _vizwiz() -> RepoSpec:
    val = [{"question_id": f"VizWiz_val_{i:08d}.jpg",
            "image": image_value(7300 + i, f"VizWiz_val_{i:08d}.jpg", size=(36, 48), fmt="JPEG",
                                 mode="L" if i == 3 else "RGB"),
            "question": q, "answers": list(answers), "category": cat}
           for i, (q, answers, cat) in enumerate(VIZWIZ_ITEMS)]
    test = [{"question_id": f"VizWiz_test_{i:08d}.jpg",
             "image": image_value(7350 + i, f"VizWiz_test_{i:08d}.jpg", size=(36, 48), fmt="JPEG"),
             "question": q, "answers": [], "category": None}
            for i, (q, _, _) in enumerate(VIZWIZ_ITEMS[:2])]
    return RepoSpec("lmms-lab/VizWiz-VQA", [ConfigSpec("default", VIZWIZ_FEATURES, [
        SplitSpec("val", "data/val-*", shard_rows("data", "val", val, [3, 2], hashed="vizwiz")),
        SplitSpec("test", "data/test-*", shard_rows("data", "test", test, [2], hashed="vizwiz")),
    ])], card_configs=False, image_target=("default", "val"))


# --------------------------------------------------------------------------------------------------
# 5. ScienceQA

SCIENCEQA_FEATURES = (
    ("image", IMAGE), ("question", STRING), ("choices", STRINGS), ("answer", INT8), ("hint", STRING),
    ("task", STRING), ("grade", STRING), ("subject", STRING), ("topic", STRING), ("category", STRING),
    ("skill", STRING), ("lecture", STRING), ("solution", STRING),
)
SCIENCEQA_ITEMS = [  # question, choices, answer, hint, subject, topic, category, skill
    ("Which of these states is farthest north?", ["West Virginia", "Louisiana", "Arizona", "Oklahoma"], 0, "",
     "social science", "geography", "Geography", "Read a map: cardinal directions"),
    ("Identify the question that Tom and Justin's experiment can best answer.",
     ["Do ping pong balls stop rolling along the ground sooner after being launched from a 30° angle or a 45° angle?",
      "Do ping pong balls travel farther when launched from a 30° angle compared to a 45° angle?"], 1,
     "The passage below describes an experiment. Read the passage and then follow the instructions below.",
     "natural science", "science-and-engineering-practices", "Designing experiments",
     "Identify the experimental question"),
    ("Which tense does the sentence use?\nMona will print her name with care.",
     ["present tense", "future tense", "past tense"],
     1, "", "language science", "verbs", "Verb tense", "Is the sentence in the past, present, or future tense?"),
    ("What is the capital of Wyoming?", ["Cheyenne", "Honolulu", "Las Cruces", "Spokane", "Laramie"], 0, "",
     "social science", "geography", "Geography", "Identify state capitals of the western United States"),
    ("Which animal's feet are also adapted for grabbing prey?", ["bald eagle", "Eurasian lynx"], 0,
     "Ospreys live near water and eat fish. The feet of the osprey are adapted for grabbing prey. Figure: osprey.",
     "natural science", "biology", "Adaptations", "Animal adaptations: feet"),
]
SCIENCEQA_MODES = ("RGB", "RGBA", "P", "L", "RGB")


def _scienceqa_row(i: int, seed: int | None, split: str) -> dict:
    question, choices, answer, hint, subject, topic, category, skill = SCIENCEQA_ITEMS[i % len(SCIENCEQA_ITEMS)]
    image = None if seed is None else image_value(seed, "image.png", size=(40, 28), mode=SCIENCEQA_MODES[i % 5])
    return {"image": image, "question": question, "choices": list(choices), "answer": answer, "hint": hint,
            "task": "closed choice", "grade": f"grade{3 + i}", "subject": subject, "topic": topic,
            "category": category, "skill": skill,
            "lecture": f"Lecture {i} ({split}): read the question and the choices carefully.",
            "solution": f"The answer is {choices[answer]}."}


def _scienceqa() -> RepoSpec:
    img_test = [_scienceqa_row(i, 7400 + i, "test") for i in range(5)]
    img_val = [_scienceqa_row(i, 7420 + i, "validation") for i in range(2)]
    full_test = [_scienceqa_row(0, 7440, "test"), _scienceqa_row(2, None, "test"), _scienceqa_row(3, None, "test")]
    full_val = [_scienceqa_row(1, None, "validation")]
    return RepoSpec("lmms-lab/ScienceQA", [
        ConfigSpec("ScienceQA-FULL", SCIENCEQA_FEATURES,
                   [_split("ScienceQA-FULL", "validation", full_val), _split("ScienceQA-FULL", "test", full_test)]),
        ConfigSpec("ScienceQA-IMG", SCIENCEQA_FEATURES,
                   [_split("ScienceQA-IMG", "validation", img_val), _split("ScienceQA-IMG", "test", img_test)]),
    ], image_target=("ScienceQA-IMG", "test"))


# --------------------------------------------------------------------------------------------------
# 6. MME

MME_FEATURES = (("question_id", STRING), ("image", IMAGE), ("question", STRING), ("answer", STRING),
                ("category", STRING))
MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
                  "artwork", "OCR")
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
MME_CATEGORIES = MME_PERCEPTION + MME_COGNITION
MME_QUESTIONS = {  # category -> (question answered Yes, question answered No)
    "existence": ("Is there a train in this image?", "Is there a bed in this image?"),
    "count": ("Are there two dogs in the image?", "Are there four dogs in the image?"),
    "position": ("Is the cake on the left side of the plate?", "Is the cake on the right side of the plate?"),
    "color": ("Is there a red coat in the image?", "Is there a yellow coat in the image?"),
    "posters": ("Is this movie directed by francis ford coppola?", "Is this movie directed by franklin j. schaffner?"),
    "celebrity": ("Is the actor inside the red bounding box named Jack Nicholson?",
                  "Is the actor inside the red bounding box named Richard Gere?"),
    "scene": ("Is this photo taken in a place of greenhouse indoor?",
              "Is this photo taken in a place of waiting room?"),
    "landmark": ("Is this an image of Beijing Guozijian?", "Is this an image of Klinikum Stuttgart?"),
    "artwork": ("Does this artwork exist in the form of painting?",
                "Does this artwork exist in the form of sculpture?"),
    "OCR": ("Is the word in the logo \"high time coffee shop\"?", "Is the word in the logo \"high tite cofeee shop\"?"),
    "commonsense_reasoning": ("Should I stop when I'm about to cross the street?",
                              "When I see the sign, can I cross the street?"),
    "numerical_calculation": ("Is the answer to the arithmetic question in the image 65?",
                              "Is the answer to the arithmetic question in the image 56?"),
    "text_translation": ("Is it appropriate to translate the Chinese in the image into English 'classic taste' "
                         "in the picture?",
                         "Is it appropriate to translate the Chinese in the image into English 'classic strength' "
                         "in the picture?"),
    "code_reasoning": ("The image shows a python code. Is the output of the code 'Hello'?",
                       "The image shows a python code. Is the output of the code 'World'?"),
}
MME_EXTRA_IMAGES = ("existence", "count", "numerical_calculation", "code_reasoning")  # 2 images in these
MME_SUFFIX = " Please answer yes or no."


def _mme_path(category: str, k: int) -> str:
    if category in MME_COGNITION:
        return f"{category}/{20 + k:04d}.png"
    if category in ("posters", "celebrity", "scene", "landmark", "artwork"):
        return f"{category}/images/{10002 + k}.jpg"
    return f"{category}/{6040 + 113 * k:012d}.jpg"


def _mme() -> RepoSpec:
    rows, seed = [], 7500
    for category in MME_CATEGORIES:
        for k in range(2 if category in MME_EXTRA_IMAGES else 1):
            path = _mme_path(category, k)
            mode = "L" if category == "OCR" else "RGBA" if category == "code_reasoning" and k == 1 else "RGB"
            image = image_value(seed, path.rsplit("/", 1)[-1], size=(32, 24), mode=mode,
                                fmt="PNG" if path.endswith(".png") else "JPEG")
            seed += 1
            yes, no = MME_QUESTIONS[category]
            order = [(yes, "Yes"), (no, "No")] if k == 0 else [(no, "No"), (yes, "Yes")]
            rows += [{"question_id": path, "image": image, "question": q + MME_SUFFIX, "answer": a,
                      "category": category} for q, a in order]
    n = len(rows)
    counts = [8, 10, n - 8 - 10 - 6, 6]   # four shards as on the hub; pairs never straddle a shard
    return RepoSpec("lmms-lab/MME", [ConfigSpec("default", MME_FEATURES, [
        SplitSpec("test", "data/test-*", shard_rows("data", "test", rows, counts, hashed="mme"))])],
        card_extra={"size_categories": ["1K<n<10K"]}, image_target=("default", "test"))


# --------------------------------------------------------------------------------------------------
# 7. HallusionBench

HALLUSION_FEATURES = tuple((name, STRING) for name in (
    "category", "subcategory", "visual_input", "set_id", "figure_id", "sample_note", "question_id", "question",
    "gt_answer_details", "gt_answer", "filename")) + (("image", IMAGE),)


def _hb_row(category, subcategory, visual_input, set_id, figure_id, note, question_id, question, details, answer,
            seed=None) -> dict:
    filename = None if visual_input == "0" else f"./hallusion_bench/{category}/{subcategory}/{set_id}_{figure_id}.png"
    image = None if seed is None else image_value(seed, f"{set_id}_{figure_id}.png", size=(36, 28),
                                                  mode="RGBA" if category == "VS" else "RGB")
    return {"category": category, "subcategory": subcategory, "visual_input": visual_input, "set_id": set_id,
            "figure_id": figure_id, "sample_note": note, "question_id": question_id, "question": question,
            "gt_answer_details": details, "gt_answer": answer, "filename": filename, "image": image}


def _hallusion() -> RepoSpec:
    q0 = "Is the right orange circle the same size as the left orange circle?"
    q1 = "Is the right orange circle larger than the left orange circle?"
    c0 = "According to the chart, is the GDP of China higher than the GDP of Japan in 2020?"
    image = [  # VD/illusion set 0: two questions on the original (figure 0) and on the edited figure 1
        _hb_row("VD", "illusion", "1", "0", "0", "circle", "0", q0,
                "The right orange circle is the same size as the left orange circle.", "1", seed=7600),
        _hb_row("VD", "illusion", "1", "0", "0", "circle", "1", q1,
                "The right orange circle is the same size as the left orange circle.", "0", seed=7600),
        _hb_row("VD", "illusion", "2", "0", "1", "circle", "0", q0,
                "The right orange circle is larger than the left orange circle.", "0", seed=7601),
        _hb_row("VD", "illusion", "2", "0", "1", "circle", "1", q1,
                "The right orange circle is larger than the left orange circle.", "1", seed=7601),
        # VS/chart set 1: one question on the original chart (figure 1) and the edited one (figure 2); figure 0
        # is the same question without a figure, in the non_image split (HallusionBench.json numbers VS so)
        _hb_row("VS", "chart", "1", "1", "1", "gdp", "0", c0,
                "China's GDP was higher than Japan's in 2020.", "1", seed=7602),
        _hb_row("VS", "chart", "2", "1", "2", "gdp", "0", c0,
                "In the edited chart Japan's GDP is higher than China's in 2020.", "0", seed=7603),
    ]
    non_image = [
        _hb_row("VS", "chart", "0", "1", "0", "gdp", "0", "Is the GDP of China higher than the GDP of Japan in 2020?",
                "China's GDP was higher than Japan's in 2020.", "1"),
        _hb_row("VS", "table", "0", "2", "0", "olympics", "0",
                "Did the United States win more gold medals than China at the 2008 Summer Olympics?",
                "No, China won 48 gold medals and the United States 36.", "0"),
    ]
    return RepoSpec("lmms-lab/HallusionBench", [ConfigSpec("default", HALLUSION_FEATURES, [
        _split("data", "image", image), _split("data", "non_image", non_image)])],
        image_target=("default", "image"))


# --------------------------------------------------------------------------------------------------
# 8. COCO-Caption2017

COCO_FEATURES = (("question_id", STRING), ("image", IMAGE), ("question", STRING), ("answer", STRINGS),
                 ("id", INT64), ("license", INT8), ("file_name", STRING), ("coco_url", STRING),
                 ("height", INT32), ("width", INT32), ("date_captured", STRING))
COCO_PROMPT = "Provide a one-sentence caption for the provided image."
COCO_CAPTIONS = [
    ["A man riding a wave on top of a surfboard.", "A surfer rides a large wave in the ocean.",
     "A person on a surfboard in the water.", "A surfer is riding the crest of a wave.",
     "Someone surfing on a big blue wave."],
    ["A plate of food with broccoli and rice.", "A white plate topped with rice and vegetables.",
     "Broccoli, rice and chicken on a dinner plate.", "A healthy meal served on a plate.",
     "Food on a plate sitting on a table."],
    ["A black and white photo of a train station.", "An old train at a platform.",
     "A steam train parked beside a station.", "A grayscale picture of a locomotive.",
     "People waiting for a train at the station."],
    ["Two giraffes standing next to a tree.", "A pair of giraffes eating leaves from a tree.",
     "Giraffes in a grassy field near trees.", "Two tall giraffes in the wild.",
     "Giraffes stand together under a blue sky."],
]


def _coco_row(i: int, image_id: int, split: str, captions: list[str], mode: str = "RGB") -> dict:
    name = f"{image_id:012d}.jpg"
    size = (48, 32) if i % 2 == 0 else (32, 48)
    return {"question_id": name, "image": image_value(7700 + i + (50 if split == "test" else 0), name, size=size,
                                                      mode=mode, fmt="JPEG"),
            "question": COCO_PROMPT, "answer": list(captions), "id": image_id, "license": 3, "file_name": name,
            "coco_url": f"http://images.cocodataset.org/{split}2017/{name}", "height": size[1], "width": size[0],
            "date_captured": f"2013-11-{14 + i} 16:28:13"}


def _coco() -> RepoSpec:
    val = [_coco_row(i, image_id, "val", COCO_CAPTIONS[i], mode="L" if i == 2 else "RGB")
           for i, image_id in enumerate((397133, 37777, 252219, 87038))]
    test = [_coco_row(i, image_id, "test", []) for i, image_id in enumerate((1, 2))]
    return RepoSpec("lmms-lab/COCO-Caption2017", [ConfigSpec("default", COCO_FEATURES, [
        _split("data", "val", val, [2, 2]),
        SplitSpec("test", "data/test-*", shard_rows("data", "test", test, [2], total=14)),
    ])], image_target=("default", "val"))


# --------------------------------------------------------------------------------------------------
# 9. MMVet

MMVET_FEATURES = (("question_id", STRING), ("image", IMAGE), ("question", STRING), ("answer", STRING),
                  ("image_source", STRING), ("capability", STRING))
MMVET_ITEMS = [
    ("What is x in the equation?", "-1<AND>-5", "rec,ocr,math"),
    ("What is the price difference between diesel and regular gasoline?", "0.11", "ocr,math"),
    ("Which car is on the parking spot 33?", "no<OR>empty", "rec,ocr,spat"),
    ("What occasions would someone use this meme?", "This meme is used to express mock surprise.", "rec,know,gen"),
    ("Where is this photo taken?", "Qatar", "rec,know"),
    ("Is the man on the left of the woman?", "yes", "spat"),
]


def _mmvet() -> RepoSpec:
    rows = [{"question_id": f"v1_{i}", "image": image_value(7800 + i, f"v1_{i}.png", size=(32, 32),
                                                            mode=("RGB", "RGBA", "L")[i % 3]),
             "question": q, "answer": a, "image_source": f"v1_{i}", "capability": cap}
            for i, (q, a, cap) in enumerate(MMVET_ITEMS)]
    return RepoSpec("lmms-lab/MMVet", [ConfigSpec("default", MMVET_FEATURES, [_split("data", "test", rows)])],
                    image_target=("default", "test"))


# --------------------------------------------------------------------------------------------------
# 10. SocialCounterfactuals (the real card is ``license: mit``: no dataset_info, no configs)

SOCIAL_FEATURES = (("image", IMAGE),) + tuple((name, STRING) for name in (
    "dataset_segment", "a1_type", "a2_type", "counterfactual_set", "caption", "a1", "a2", "a1a2"))
RACES = ("White", "Black", "Indian", "Asian", "Middle Eastern", "Latino")
GENDERS = ("male", "female")
PHYSICAL = ("attractive", "beautiful", "handsome", "pretty", "slim", "skinny", "young", "unattractive", "fat",
            "overweight", "obese", "scarred", "tattooed", "old")
SOCIAL_SEGMENTS = {  # segment -> (a1_type, a1 values, a2_type, a2 values, set size)
    "race_gender": ("race", RACES, "gender", GENDERS, 12),
    "physical_gender": ("physical", PHYSICAL, "gender", GENDERS, 28),
    "physical_race": ("physical", PHYSICAL, "race", RACES, 84),
}


def _article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def _social_set(segment: str, prefix: str, occupation: str, seed: int) -> list[dict]:
    a1_type, a1s, a2_type, a2s, size = SOCIAL_SEGMENTS[segment]
    slug = "_".join([*prefix.lower().split(), segment, *occupation.lower().split()])
    cf_set = f"{slug}_{seed}"
    rows = []
    for a1 in a1s:
        for a2 in a2s:
            subject = f"{_article(a1)} {a1} {a2} {occupation}"
            rows.append({"image": image_value(seed * 1000 + len(rows), f"{cf_set}_{len(rows)}.png", size=(8, 8)),
                         "dataset_segment": segment, "a1_type": a1_type, "a2_type": a2_type,
                         "counterfactual_set": cf_set, "caption": f"{prefix} {subject}" if prefix else subject,
                         "a1": a1, "a2": a2, "a1a2": f"{a1} {a2}"})
    assert len(rows) == size
    return rows


def _social() -> RepoSpec:
    rows = (_social_set("race_gender", "A photo of", "plumber", 3761)
            + _social_set("physical_gender", "", "carpenter", 3918)
            + _social_set("physical_race", "An image of", "researcher", 3082))
    counts = [12 + 20, len(rows) - 32]   # the physical_gender set straddles the two shards
    return RepoSpec("Intel/SocialCounterfactuals", [ConfigSpec("default", SOCIAL_FEATURES, [
        SplitSpec("train", "data/train-*", shard_rows("data", "train", rows, counts, hashed="social"))])],
        card_configs=False, card_dataset_info=False, card_extra={"license": "mit"},
        image_target=("default", "train"))


BUILDERS = {
    "lmms-lab/POPE": _pope, "lmms-lab/GQA": _gqa, "lmms-lab/textvqa": _textvqa,
    "lmms-lab/VizWiz-VQA": _vizwiz, "lmms-lab/ScienceQA": _scienceqa, "lmms-lab/MME": _mme,
    "lmms-lab/HallusionBench": _hallusion, "lmms-lab/COCO-Caption2017": _coco, "lmms-lab/MMVet": _mmvet,
    "Intel/SocialCounterfactuals": _social,
}
assert tuple(BUILDERS) == DATASETS


def spec(name: str) -> RepoSpec:
    """The rows and layout ``write_dataset(name, ...)`` writes (fresh objects on each call)."""
    if name not in BUILDERS:
        raise KeyError(f"unknown dataset {name!r}; known: {DATASETS}")
    return BUILDERS[name]()


# --------------------------------------------------------------------------------------------------
# Writing.

def _card(repo: RepoSpec, features: dict[str, tuple], sizes: dict[str, dict[str, tuple[int, int, int]]],
          names: dict[str, str], with_configs: bool) -> str:
    header: dict[str, Any] = dict(repo.card_extra)
    if repo.card_dataset_info:
        infos = []
        for config in repo.configs:
            split_sizes = sizes[config.name]
            info: dict[str, Any] = {}
            if len(repo.configs) > 1 or names[config.name] != "default":
                info["config_name"] = names[config.name]
            info["features"] = [f.card(n) for n, f in features[config.name]]
            info["splits"] = [{"name": s, "num_bytes": nb, "num_examples": ne}
                              for s, (nb, ne, _) in split_sizes.items()]
            info["download_size"] = sum(size for _, _, size in split_sizes.values())
            info["dataset_size"] = sum(nb for nb, _, _ in split_sizes.values())
            infos.append(info)
        header["dataset_info"] = infos[0] if len(infos) == 1 else infos
    if with_configs:
        header["configs"] = [{"config_name": names[c.name],
                              "data_files": [{"split": s.name, "path": s.pattern} for s in c.splits]}
                             for c in repo.configs]
    body = (f"# Dataset Card for \"{repo.repo.split('/')[1]}\"\n\n"
            "A small offline copy written by tests/dataset_fixtures.py: the public schema and layout of "
            f"{repo.repo}, with generated rows and pictures.\n")
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n" + body


def write_dataset(name: str, root: Path, *, org: str | None = None, drop_column: str | None = None,
                  rename_config: str | Mapping[str, str] | None = None,
                  corrupt_image_row: int | tuple[str, str, int] | None = None,
                  card_configs: bool | None = None) -> Path:
    """Write the fixture copy of ``name`` (one of ``DATASETS``) under ``root/<org>/<name>``; return that
    directory.

    org: write it under another organisation (``"lmms-lab-encoder"``: the 2026 mirror).
    drop_column: leave this column out of every file and of the card (a copy in another schema).
    rename_config: new name for the evaluated config (a str), or {old: new}; the card's config names
        change, the files stay where they are.
    corrupt_image_row: truncate the image bytes of this row (counted over the shards, in file order) of
        the evaluated image split, or of (config, split, row).
    card_configs: force the card's ``configs`` block on (True) or off (False); None: as the real card.
    """
    repo = spec(name)
    repo_id = name if org is None else f"{org}/{name.split('/', 1)[1]}"
    target = Path(root) / repo_id
    target.mkdir(parents=True, exist_ok=True)

    all_columns = {n for c in repo.configs for n, _ in c.features}
    if drop_column is not None and drop_column not in all_columns:
        raise KeyError(f"{name} has no column {drop_column!r}; it has {sorted(all_columns)}")
    names = {c.name: c.name for c in repo.configs}
    if rename_config is not None:
        mapping = {PRIMARY[name][0]: rename_config} if isinstance(rename_config, str) else dict(rename_config)
        unknown = set(mapping) - set(names)
        if unknown:
            raise KeyError(f"{name} has no config {sorted(unknown)}; it has {sorted(names)}")
        names.update(mapping)
    if corrupt_image_row is not None:
        config_name, split_name, index = (corrupt_image_row if isinstance(corrupt_image_row, tuple)
                                          else (*repo.image_target, corrupt_image_row))
        rows = repo.config(config_name).split(split_name).rows
        if not 0 <= index < len(rows) or rows[index].get("image") is None:
            raise IndexError(f"{name} {config_name}/{split_name} row {index} has no image to corrupt")
        image = rows[index]["image"]
        rows[index]["image"] = {"bytes": image["bytes"][: len(image["bytes"]) // 2], "path": image["path"]}

    features, sizes = {}, {}
    for config in repo.configs:
        feats = tuple((n, f) for n, f in config.features if n != drop_column)
        features[config.name] = feats
        schema = arrow_schema(feats)
        sizes[config.name] = {}
        for split in config.splits:
            num_bytes = num_rows = download = 0
            for shard in split.shards:
                table = pa.Table.from_pylist([{n: row[n] for n, _ in feats} for row in shard.rows], schema=schema)
                path = target / shard.path
                path.parent.mkdir(parents=True, exist_ok=True)
                pq.write_table(table, path)
                num_bytes += table.nbytes
                num_rows += table.num_rows
                download += path.stat().st_size
            sizes[config.name][split.name] = (num_bytes, num_rows, download)

    with_configs = repo.card_configs if card_configs is None else card_configs
    (target / "README.md").write_text(_card(repo, features, sizes, names, with_configs), encoding="utf-8")
    return target


def write_all(root: Path, *, org: str | None = None) -> Path:
    """Write all ten datasets under ``root``; return ``root`` (the ``--lvlm-data-dir`` to pass). ``org``
    (e.g. "lmms-lab-encoder") replaces the ``lmms-lab/`` organisation; Intel/ stays where it is."""
    for name in DATASETS:
        write_dataset(name, root, org=org if name.startswith("lmms-lab/") else None)
    return Path(root)
