"""Every image-text family the suite runs, offline: random-init checkpoints of each family's real
architecture, real chat template and processor settings (tests/random_families.py), loaded the way a
user's checkpoint is, prompted in the family's own format, and run through the plugin with every
compression method."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from PIL import Image

from dataset_fixtures import write_all
from random_families import FAMILIES, RECIPES, build_random_families
from random_llava import stop_early
from pytest_lvlmbench.engine.families import ARCHITECTURES, family_of, load_processor, render_prompt
from pytest_lvlmbench.engine.generation import generate_batch, image_token_id, model_inputs
from pytest_lvlmbench.engine.models import load_pretrained, resolve_model
from quant import KVQuantSpec, QuantizedKVCache, WeightQuantSpec, enable_packed_attention, quantize_model

QUESTION = "What is in the picture?"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    models = build_random_families(tmp_path_factory.mktemp("families"))
    for directory in models.values():
        stop_early(directory)
    return models


def loaded(checkpoints, family: str):
    ref = resolve_model(str(checkpoints[family]))
    config = json.loads((checkpoints[family] / "config.json").read_text())
    return load_pretrained(ref, torch.float32).eval(), load_processor(ref.source, family_of(family, config))


def pictures(count: int) -> list[Image.Image]:
    return [Image.new("RGB", (40 + 8 * i, 48), (40 * i % 255, 120, 200)) for i in range(count)]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_renders_its_own_chat_template_with_and_without_an_image(checkpoints, family):
    model, processor = loaded(checkpoints, family)
    recipe = RECIPES[family]
    assert type(model).__name__ == recipe.architecture
    assert render_prompt(processor, QUESTION, True) == recipe.prompt_format.format(text=QUESTION)
    assert render_prompt(processor, QUESTION, False) == recipe.text_only_format.format(text=QUESTION)
    assert processor.tokenizer.padding_side == "left"
    inputs = model_inputs(processor, pictures(1), [render_prompt(processor, QUESTION, True)], "cpu", None)
    assert int((inputs["input_ids"] == image_token_id(model.config)).sum()) > 0   # the placeholder was expanded
    if recipe.bos:   # one BOS, whether the template, the tokenizer or both would write it
        assert processor.tokenizer(recipe.bos + "x")["input_ids"].count(processor.tokenizer.bos_token_id) == \
            1 + recipe.adds_bos
        assert inputs["input_ids"][0].tolist().count(processor.tokenizer.bos_token_id) == 1


def test_the_processors_that_want_a_video_processor_are_built_from_their_parts(checkpoints):
    """Without torchvision, AutoProcessor cannot build these; the engine assembles them instead."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: AutoProcessor builds every processor itself")
    for family in ("qwen2-vl", "qwen2.5-vl", "llava-onevision", "internvl", "smolvlm"):
        _, processor = loaded(checkpoints, family)
        assert processor.video_processor is None
        assert type(processor).__name__ == RECIPES[family].processor


def test_a_processor_that_cannot_be_built_names_the_checkpoint_and_both_failures(checkpoints, tmp_path):
    import importlib.util
    import shutil

    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed: AutoProcessor builds the processor")
    broken = shutil.copytree(checkpoints["qwen2-vl"], tmp_path / "qwen")
    (broken / "preprocessor_config.json").unlink()
    with pytest.raises(ValueError, match=r"cannot build the Qwen2VLProcessor of .*qwen.*AutoProcessor failed first"):
        load_processor(str(broken), ARCHITECTURES["Qwen2VLForConditionalGeneration"])


