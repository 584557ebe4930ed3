"""The real-dataset tasks GQA, TextVQA, VizWiz-VQA, ScienceQA-IMG, MME and COCO Captions on small
parquet copies written here in the public hub schema: what each loads, the exact LLaVA prompt,
worked scores, the GQA image join and relation filter, MME pairs at the limit and its totals, and
the errors for a copy of another shape."""

from __future__ import annotations

import io
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pytest_lvlmbench.tasks import data
from pytest_lvlmbench import metrics
from pytest_lvlmbench.tasks.data import DatasetSchemaError
from pytest_lvlmbench.metrics import bootstrap_weights
from pytest_lvlmbench.tasks import coco_caption, gqa, mme, scienceqa, textvqa, vizwiz  # noqa: F401 (registers)
from pytest_lvlmbench.tasks.base import TASKS

SHORT = "\nAnswer the question using a single word or phrase."
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
COLORS = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 255, 0), "gray": (128, 128, 128)}


def png(color: str) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), COLORS[color]).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": f"{color}.png"}


def write(root, repo: str, configs: dict, drop: str | None = None) -> None:
    """A hub dataset copy: README configs header + one parquet file per (config, split).
    ``configs``: {config: {split: (schema fields, rows)}}; ``drop`` leaves a column out."""
    base = root / repo
    header = ["---", "configs:"]
    for config, splits in configs.items():
        folder = "data" if config == "default" else config
        header += [f"- config_name: {config}", "  data_files:"]
        for split, (fields, rows) in splits.items():
            header += [f"  - split: {split}", f"    path: {folder}/{split}-*"]
            schema = pa.schema([f for f in fields if f.name != drop])
            table = pa.Table.from_pylist([{k: v for k, v in row.items() if k != drop} for row in rows], schema=schema)
            (base / folder).mkdir(parents=True, exist_ok=True)
            pq.write_table(table, base / folder / f"{split}-00000-of-00001.parquet")
    (base / "README.md").write_text("\n".join([*header, "---", "", "a test copy"]) + "\n")


# ----------------------------------------------------------------------------- the copies

def f(name, kind):
    return pa.field(name, kind)


GQA_Q = [f("id", pa.string()), f("imageId", pa.string()), f("question", pa.string()), f("answer", pa.string()),
         f("fullAnswer", pa.string()),
         f("types", pa.struct([("structural", pa.string()), ("semantic", pa.string()), ("detailed", pa.string())]))]
GQA_I = [f("id", pa.string()), f("image", IMAGE)]


def gqa_rows():
    def q(qid, image, question, answer, semantic):
        return {"id": qid, "imageId": image, "question": question, "answer": answer, "fullAnswer": answer + ".",
                "types": {"structural": "query", "semantic": semantic, "detailed": semantic + "Detail"}}
    return [q("201307251", "n1", "Is it overcast?", "no", "global"),
            q("201640614", "n2", "Who is wearing the dress?", "woman", "rel"),
            q("202225914", "n1", "What is on the table?", "cup", "rel"),
            q("20000004", "n2", "What color is the car?", "red", "attr"),
            q("20000005", "n1", "Is the cat to the left of the dog?", "yes", "rel")]


def gqa_configs(rows=None):
    images = [{"id": image, "image": png(colour)} for image, colour in (("n2", "blue"), ("n3", "green"), ("n1", "red"))]
    return {"testdev_balanced_instructions": {"testdev": (GQA_Q, rows or gqa_rows())},
            "testdev_balanced_images": {"testdev": (GQA_I, images)}}


TEXTVQA = [f("image_id", pa.string()), f("question_id", pa.int32()), f("question", pa.string()),
           f("question_tokens", pa.list_(pa.string())), f("image", IMAGE), f("answers", pa.list_(pa.string())),
           f("ocr_tokens", pa.list_(pa.string())), f("set_name", pa.string())]
CAMERA_ANSWERS = ["dakota"] * 4 + ["dakota digital"] * 3 + ["pire"] * 2 + ["camera"]


def textvqa_rows():
    def row(image_id, qid, question, answers, ocr, color):
        return {"image_id": image_id, "question_id": qid, "question": question, "question_tokens": question.split(),
                "image": png(color), "answers": answers, "ocr_tokens": ocr, "set_name": "val"}
    return [row("003a8ae2ef43b901", 34602, "what is the brand of this camera?", CAMERA_ANSWERS,
                ["DAKOTA", "DIGITAL", "Single-Use", "Camera", "Pire", "digitat"], "red"),
            row("5ce862cbefd8458f", 34614, "is this Denny's?", ["yes"] * 10, ["Deniy's", "D"], "blue"),
            row("97b1112b17015396", 34640, "whats the lowest number yard line that you can see?", ["50"] * 10, [],
                "green")]


