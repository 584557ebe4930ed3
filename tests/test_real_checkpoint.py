"""The real-checkpoint path piece by piece: the published-baseline guard, processors of older llava-hf
snapshots, one quantized copy at a time, calibration sources, and the new options' usage errors."""

from __future__ import annotations

import json

import pytest
import torch

from pytest_lvlmbench.core.options import Options
from pytest_lvlmbench.analysis.published import PUBLISHED, check_published
from pytest_lvlmbench.core.records import Record
from pytest_lvlmbench.engine.reruns import attach_published
from pytest_lvlmbench.engine.families import complete_processor
from pytest_lvlmbench.engine.session import Session, batches
from pytest_lvlmbench.core.settings import BASELINE, settings_from_options
from random_llava import build_random_llava

LLAVA_7B = "llava-hf/llava-1.5-7b-hf"


def test_a_full_baseline_beside_its_published_score_is_flagged_past_the_tolerance():
    (gqa,) = check_published(LLAVA_7B, "gqa", {"gqa": {"accuracy": 0.600}}, tolerance=0.03)
    assert gqa.published == pytest.approx(0.62) and gqa.gap == pytest.approx(-0.02 / 0.62) and gqa.drifted
    assert "gqa accuracy: FP16 measured 0.6, published 0.62 (-3.2%, tolerance ±3%) DRIFT" in gqa.message()
    assert not check_published(LLAVA_7B, "gqa", {"gqa": {"accuracy": 0.615}}, tolerance=0.03)[0].drifted


def test_pope_is_checked_as_the_mean_f1_of_its_three_splits_once_all_are_there():
    two = {"pope_random": {"f1": 0.87}, "pope_popular": {"f1": 0.86}}
    assert check_published(LLAVA_7B, "pope_popular", two, 0.03) == []
    (pope,) = check_published(LLAVA_7B, "pope_adversarial", {**two, "pope_adversarial": {"f1": 0.85}}, 0.03)
    assert pope.measured == pytest.approx(0.86) and pope.published == pytest.approx(0.859) and not pope.drifted


def test_mmvet_is_compared_only_when_judged_by_the_published_judge_and_next_textvqa_without_ocr():
    scores = {"mmvet": {"mmvet_total": 31.0}}
    assert check_published(LLAVA_7B, "mmvet", scores, 0.03, judge="llama-70b at http://x (prompt sha256 1)") == []
    assert check_published(LLAVA_7B, "mmvet", scores, 0.03, judge="gpt-4-0613 at https://api.openai.com/v1")
    next_textvqa = [s for s in PUBLISHED if s.model == "llava-hf/llava-v1.6-vicuna-7b-hf" and s.metric == "vqa_accuracy"]
    assert [s.tasks for s in next_textvqa] == [("textvqa_ocr_free",)]
    assert all(s.tasks != ("vizwiz_vqa",) for s in PUBLISHED)   # test-dev numbers: not comparable with val


def test_other_families_mme_is_the_published_sum_and_their_mmvet_needs_their_judge():
    qwen = "Qwen/Qwen2-VL-7B-Instruct"
    perception = {"mme_perception": {"perception_score": 1700.0}}
    assert check_published(qwen, "mme_perception", perception, 0.03) == []   # waits for cognition
    (mme,) = check_published(qwen, "mme_cognition", {**perception, "mme_cognition": {"cognition_score": 600.0}}, 0.03)
    assert mme.measured == 2300.0 and mme.published == 2326.8 and not mme.drifted and mme.metric == "mme_sum"
    scores = {"mmvet": {"mmvet_total": 60.0}}
    assert check_published(qwen, "mmvet", scores, 0.03, judge="gpt-4-0613 at https://api.openai.com/v1") == []
    assert check_published(qwen, "mmvet", scores, 0.03, judge="gpt-4-turbo at https://api.openai.com/v1") == []
    (mmvet,) = check_published(qwen, "mmvet", scores, 0.03, judge="gpt-4-1106-preview at https://api.openai.com/v1")
    assert mmvet.published == 62.0 and "2409.12191" in mmvet.source
    (textvqa,) = check_published(qwen, "textvqa_ocr_free", {"textvqa_ocr_free": {"vqa_accuracy": 0.84}}, 0.03)
    assert textvqa.published == pytest.approx(0.843)


def record(task: str, **metrics) -> Record:
    return Record("llava7b", BASELINE.id, task, "visual_reasoning", "accuracy", metrics, [])


@pytest.mark.parametrize("check, limit, breaches", [("fail", None, 1), ("warn", None, 0), ("fail", 20, 0),
                                                    ("off", None, 0)])
def test_the_session_guards_only_full_baselines_and_fails_only_when_asked(tmp_path, check, limit, breaches):
    session = Session(Options(models=["llava7b"], settings=[BASELINE], cache_dir=tmp_path, limit=limit,
                              published_check=check))
    baseline = session.results.add(record("gqa", accuracy=0.5))
    baseline, found = attach_published(session, baseline)
    assert len(found) == breaches and session.results.find("llava7b", BASELINE.id, "gqa") is baseline
    assert bool(baseline.published) == (limit is None and check != "off")


