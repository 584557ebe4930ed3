"""Each family is asked in the words its published numbers were measured with (tasks/prompts.py):
one worked example per style and dataset, from the harness code the docstrings cite."""

import pytest

from pytest_lvlmbench.engine.families import FAMILIES
from pytest_lvlmbench.tasks import TASKS
from pytest_lvlmbench.tasks.data import HubSample
from pytest_lvlmbench.tasks.prompts import STYLES, describe_style, style_prompt, task_style


def sample(question, **meta):
    return HubSample(id="1", question=question, references=("yes",), meta=meta, image_value=None, source="")


POPE = sample("Is there a dog in the image?")
MME = sample("Is this a photo of a cat?", raw_question="Is this a photo of a cat? Please answer yes or no.")
TEXTVQA = sample("What is written on the sign?")
HALLUSION = sample("Is the left line longer than the right one?")
MMVET = sample("What is the price of the apples?")

CASES = [
    ("llava", "pope_random", POPE, "Is there a dog in the image?\nAnswer the question using a single word or phrase."),
    ("llava", "mme_perception", MME, "Is this a photo of a cat?\nAnswer the question using a single word or phrase."),
    ("lmms-eval", "mmvet", MMVET, "First please perform reasoning, and think step by step to provide best answer to "
                                  "the following question: \n\nWhat is the price of the apples?"),
    ("lmms-eval", "gqa", TEXTVQA, "What is written on the sign?\nAnswer the question using a single word or phrase."),
    ("vlmevalkit-qwen2-vl", "pope_adversarial", POPE, "Is there a dog in the image? Please answer yes or no."),
    ("vlmevalkit-qwen2-vl", "textvqa_ocr_free", TEXTVQA,
     "What is written on the sign?\nPlease try to answer the question with short words or phrases if possible."),
    ("vlmevalkit-qwen2-vl", "mme_cognition", MME, "Is this a photo of a cat? Please answer yes or no."),
    ("vlmevalkit", "pope_random", POPE, "Is there a dog in the image?"),
    ("vlmevalkit", "gqa", TEXTVQA, "What is written on the sign?\nAnswer the question using a single word or phrase."),
    ("vlmevalkit-internvl", "mme_perception", MME,
     "Is this a photo of a cat? Please answer yes or no. Answer the question using a single word or phrase."),
    ("vlmevalkit-internvl", "hallusionbench", HALLUSION, "Is the left line longer than the right one? Please answer "
                                                         "yes or no. Answer the question using a single word or phrase."),
    ("vlmevalkit-idefics", "textvqa_ocr_free", TEXTVQA, "What is written on the sign?\nAnswer the question using a "
                                                        "single word or phrase.\nGive a very brief answer."),
    ("vlmevalkit-idefics", "hallusionbench", HALLUSION, "Is the left line longer than the right one?\nAnswer yes or no."),
]


@pytest.mark.parametrize("style, task, item, expected", CASES)
def test_each_style_writes_its_harness_prompt(style, task, item, expected):
    assert style_prompt(TASKS[task], item, style) == expected


def test_vlmevalkit_styles_send_the_datasets_own_question_and_caption_prompt():
    """Built from dataset rows as the tasks read them: LLaVA's capitalised TextVQA question with its OCR
    line becomes the dataset's question; COCO gets VLMEvalKit's caption prompt."""
    from pytest_lvlmbench.tasks.coco_caption import CAPTION_PROMPT
    from pytest_lvlmbench.tasks.textvqa import textvqa_sample
    from pytest_lvlmbench.tasks.vizwiz import vizwiz_sample

    row = {"question_id": 7, "image_id": "a", "question": "what brand is this?", "image": b"x", "answers": ["nike"],
           "ocr_tokens": ["NIKE", "JUST"]}
    textvqa = textvqa_sample(row)
    assert TASKS["textvqa"].prompt(textvqa) == ("What brand is this?\nReference OCR token: NIKE, JUST\nAnswer the "
                                                "question using a single word or phrase.")
    assert style_prompt(TASKS["textvqa"], textvqa, "vlmevalkit") == ("what brand is this?\nAnswer the question "
                                                                     "using a single word or phrase.")
    assert style_prompt(TASKS["textvqa"], textvqa, "vlmevalkit-qwen2-vl") == (
        "what brand is this?\nPlease try to answer the question with short words or phrases if possible.")
    vizwiz = vizwiz_sample({"question_id": "v1", "image": b"x", "question": "what is this?", "answers": ["tea"]})
    assert style_prompt(TASKS["vizwiz_vqa"], vizwiz, "vlmevalkit") == "what is this?"
    caption = sample(CAPTION_PROMPT)
    assert style_prompt(TASKS["coco_caption"], caption, "llava") == CAPTION_PROMPT
    assert style_prompt(TASKS["coco_caption"], caption, "vlmevalkit-internvl").startswith(
        "Please describe this image in general. Directly provide the description")


def test_the_embedded_tasks_keep_their_prompts_under_every_style_and_name_none():
    task = TASKS["shapes_pope_random"]
    item = sample("is there a red circle in the image ?")
    assert {style_prompt(task, item, style) for style in STYLES} == {task.prompt(item)}
    assert {task_style(task, style) for style in STYLES} == {""}
    assert task_style(TASKS["pope_random"], "vlmevalkit") == "vlmevalkit"


def test_every_family_names_a_known_style_and_the_report_says_what_is_not_reproduced():
    assert {family.prompts for family in FAMILIES} <= set(STYLES)
    assert "not reproduced: ScienceQA" in describe_style("vlmevalkit-qwen2-vl")
    assert describe_style("llava") == "llava (LLaVA's evaluation prompts (= lmms-eval default))"
    with pytest.raises(ValueError, match="unknown prompt style 'qwen'"):
        style_prompt(TASKS["pope_random"], POPE, "qwen")