VIZWIZ = [f("question_id", pa.string()), f("image", IMAGE), f("question", pa.string()),
          f("answers", pa.list_(pa.string())), f("category", pa.string())]


def vizwiz_rows():
    return [{"question_id": "VizWiz_val_00000000", "image": png("red"), "question": " what color is this shirt?",
             "answers": ["blue"] * 5 + ["navy blue"] * 3 + ["unanswerable"] * 2, "category": "other"},
            {"question_id": "VizWiz_val_00000001", "image": png("blue"), "question": "What is this? ",
             "answers": ["unanswerable"] * 10, "category": "unanswerable"},
            {"question_id": "VizWiz_val_00000002", "image": png("green"), "question": "Is it ON?",
             "answers": ["yes", "no"], "category": "yes/no"}]


SQA = [f("image", IMAGE), f("question", pa.string()), f("choices", pa.list_(pa.string())), f("answer", pa.int8()),
       f("hint", pa.string()), f("task", pa.string()), f("lecture", pa.string())]
MAGNETS_HINT = ("The images below show two pairs of magnets. The magnets in different pairs do not affect each other. "
                "All the magnets shown are made of the same material, but some of them are different sizes and shapes.")


def sqa_rows(image=True):
    def row(question, choices, answer, hint, color):
        return {"image": png(color) if image else None, "question": question, "choices": choices, "answer": answer,
                "hint": hint, "task": "closed choice", "lecture": ""}
    return [row("What is the name of the colony shown?", ["Maryland", "New Hampshire", "Rhode Island", "Vermont"], 1,
                "", "red"),
            row("Think about the magnetic force between the magnets in each pair. Which of the following statements "
                "is true?", ["The magnitude of the magnetic force is the same in both pairs.",
                             "The magnitude of the magnetic force is smaller in Pair 1.",
                             "The magnitude of the magnetic force is smaller in Pair 2."], 2, MAGNETS_HINT, "blue"),
            row("Which is the odd one out?", ["a", "b", "c", "d", "e"], 4, "", "green")]


MME_FIELDS = [f("question_id", pa.string()), f("image", IMAGE), f("question", pa.string()), f("answer", pa.string()),
              f("category", pa.string())]
YN = " Please answer yes or no."


def mme_rows():
    def pair(image, category, yes_question, no_question, color):
        return [{"question_id": image, "image": png(color), "question": yes_question, "answer": "Yes",
                 "category": category},
                {"question_id": image, "image": png(color), "question": no_question, "answer": "No",
                 "category": category}]
    return [*pair("existence/000000006040.jpg", "existence", "Is there a train in this image?" + YN,
                  "Is there a bed in this image?" + YN, "red"),
            *pair("code_reasoning/0020.png", "code_reasoning", "Is a python code shown in the picture?" + YN,
                  "Is a c++ code shown in the picture?" + YN, "gray"),
            *pair("count/000000450303.jpg", "count", "Are there two people in this image? " + YN,
                  "Are there three people in this image?" + YN, "blue"),
            *pair("commonsense_reasoning/0001.png", "commonsense_reasoning", "Is it safe to cross?" + YN,
                  "Is it raining?" + YN, "gray"),
            *pair("position/000000574087.jpg", "position", "Is the motorcycle on the left side of the bus" + YN,
                  "Is the motorcycle on the right side of the bus" + YN, "green"),
            *pair("numerical_calculation/0001.png", "numerical_calculation", "Is the answer 8?" + YN,
                  "Is the answer 9?" + YN, "gray"),
            *pair("text_translation/0001.png", "text_translation", "Is it translated as 'hello'?" + YN,
                  "Is it translated as 'goodbye'?" + YN, "gray")]


COCO = [f("question_id", pa.string()), f("image", IMAGE), f("question", pa.string()),
        f("answer", pa.list_(pa.string())), f("id", pa.int64()), f("file_name", pa.string())]


