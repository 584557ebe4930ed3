"""Task prompts per model family: each family is asked in the words its published numbers were measured with.

A task's own prompt (``Task.prompt``: the question plus its post-prompt) is LLaVA's evaluation prompt,
which is also lmms-eval's ``default``. Other families published their scores through other harnesses;
a :class:`PromptStyle` rewrites the user turn of the real-dataset tasks the way that harness does,
and only the user turn: the chat template (system line, image placement) stays the checkpoint's own.
Sources (developer notes with every string and file: docs/dev/family-prompts-baselines.md):

* ``llava``: LLaVA's model_vqa scripts / lmms-eval ``default`` (the tasks' own prompts).
* ``lmms-eval`` (LLaVA-OneVision, evaluated by its authors with lmms-eval ``--model llava_onevision``):
  the defaults, plus MM-Vet's reasoning pre-prompt (``tasks/mmvet/mmvet.yaml``).
* ``vlmevalkit-qwen2-vl`` (Qwen2-VL; VLMEvalKit ``vlmeval/vlm/qwen2_vl/prompt.py::Qwen2VLPromptMixin``):
  yes/no tasks end `` Please answer yes or no.``; short-answer VQA ends ``\\nPlease try to answer the
  question with short words or phrases if possible.``; MME and MM-Vet take the raw question.
* ``vlmevalkit`` (Qwen2.5-VL, which sets ``use_custom_prompt=False``; Gemma 3, which has no custom
  prompt): VLMEvalKit's dataset defaults (``vlmeval/dataset/image_vqa.py``, ``image_base.py``): TextVQA
  and GQA as LLaVA's, POPE / MME / HallusionBench / VizWiz / MM-Vet the raw question.
* ``vlmevalkit-internvl`` (InternVL; ``vlmeval/vlm/internvl/internvl_chat.py::InternVLChat.build_prompt``):
  MME appends `` Answer the question using a single word or phrase.`` to the raw question,
  HallusionBench `` Please answer yes or no. Answer the question using a single word or phrase.``, POPE
  raw, short-answer VQA (VizWiz included) ``\\nAnswer the question using a single word or phrase.``.
* ``vlmevalkit-idefics`` (Idefics3, SmolVLM; ``vlmeval/vlm/idefics.py::IDEFICS2.build_prompt_default``,
  ``vlmeval/vlm/smolvlm.py``): the dataset default plus ``\\nGive a very brief answer.`` for MME, MM-Vet and
  TextVQA, ``\\nAnswer yes or no.`` for HallusionBench.

The VLMEvalKit styles send TextVQA's and VizWiz's questions as the datasets hold them (not capitalised;
TextVQA without LLaVA-1.5's OCR line) and ask COCO for VLMEvalKit's caption prompt
(``vlmeval/dataset/image_caption.py``). Not reproduced, each named in :data:`NOT_REPRODUCED` and the
report: VLMEvalKit's multiple-choice layouts for ScienceQA (Hint/Question/Options), SmolVLM's TextVQA
instruction block, system messages the harnesses pass instead of the template's (Gemma 3's
``You are a helpful assistant. ``), VLMEvalKit's image-size settings. The embedded shapes tasks keep
their prompts under every style.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .base import Sample, Task

SHORT_ANSWER = "\nAnswer the question using a single word or phrase."
YES_NO = " Please answer yes or no."


@dataclass(frozen=True)
class PromptRule:
    """How a style writes one dataset's user turn. ``raw``: the dataset's question as published (MME's
    keeps its "Please answer yes or no.", TextVQA's and VizWiz's are not capitalised and TextVQA's has no
    OCR line), else the task's question; ``post``: replaces the task's post-prompt (None keeps it);
    ``pre``: put before the question."""

    post: str | None = None
    raw: bool = False
    pre: str = ""
    text: str | None = None   # the whole question, where the harness asks its own (VLMEvalKit's caption prompt)


@dataclass(frozen=True)
class PromptStyle:
    name: str
    source: str
    rules: Mapping[str, PromptRule] = field(default_factory=dict)   # dataset kind -> rule


def dataset_kind(task: Task) -> str:
    """Which published dataset a task evaluates, as the styles key their rules (pope, mme, textvqa ...)."""
    for kind in ("pope", "mme", "textvqa", "gqa", "vizwiz", "scienceqa", "mmvet", "hallusionbench", "coco_caption"):
        if task.name.startswith(kind):
            return kind
    return task.name


VLMEVALKIT_CAPTION = ("Please describe this image in general. Directly provide the description, do not include "
                      "prefix like \"This image depicts\". ")   # vlmeval/dataset/image_caption.py
SHORT_RAW = PromptRule(post=SHORT_ANSWER, raw=True)
VLMEVALKIT_DEFAULTS = {"pope": PromptRule(post="", raw=True), "mme": PromptRule(post="", raw=True),
                       "hallusionbench": PromptRule(post="", raw=True), "vizwiz": PromptRule(post="", raw=True),
                       "mmvet": PromptRule(post="", raw=True), "textvqa": SHORT_RAW,
                       "coco_caption": PromptRule(post="", text=VLMEVALKIT_CAPTION)}
QWEN2_VL_SHORT = "\nPlease try to answer the question with short words or phrases if possible."
BRIEF = "\nGive a very brief answer."
STYLES = {style.name: style for style in (
    PromptStyle("llava", "LLaVA's evaluation prompts (= lmms-eval default)"),
    PromptStyle("lmms-eval", "lmms-eval default task prompts (LLaVA-OneVision's published setup)",
                {"mmvet": PromptRule(pre="First please perform reasoning, and think step by step to provide best "
                                         "answer to the following question: \n\n")}),
    PromptStyle("vlmevalkit-qwen2-vl", "VLMEvalKit Qwen2VLPromptMixin (Qwen2-VL's published setup)",
                {**VLMEVALKIT_DEFAULTS, "pope": PromptRule(post=YES_NO), "hallusionbench": PromptRule(post=YES_NO),
                 "textvqa": PromptRule(post=QWEN2_VL_SHORT, raw=True), "gqa": PromptRule(post=QWEN2_VL_SHORT),
                 "vizwiz": PromptRule(post=QWEN2_VL_SHORT, raw=True)}),
    PromptStyle("vlmevalkit", "VLMEvalKit dataset defaults (Qwen2.5-VL's and Gemma 3's published setup)",
                VLMEVALKIT_DEFAULTS),
    PromptStyle("vlmevalkit-internvl", "VLMEvalKit InternVLChat.build_prompt (InternVL's published setup)",
                {**VLMEVALKIT_DEFAULTS,
                 "mme": PromptRule(post=" Answer the question using a single word or phrase.", raw=True),
                 "hallusionbench": PromptRule(post=YES_NO + " Answer the question using a single word or phrase.",
                                              raw=True),
                 "vizwiz": SHORT_RAW}),
    PromptStyle("vlmevalkit-idefics", "VLMEvalKit IDEFICS2 / SmolVLM build_prompt_default (Idefics3's and "
                                      "SmolVLM's published setup)",
                {**VLMEVALKIT_DEFAULTS, "mme": PromptRule(post=BRIEF, raw=True),
                 "mmvet": PromptRule(post=BRIEF, raw=True), "textvqa": PromptRule(post=SHORT_ANSWER + BRIEF, raw=True),
                 "hallusionbench": PromptRule(post="\nAnswer yes or no.", raw=True)}),
)}
QWEN_PIXELS = "VLMEvalKit's min_pixels 1280*28*28 (the checkpoint's processor setting is used)"
NOT_REPRODUCED = {
    "lmms-eval": "textvqa keeps LLaVA-1.5's OCR line (lmms-eval sends none: compare textvqa_ocr_free)",
    "vlmevalkit-qwen2-vl": "ScienceQA's Hint/Question/Options layout (the task's LLaVA layout is used); " + QWEN_PIXELS,
    "vlmevalkit": "ScienceQA's Hint/Question/Options layout; Gemma 3's system message 'You are a helpful "
                  "assistant. '; for Qwen2.5-VL " + QWEN_PIXELS,
    "vlmevalkit-internvl": "ScienceQA's bare hint (no 'Context:'); the remote-code checkpoints' system message; "
                           "at most 6 tiles",
    "vlmevalkit-idefics": "ScienceQA's Choices / 'Answer with the letter.' layout; SmolVLM's TextVQA instructions",
}


def task_style(task: Task, style: str) -> str:
    """The style ``task``'s prompts are written in: the family's for a published dataset, none ("") for
    the embedded shapes tasks, which keep their own prompts under every style."""
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}: known are {sorted(STYLES)}")
    return "" if task.dataset == "shapes world (generated)" else style


def style_prompt(task: Task, sample: Sample, style: str) -> str:
    """The user turn's text for ``sample`` under ``style`` (the task's own prompt where it has no rule)."""
    rule = STYLES[style].rules.get(dataset_kind(task)) if task_style(task, style) else None
    if rule is None:
        return task.prompt(sample)
    question = sample.meta.get("raw_question", sample.question) if rule.raw else sample.question
    return rule.pre + (question if rule.text is None else rule.text) + (task.post_prompt if rule.post is None
                                                                        else rule.post)


def describe_style(style: str) -> str:
    """The report's line: the style, its source, and what of it is not reproduced."""
    missing = NOT_REPRODUCED.get(style)
    return f"{style} ({STYLES[style].source})" + (f"; not reproduced: {missing}" if missing else "")