def test_an_older_snapshot_without_processor_config_gets_patch_size_from_the_model_config(tmp_path):
    from transformers import AutoProcessor
    from PIL import Image

    directory = build_random_llava("llava-1.5", tmp_path / "m")
    saved = json.loads((directory / "processor_config.json").read_text())
    (directory / "preprocessor_config.json").write_text(json.dumps(saved["image_processor"]))   # the old layout
    (directory / "processor_config.json").unlink()
    processor = AutoProcessor.from_pretrained(directory)
    assert processor.patch_size is None   # what a pre-2025 llava-hf snapshot loads as
    processor = complete_processor(processor, str(directory))
    inputs = processor(images=[Image.new("RGB", (40, 30))], text=["USER: <image>\nWhat? ASSISTANT:"],
                       return_tensors="pt")
    image_token = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((inputs["input_ids"] == image_token).sum()) == 4   # (32 / 16)^2 patches, class token dropped


def test_only_one_weight_quantized_copy_is_held_at_a_time(tmp_path):
    directory = build_random_llava("llava-1.5", tmp_path / "m")
    w8, w4 = settings_from_options([], [], [8, 4], ["rtn"], None, None, None)[1:]
    session = Session(Options(models=[str(directory)], settings=[BASELINE, w8, w4], cache_dir=tmp_path / "c"))
    name = str(directory)
    session.model(name, BASELINE)
    first = session.model(name, w8)
    session.model(name, w4)
    assert sorted(k[1] for k in session._models) == sorted([BASELINE.weights.id, w4.weights.id])
    assert session.model(name, w8) is not first   # rebuilt from a fresh load when asked again
    assert session.calibration_source(name) == "coco"   # not an embedded model: natural images


def test_the_embedded_models_calibrate_on_the_shapes_world(tmp_path):
    session = Session(Options(models=["tiny"], settings=[BASELINE], cache_dir=tmp_path))
    assert session.calibration_source("tiny") == "shapes"
    batch = session.calibration("tiny")[0]
    assert batch["pixel_values"].dtype == torch.float32 and batch["input_ids"].shape[0] == 32


def test_batches_never_mix_questions_with_and_without_an_image():
    got = list(batches([0, 1, 2, 3, 4], [True, False, True, False, True], size=2))
    assert got == [(0, [0, 2]), (2, [4]), (3, [1, 3])]


def capability_module(capability):
    return f"from pytest_lvlmbench.suite import capability_test\ntest_{capability} = capability_test({capability!r})\n"


@pytest.mark.parametrize("args, message", [
    (["--lvlm-data-dir", "no/such/dir"], "*--lvlm-data-dir 'no/such/dir': no such directory*"),
    (["--lvlm-judge-url", "http://127.0.0.1:9/v1"], "*--lvlm-judge-model is missing*"),
    (["--lvlm-judge-url", "http://127.0.0.1:9/v1", "--lvlm-judge-model", "gpt-4-0613"],
     "*the judge does not answer*gpt-4-0613*http://127.0.0.1:9/v1*cannot connect*"),
    (["--lvlm-toxicity-model", "no/such/model"], "*--lvlm-toxicity-model 'no/such/model': no such directory*"),
    (["--lvlm-calibration", "wikitext"], "*unknown --lvlm-calibration 'wikitext': allowed are auto, shapes, coco*"),
    (["--lvlm-published-check", "loud"], "*unknown --lvlm-published-check 'loud': allowed are off, warn, fail*"),
])
def test_bad_real_path_options_are_usage_errors(pytester, args, message):
    pytester.makepyfile(test_hallucination=capability_module("hallucination"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_awq_on_a_real_checkpoint_without_its_calibration_images_skips_saying_so(pytester, tmp_path):
    directory = build_random_llava("llava-1.5", tmp_path / "m")
    pytester.makepyfile(test_hallucination=capability_module("hallucination"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "-k", "shapes_pope_random", "--model",
                                           str(directory), "--weight-bits", "4", "--weight-method", "awq",
                                           "--group-size", "32", "--lvlm-limit", "2")
    result.assert_outcomes(passed=1, skipped=1)   # fp16 runs; the AWQ setting cannot be calibrated here
    result.stdout.fnmatch_lines(["*AWQ calibrates on COCO-Caption2017 test images (--lvlm-calibration coco), and "
                                 "dataset lmms-lab/COCO-Caption2017 is not downloaded*or pass --lvlm-calibration shapes"])


def test_the_invariance_check_never_batches_pictures_with_text_only_questions():
    from pytest_lvlmbench.analysis.invariance import check_invariance

    kinds = [True, False, True, False, True, False]
    batches_seen = []

    def generate(items, prompts):
        batches_seen.append({kinds[i] for i in items})
        return ["a"] * len(items)

    result = check_invariance(generate, list(range(6)), ["p"] * 6, ["a"] * 6, batch_size=4, seed=0, kinds=kinds)
    assert result.ok and all(len(kind) == 1 for kind in batches_seen)