def coco_rows():
    return [{"question_id": "000000179765.jpg", "image": png("red"), "question": "Please carefully observe the image",
             "answer": ["A dog runs."], "id": 38, "file_name": "000000179765.jpg"},
            {"question_id": "000000190236.jpg", "image": png("blue"), "question": "Please carefully observe the image",
             "answer": ["A cat sleeps."], "id": 38, "file_name": "000000190236.jpg"}]


def build_all(root, drop: dict | None = None) -> None:
    drop = drop or {}
    write(root, "lmms-lab/GQA", gqa_configs(), drop.get("lmms-lab/GQA"))
    write(root, "lmms-lab/textvqa", {"default": {"validation": (TEXTVQA, textvqa_rows())}},
          drop.get("lmms-lab/textvqa"))
    write(root, "lmms-lab/VizWiz-VQA", {"default": {"val": (VIZWIZ, vizwiz_rows())}}, drop.get("lmms-lab/VizWiz-VQA"))
    write(root, "lmms-lab/ScienceQA", {"ScienceQA-IMG": {"test": (SQA, sqa_rows())}}, drop.get("lmms-lab/ScienceQA"))
    write(root, "lmms-lab/MME", {"default": {"test": (MME_FIELDS, mme_rows())}}, drop.get("lmms-lab/MME"))
    write(root, "lmms-lab/COCO-Caption2017", {"default": {"val": (COCO, coco_rows())}},
          drop.get("lmms-lab/COCO-Caption2017"))


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    build_all(root)
    return root