def test_an_unsupported_architecture_is_refused_naming_every_supported_family(tmp_path):
    with pytest.raises(ValueError, match=r"\['GPT2LMHeadModel'\].*does not run.*Qwen2VLForConditionalGeneration "
                                         r"\(qwen2-vl\).*Gemma3ForConditionalGeneration \(gemma3\)"):
        family_of("gpt", {"architectures": ["GPT2LMHeadModel"]})
    assert family_of("x", {"architectures": ["SmolVLMForConditionalGeneration"]}).prompts == "vlmevalkit-idefics"
    assert set(RECIPES[f].architecture for f in FAMILIES) <= set(ARCHITECTURES)


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_answers_equal_single_answers_for_every_method(checkpoints, family):
    """Left-padded batches of two prompt lengths: KIVI runs per length without padding (flat pixel
    tensors split by row: Qwen's patches, InternVL's tiles), the others with the padding told to
    the cache; either way no answer depends on its batch mates."""
    model, processor = loaded(checkpoints, family)
    prompts = [render_prompt(processor, q, True) for q in ("Is there a red square in the picture?", "Color?")]
    images = pictures(2)
    if family in ("qwen2-vl", "qwen2.5-vl", "internvl"):   # flat patches / tiles: split by image tokens
        assert model_inputs(processor, images, prompts, "cpu", None)["pixel_values"].shape[0] > 2 * len(prompts)
    for spec_id in ("fp16", "kv4-uniform", "kv4-group-g16-r16", "kv4-outlier-s2-r16"):
        spec = KVQuantSpec.from_id(spec_id)
        batch = generate_batch(model, processor, images, prompts, spec, 6)
        alone = [generate_batch(model, processor, [image], [prompt], spec, 6)[0]
                 for image, prompt in zip(images, prompts)]
        assert [g.answer for g in batch] == [g.answer for g in alone], (family, spec_id)
        if spec_id != "fp16":
            assert all(g.kv_bytes < 0.5 * g.kv_float_bytes for g in alone), (family, spec_id)


@pytest.mark.parametrize("family", FAMILIES)
def test_weight_quantization_reaches_every_part_each_family_has(checkpoints, family):
    model, _ = loaded(checkpoints, family)
    if family == "gemma3":   # its projector is a matmul with a raw weight, no nn.Linear to quantize
        with pytest.raises(ValueError, match="projector.*no nn.Linear"):
            quantize_model(copy.deepcopy(model), WeightQuantSpec.from_id("w4-rtn-all"))
        spec = WeightQuantSpec.from_id("w4-rtn-language-vision")
    else:
        spec = WeightQuantSpec.from_id("w4-rtn-all")
    summary = quantize_model(model, spec)
    assert set(summary.bytes_by_part) == set(spec.targets)
    assert summary.bytes_after < 0.35 * summary.bytes_before


@pytest.mark.parametrize("family", ["qwen2-vl", "smolvlm", "gemma3"])
def test_awq_calibrates_through_the_session(checkpoints, family, tmp_path):
    """AWQ's calibration batch goes through the family's processor (images nested per prompt, as Gemma 3
    and SmolVLM need; Qwen's flat patches) and its activations reach every linear it quantizes."""
    from pytest_lvlmbench.core.options import Options
    from pytest_lvlmbench.core.settings import Setting
    from pytest_lvlmbench.engine.session import Session

    setting = Setting.from_id("w4-awq-g16")
    session = Session(Options(models=[str(checkpoints[family])], settings=[setting], cache_dir=tmp_path,
                              calibration="shapes"))
    summary = session.weight_summary(str(checkpoints[family]), setting)
    assert summary.bytes_after < 0.4 * summary.bytes_before and set(summary.bytes_by_part) == {"language"}


def test_gemma3_windowed_layers_are_compressed_and_the_model_still_applies_its_window(checkpoints):
    model, processor = loaded(checkpoints, "gemma3")
    prompt = render_prompt(processor, "Is the small red square above or below the large blue circle here?", True)
    inputs = processor(images=[pictures(1)], text=[prompt], return_tensors="pt")
    window = model.config.get_text_config().sliding_window
    assert inputs["input_ids"].shape[1] > 2 * window   # the window bites
    assert model.config.get_text_config().layer_types == ["sliding_attention", "full_attention"]
    cache = QuantizedKVCache(KVQuantSpec(), model.config)
    with torch.no_grad():
        expected = model.generate(**inputs, max_new_tokens=8, do_sample=False)   # transformers' own cache
        got = model.generate(**inputs, max_new_tokens=8, do_sample=False, cache=cache)
    assert torch.equal(got, expected)
    quantized = QuantizedKVCache(KVQuantSpec.from_id("kv4-uniform"), model.config)
    with torch.no_grad():
        model.generate(**inputs, max_new_tokens=8, do_sample=False, cache=quantized)
    assert all(layer.key_stream.segments for layer in quantized.layers)   # the windowed layer too