@pytest.fixture
def data_at(monkeypatch):
    """Point the data directories somewhere for one test (the hub cache is never consulted), reset after."""
    monkeypatch.delenv("LVLMBENCH_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "_data_dirs", [])
    monkeypatch.setattr(data, "_hub_snapshot", lambda repo: None)
    return lambda *paths: data.set_data_dirs(list(paths))


def color(sample) -> tuple:
    return sample.image().getpixel((0, 0))


# ----------------------------------------------------------------------------- GQA

def test_gqa_joins_each_question_to_its_image_and_keeps_the_file_order(copies, data_at):
    data_at(copies)
    task = TASKS["gqa"]
    samples = task.load(None)
    assert [s.id for s in samples] == ["201307251", "201640614", "202225914", "20000004", "20000005"]
    assert [color(s) for s in samples] == [COLORS[c] for c in ("red", "blue", "red", "blue", "red")]
    assert [s.meta["cluster"] for s in samples] == ["n1", "n2", "n1", "n2", "n1"]
    assert samples[0].references == ("no",)
    assert task.prompt(samples[0]) == "Is it overcast?\nAnswer the question using a single word or phrase."
    assert [s.id for s in task.load(2)] == ["201307251", "201640614"]
    assert (task.capability, task.primary, task.max_new_tokens) == ("visual_reasoning", "accuracy", 16)
    # LLaVA: strip, rstrip('.'), lower, exact match: "No." and "Woman" count, "the cup" does not.
    stats = task.statistics(samples, ["No.", "Woman", "the cup", "Red", "yes"])
    assert stats["accuracy"].value() == pytest.approx(4 / 5)


def test_gqa_spatial_keeps_the_relation_questions_and_limits_after_filtering(copies, data_at):
    data_at(copies)
    task = TASKS["gqa_spatial"]
    assert [s.id for s in task.load(None)] == ["201640614", "202225914", "20000005"]
    assert [s.id for s in task.load(2)] == ["201640614", "202225914"]
    assert task.capability == "spatial"
    assert task.prompt(task.load(None)[2]) == "Is the cat to the left of the dog?" + SHORT
    assert task.statistics(task.load(None), ["woman", "plate", "Yes."])["accuracy"].value() == pytest.approx(2 / 3)


def test_gqa_reads_the_image_config_once_and_only_when_a_question_needs_it(tmp_path, data_at, monkeypatch):
    write(tmp_path, "lmms-lab/GQA", gqa_configs())
    data_at(tmp_path)
    reads = []

    def counting(dataset, *args, **kwargs):
        reads.append(dataset.config)
        return data.read_rows(dataset, *args, **kwargs)

    monkeypatch.setattr(gqa, "read_rows", counting)
    assert TASKS["gqa"].available() is None and reads == []
    TASKS["gqa"].load(None)
    TASKS["gqa_spatial"].load(1)
    TASKS["gqa"].load(3)
    assert reads == ["testdev_balanced_images"]


def test_gqa_question_of_an_unknown_image_is_a_schema_error(tmp_path, data_at):
    rows = gqa_rows()
    rows[1]["imageId"] = "n9"
    write(tmp_path, "lmms-lab/GQA", gqa_configs(rows))
    data_at(tmp_path)
    with pytest.raises(DatasetSchemaError, match=r"lmms-lab/GQA .*'201640614' has imageId 'n9', and no row"):
        TASKS["gqa"].load(None)


def test_gqa_spatial_needs_the_semantic_type(tmp_path, data_at):
    fields = [field if field.name != "types" else pa.field("types", pa.struct([("structural", pa.string())]))
              for field in GQA_Q]
    rows = [{**row, "types": {"structural": "query"}} for row in gqa_rows()]
    configs = gqa_configs()
    configs["testdev_balanced_instructions"]["testdev"] = (fields, rows)
    write(tmp_path, "lmms-lab/GQA", configs)
    data_at(tmp_path)
    assert len(TASKS["gqa"].load(None)) == 5            # gqa does not read 'types'
    with pytest.raises(DatasetSchemaError, match=r"lmms-lab/GQA .*column 'types'.*types\.semantic"):
        TASKS["gqa_spatial"].load(None)


# ----------------------------------------------------------------------------- TextVQA

def test_textvqa_prompt_has_the_ocr_line_as_llava_and_the_ocr_free_one_does_not(copies, data_at):
    data_at(copies)
    ocr, free = TASKS["textvqa"], TASKS["textvqa_ocr_free"]
    with_ocr, without = ocr.load(None), free.load(None)
    assert [s.id for s in with_ocr] == ["34602", "34614", "34640"] == [s.id for s in without]
    assert with_ocr[0].meta["cluster"] == "003a8ae2ef43b901"
    assert [ocr.prompt(s) for s in with_ocr] == [
        "What is the brand of this camera?\nReference OCR token: DAKOTA, DIGITAL, Single-Use, Camera, Pire, digitat"
        "\nAnswer the question using a single word or phrase.",
        "Is this denny's?\nReference OCR token: Deniy's, D\nAnswer the question using a single word or phrase.",
        "Whats the lowest number yard line that you can see?\nReference OCR token: \n"
        "Answer the question using a single word or phrase."]
    assert [free.prompt(s) for s in without] == [
        "What is the brand of this camera?\nAnswer the question using a single word or phrase.",
        "Is this denny's?\nAnswer the question using a single word or phrase.",
        "Whats the lowest number yard line that you can see?\nAnswer the question using a single word or phrase."]
    assert (ocr.max_new_tokens, ocr.primary) == (128, "vqa_accuracy")


def test_textvqa_scores_the_m4c_soft_accuracy(copies, data_at):
    data_at(copies)
    task = TASKS["textvqa"]
    samples = task.load(None)
    # "Dakota digital": 3 equal answers; each of those 3 sees 2 others (2/3), the 7 others see 3 (1): 9/10.
    # "Yes.": normalised to "yes", all ten agree: 1. "no" against ten "50": 0.
    stats = task.statistics(samples, ["Dakota digital", "Yes.", "no"])["vqa_accuracy"]
    assert stats.value() == pytest.approx((0.9 + 1.0 + 0.0) / 3)
    assert not stats.binary
    # "pire": 2 equal; those see 1 (1/3), the 8 others see 2 (2/3): (2/3 + 16/3) / 10 = 0.6.
    # "camera.": 1 equal; it sees 0, the 9 others see 1 (1/3): 3/10.
    assert task.statistics(samples[:1], ["pire"])["vqa_accuracy"].value() == pytest.approx(0.6)
    assert task.statistics(samples[:1], ["camera."])["vqa_accuracy"].value() == pytest.approx(0.3)


# ----------------------------------------------------------------------------- VizWiz

def test_vizwiz_prompt_capitalizes_as_llava_and_keeps_the_spaces(copies, data_at):
    data_at(copies)
    task = TASKS["vizwiz_vqa"]
    samples = task.load(None)
    assert [s.id for s in samples] == ["VizWiz_val_00000000", "VizWiz_val_00000001", "VizWiz_val_00000002"]
    assert [task.prompt(s) for s in samples] == [
        " what color is this shirt?\nWhen the provided information is insufficient, respond with 'Unanswerable'."
        "\nAnswer the question using a single word or phrase.",
        "What is this? \nWhen the provided information is insufficient, respond with 'Unanswerable'."
        "\nAnswer the question using a single word or phrase.",
        "Is it on?\nWhen the provided information is insufficient, respond with 'Unanswerable'."
        "\nAnswer the question using a single word or phrase."]
    assert "test-dev" in task.description and "not comparable" in task.description


def test_vizwiz_scores_lmms_evals_soft_accuracy(copies, data_at):
    data_at(copies)
    task = TASKS["vizwiz_vqa"]
    samples = task.load(None)
    # "Navy blue": 3 of 10 equal -> (3 * 2/3 + 7 * 1) / 10 = 0.9; "Unanswerable." -> 1.0;
    # "yes" against ["yes", "no"]: the "yes" answer sees no other match (0), the "no" sees one (1/3): 1/6.
    stats = task.statistics(samples, ["Navy blue", "Unanswerable.", "yes"])["vqa_accuracy"]
    assert stats.value() == pytest.approx((0.9 + 1.0 + 1 / 6) / 3)
    assert metrics.vizwiz_accuracy("anything", []) == 0.0


# ----------------------------------------------------------------------------- ScienceQA

def test_scienceqa_prompt_is_llavas_cqm_format(copies, data_at):
    data_at(copies)
    task = TASKS["scienceqa_img"]
    samples = task.load(None)
    assert [s.id for s in samples] == ["test-0", "test-1", "test-2"]
    assert [s.references for s in samples] == [("B",), ("C",), ("E",)]
    assert task.prompt(samples[0]) == ("What is the name of the colony shown?\nA. Maryland\nB. New Hampshire\n"
                                       "C. Rhode Island\nD. Vermont\n"
                                       "Answer with the option's letter from the given choices directly.")
    assert task.prompt(samples[1]) == (
        "Context: The images below show two pairs of magnets. The magnets in different pairs do not affect each other. "
        "All the magnets shown are made of the same material, but some of them are different sizes and shapes.\n"
        "Think about the magnetic force between the magnets in each pair. Which of the following statements is true?\n"
        "A. The magnitude of the magnetic force is the same in both pairs.\n"
        "B. The magnitude of the magnetic force is smaller in Pair 1.\n"
        "C. The magnitude of the magnetic force is smaller in Pair 2.\n"
        "Answer with the option's letter from the given choices directly.")
    assert color(samples[1]) == COLORS["blue"]
    assert [s.id for s in task.load(1)] == ["test-0"]


def test_scienceqa_scores_llavas_letter_parse(copies, data_at):
    data_at(copies)
    task = TASKS["scienceqa_img"]
    # "B" bare letter: right; "The answer is C." right; "e" (lower case) is not parsed: wrong.
    assert task.statistics(task.load(None), ["B", "The answer is C.", "e"])["accuracy"].value() == pytest.approx(2 / 3)
    assert task.statistics(task.load(None), ["B. New Hampshire", "A", "E"])["accuracy"].value() == pytest.approx(2 / 3)


def test_scienceqa_row_without_an_image_is_a_schema_error(tmp_path, data_at):
    write(tmp_path, "lmms-lab/ScienceQA", {"ScienceQA-IMG": {"test": (SQA, sqa_rows(image=False))}})
    data_at(tmp_path)
    with pytest.raises(DatasetSchemaError, match=r"lmms-lab/ScienceQA .*no image in column 'image'"):
        TASKS["scienceqa_img"].load(None)


# ----------------------------------------------------------------------------- MME

def test_mme_prompts_drop_the_yes_no_sentence_as_llava(copies, data_at):
    data_at(copies)
    task = TASKS["mme_perception"]
    samples = task.load(None)
    assert [s.id for s in samples] == ["existence/000000006040.jpg#0", "existence/000000006040.jpg#1",
                                       "count/000000450303.jpg#0", "count/000000450303.jpg#1",
                                       "position/000000574087.jpg#0", "position/000000574087.jpg#1"]
    assert [task.prompt(s) for s in samples] == [
        "Is there a train in this image?\nAnswer the question using a single word or phrase.",
        "Is there a bed in this image?\nAnswer the question using a single word or phrase.",
        "Are there two people in this image?\nAnswer the question using a single word or phrase.",
        "Are there three people in this image?\nAnswer the question using a single word or phrase.",
        "Is the motorcycle on the left side of the bus\nAnswer the question using a single word or phrase.",
        "Is the motorcycle on the right side of the bus\nAnswer the question using a single word or phrase."]
    assert [s.meta["cluster"] for s in samples[:2]] == ["existence/000000006040.jpg"] * 2
    assert [s.id for s in TASKS["mme_cognition"].load(None)][::2] == [
        "code_reasoning/0020.png#0", "commonsense_reasoning/0001.png#0", "numerical_calculation/0001.png#0",
        "text_translation/0001.png#0"]


def test_mme_limit_rounds_up_to_whole_pairs(copies, data_at):
    data_at(copies)
    task = TASKS["mme_perception"]
    assert [s.id for s in task.load(1)] == ["existence/000000006040.jpg#0", "existence/000000006040.jpg#1"]
    assert [s.id for s in task.load(2)] == ["existence/000000006040.jpg#0", "existence/000000006040.jpg#1"]
    assert len(task.load(3)) == 4 and len(task.load(4)) == 4


def test_mme_cognition_scores_each_subtask_and_the_total(copies, data_at):
    data_at(copies)
    task = TASKS["mme_cognition"]
    samples = task.load(None)
    # code: both right -> 100 + 100; commonsense: "yes" twice, labels Yes/No -> 50 + 0;
    # numerical: "Not sure" parses as no (wrong, label Yes), "No" right -> 50; text_translation:
    # "Yes, it is." -> yes, " Nothing" -> stripped, "noth" holds "no" -> no: both right -> 200.
    predictions = ["Yes", "No", "yes", "yes", "Not sure", "No", "Yes, it is.", " Nothing"]
    stats = task.statistics(samples, predictions)
    values = {name: s.value() for name, s in stats.items()}
    assert values == pytest.approx({"cognition_score": 500.0, "accuracy": 6 / 8, "accuracy_plus": 2 / 4,
                                    "mme_code_reasoning": 200.0, "mme_commonsense_reasoning": 50.0,
                                    "mme_numerical_calculation": 50.0, "mme_text_translation": 200.0})
    assert list(stats)[0] == task.primary == "cognition_score"
    assert not any(s.undefined for s in stats.values())
    # Every metric has one row per sample, so one cluster bootstrap serves all; a resampled total
    # is the sum of the resampled subtask scores.
    weights = bootstrap_weights([task.cluster(s) for s in samples], 50, seed=0)
    assert all(len(s.rows) == len(samples) for s in stats.values())
    subtasks = sum(stats[f"mme_{name}"].resampled(weights) for name in
                   ("code_reasoning", "commonsense_reasoning", "numerical_calculation", "text_translation"))
    assert np.allclose(stats["cognition_score"].resampled(weights), subtasks)


def test_mme_perception_total_is_partial_and_said_so_when_subtasks_are_missing(copies, data_at):
    data_at(copies)
    task = TASKS["mme_perception"]
    samples = task.load(None)
    # existence both right (200); count "Yes", "Yes" -> 50; position "No" (label Yes), "No." -> 50.
    stats = task.statistics(samples, ["Yes", "No", "Yes", "Yes", "No", "No."])
    assert stats["perception_score"].value() == pytest.approx(300.0)
    assert stats["mme_existence"].value() == pytest.approx(200.0)
    assert stats["mme_count"].value() == pytest.approx(50.0)
    assert stats["mme_position"].value() == pytest.approx(50.0)
    assert stats["mme_ocr"].value() == 0.0 and "no questions" in stats["mme_ocr"].undefined
    assert stats["accuracy"].value() == pytest.approx(4 / 6)
    assert stats["accuracy_plus"].value() == pytest.approx(1 / 3)
    note = stats["perception_score"].undefined
    assert note.startswith("partial total") and "3 of 10" in note and "color" in note
    assert "partial" in task.description


def test_mme_unpaired_image_in_a_full_read_is_a_schema_error(tmp_path, data_at):
    write(tmp_path, "lmms-lab/MME", {"default": {"test": (MME_FIELDS, mme_rows()[1:])}})
    data_at(tmp_path)
    with pytest.raises(DatasetSchemaError, match=r"lmms-lab/MME .*exactly two questions.*existence/000000006040"):
        TASKS["mme_perception"].load(None)


# ----------------------------------------------------------------------------- COCO

def test_coco_caption_prompt_and_a_worked_cider(copies, data_at):
    data_at(copies)
    task = TASKS["coco_caption"]
    samples = task.load(None)
    assert [s.id for s in samples] == ["000000179765.jpg", "000000190236.jpg"]
    assert [task.prompt(s) for s in samples] == ["Provide a one-sentence caption for the provided image."] * 2
    assert (task.max_new_tokens, task.primary, task.post_prompt) == (64, "cider_d", "")
    assert "meteor" not in task.metrics
    stats = task.statistics(samples, ["a dog runs", "A cat sleeps"])
    # Each caption is its image's only reference. CIDEr-D over N = 2 images: "a" is in both
    # documents (idf log 2 - log 2 = 0); every other 1-3-gram is in one (idf log 2); the
    # candidate vector equals the reference's, so orders 1-3 have similarity 1, order 4 (no
    # 4-grams) 0, no length penalty: mean 3/4, x 10 = 7.5 per image.
    assert stats["cider_d"].value() == pytest.approx(7.5)
    assert stats["rouge_l"].value() == pytest.approx(1.0)
    assert stats["bleu_1"].value() == pytest.approx(1.0)
    # No 4-gram in 3-word captions: p4 = (0 + 1e-15) / (0 + 1e-9), BLEU-4 = (1e-6) ** (1/4).
    assert stats["bleu_4"].value() == pytest.approx(10 ** -1.5, rel=1e-6)


# ----------------------------------------------------------------------------- availability and schema errors

NAMES = ("gqa", "gqa_spatial", "textvqa", "textvqa_ocr_free", "vizwiz_vqa", "scienceqa_img", "mme_perception",
         "mme_cognition", "coco_caption")


def test_every_task_is_unavailable_with_how_to_get_it_when_nothing_is_downloaded(tmp_path, data_at):
    data_at(tmp_path)
    for name in NAMES:
        reason = TASKS[name].available()
        assert reason is not None and f"dataset {TASKS[name].dataset} is not downloaded" in reason, name
        assert "huggingface-cli download --repo-type dataset" in reason


def test_every_task_is_available_with_the_copies(copies, data_at):
    data_at(copies)
    assert [TASKS[name].available() for name in NAMES] == [None] * len(NAMES)


@pytest.mark.parametrize("task, repo, column", [
    ("gqa", "lmms-lab/GQA", "imageId"),
    ("gqa_spatial", "lmms-lab/GQA", "types"),
    ("textvqa", "lmms-lab/textvqa", "ocr_tokens"),
    ("textvqa_ocr_free", "lmms-lab/textvqa", "answers"),
    ("vizwiz_vqa", "lmms-lab/VizWiz-VQA", "answers"),
    ("scienceqa_img", "lmms-lab/ScienceQA", "hint"),
    ("mme_perception", "lmms-lab/MME", "category"),
    ("coco_caption", "lmms-lab/COCO-Caption2017", "answer"),
])
def test_a_missing_column_is_an_error_naming_dataset_and_column(tmp_path, data_at, task, repo, column):
    build_all(tmp_path, drop={repo: column})
    data_at(tmp_path)
    with pytest.raises(DatasetSchemaError, match=rf"{repo} .*column '{column}' .* is missing"):
        TASKS[task].load(None)


@pytest.mark.parametrize("task, repo, split, fields, rows", [
    ("textvqa", "lmms-lab/textvqa", "validation", TEXTVQA, textvqa_rows),
    ("vizwiz_vqa", "lmms-lab/VizWiz-VQA", "val", VIZWIZ, vizwiz_rows),
    ("mme_perception", "lmms-lab/MME", "test", MME_FIELDS, mme_rows),
    ("coco_caption", "lmms-lab/COCO-Caption2017", "val", COCO, coco_rows),
])
def test_a_row_without_its_image_is_an_error_not_a_text_only_question(tmp_path, data_at, task, repo, split, fields,
                                                                       rows):
    write(tmp_path, repo, {"default": {split: (fields, [{**row, "image": None} for row in rows()])}})
    data_at(tmp_path)
    with pytest.raises(DatasetSchemaError, match=rf"{repo} .*no image in column 'image'"):
        TASKS[task].load(None)


def test_textvqa_ocr_free_does_not_read_the_ocr_tokens(tmp_path, data_at):
    build_all(tmp_path, drop={"lmms-lab/textvqa": "ocr_tokens"})
    data_at(tmp_path)
    assert len(TASKS["textvqa_ocr_free"].load(None)) == 3
    assert math.isclose(TASKS["textvqa_ocr_free"].statistics(TASKS["textvqa_ocr_free"].load(None),
                                                             ["dakota", "yes", "50"])["vqa_accuracy"].value(), 1.0)