@pytest.mark.parametrize("kernels", ["torch", pytest.param("triton", marks=pytest.mark.triton)])
@pytest.mark.parametrize("family", FAMILIES)
def test_packed_decode_attention_matches_sdpa_on_every_family(checkpoints, family, kernels, monkeypatch):
    """The decode steps read the packed history (Triton's interpreter, or its torch twin) and give
    the logits the dequantize-then-SDPA path gives."""
    if kernels == "triton":
        pytest.importorskip("triton")
    import quant.packed_attention

    monkeypatch.setenv("LVLMBENCH_KERNELS", kernels)
    steps = []
    decode = quant.packed_attention.decode_attention
    monkeypatch.setattr(quant.packed_attention, "decode_attention", lambda *a: steps.append(1) or decode(*a))
    model, processor = loaded(checkpoints, family)
    packed = copy.deepcopy(model)
    enable_packed_attention(packed)
    inputs = processor(images=[pictures(1)], text=[render_prompt(processor, QUESTION, True)], return_tensors="pt")
    spec = KVQuantSpec.from_id("kv4-group-g16-r0")
    runs = []
    for candidate in (model, packed):
        with torch.no_grad():
            runs.append(candidate.generate(**inputs, max_new_tokens=4, do_sample=False, output_logits=True,
                                           return_dict_in_generate=True,
                                           cache=QuantizedKVCache(spec, candidate.config)))
    layers = model.config.get_text_config().num_hidden_layers
    assert len(steps) == 3 * layers   # every decode step of every layer read the packed history
    for got, expected in zip(runs[1].logits, runs[0].logits):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


BENCHMARKS = {f"test_{c}": f"from pytest_lvlmbench.suite import capability_test\ntest_{c} = capability_test({c!r})\n"
              for c in ("recognition", "hallucination", "visual_illusion")}
TASKS = {"pope_random", "textvqa", "hallusionbench"}


def test_every_family_runs_every_compression_method_through_the_plugin(pytester, checkpoints, tmp_path_factory):
    """Two runs sharing a cache: the three KV methods, then weights on the language model and the vision
    tower (a grid with both would add every combination)."""
    data = write_all(tmp_path_factory.mktemp("data"))
    pytester.makepyfile(**BENCHMARKS)
    (pytester.path / "none.toml").write_text("")   # random weights: no quality gate
    common = ("-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "cache"),
              "--model", ",".join(str(checkpoints[f]) for f in FAMILIES), "--lvlm-data-dir", str(data),
              "-k", "not shapes_ and not ocr_free and (pope_random or textvqa or hallusionbench)", "--lvlm-limit", "4",
              "--lvlm-batch-size", "4", "--lvlm-thresholds", str(pytester.path / "none.toml"))
    records = []
    for name, grid in (("kv", ("--kv-bits", "4", "--kv-method", "uniform,group,outlier", "--group-size", "16",
                               "--residual-length", "16")),
                       ("weights", ("--weight-bits", "4", "--weight-method", "rtn",
                                    "--weight-targets", "language,vision"))):
        report = pytester.path / f"{name}.json"
        result = pytester.runpytest_subprocess(*common, *grid, "--lvlm-report", str(report))
        assert result.ret == 0, result.stdout.str()[-3000:]
        assert "skipped" not in result.stdout.lines[-1]
        records += json.loads(report.read_text())["records"]
        result.stdout.fnmatch_lines([f"*{checkpoints['qwen2-vl']} prompted with: vlmevalkit-qwen2-vl (VLMEvalKit*",
                                     f"*{checkpoints['gemma3']} prompted with: vlmevalkit (*not reproduced*"])
    settings = {"fp16", "kv4-uniform", "kv4-group-g16-r16", "kv4-outlier-s2", "w4-rtn-language-vision"}
    for family in FAMILIES:
        ran = {(r["setting"], r["task"]): r for r in records if r["model"] == str(checkpoints[family])}
        assert {s for s, _ in ran} == settings and {t for _, t in ran} == TASKS, family
        for (setting, task), record in ran.items():
            assert record["prompt_style"] == family_of(family, json.loads(
                (checkpoints[family] / "config.json").read_text())).prompts
            assert record["samples"] > 0 and all(math.isfinite(v) for v in record["metrics"].values()), (family, task)
            if setting.startswith("kv4"):
                assert record["kv_ratio"] < 0.5, (family, setting, task)
            if setting.startswith("w4"):
                assert set(record["weight_bytes_by_part"]) == {"language", "vision"}, family
                assert record["weight_ratio"] < 0.35, (family, task)
