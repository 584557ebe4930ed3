"""The random llava-hf look-alike checkpoints of random_llava.py: templates, loading, generation,
determinism, and acceptance by the model registry."""

import hashlib
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from random_llava import (CHAT_TEMPLATES, IMAGE_GRID_PINPOINTS, IMAGE_TOKEN, LLAVA_MISTRAL_CHAT_TEMPLATE,
                          LLAVA_VICUNA_CHAT_TEMPLATE, VARIANTS, build_random_llava, build_random_llavas)

ARCHITECTURES = {"llava-1.5": "LlavaForConditionalGeneration",
                 "llava-next-vicuna": "LlavaNextForConditionalGeneration",
                 "llava-next-mistral": "LlavaNextForConditionalGeneration"}
TEXT_MODEL_TYPES = {"llava-1.5": "llama", "llava-next-vicuna": "llama", "llava-next-mistral": "mistral"}
# What the real checkpoints render for one user turn, written out from the sources cited in
# random_llava.py (transformers' own test_chat_template for llava-1.5-7b-hf expects
# "USER: <image>\nWhat is shown in this image? ASSISTANT:").
EXPECTED_IMAGE_PROMPTS = {
    "llava-1.5": "USER: <image>\nWhat is this? ASSISTANT:",
    "llava-next-vicuna": "USER: <image>\nWhat is this? ASSISTANT:",
    "llava-next-mistral": "[INST] <image>\nWhat is this? [/INST]",
}
EXPECTED_TEXT_PROMPTS = {
    "llava-1.5": "USER: What is this? ASSISTANT:",
    "llava-next-vicuna": "USER: What is this? ASSISTANT:",
    "llava-next-mistral": "[INST] What is this? [/INST]",
}
ARBITRARY_TEXT = [
    "Is the value of Line A greater than Line B in 2019? Answer: 12.5% (approx.)",
    "Context: Zürich's café served crème brûlée for €4.50 — “délicieux”!",
    "日本語の質問ですか？ Ελληνικά, Русский, עברית, हिन्दी 😀🐶 ½ ≤ ∞ → ★",
    "Tabs\tand\nnewlines, {braces} [brackets] <angles> ~`^|\\ and 1,234,567.89",
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return build_random_llavas(tmp_path_factory.mktemp("random-llava"))


_loaded = {}


def load(directory: Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if directory not in _loaded:
        processor = AutoProcessor.from_pretrained(directory)
        model = AutoModelForImageTextToText.from_pretrained(directory, dtype=torch.float32, use_safetensors=True)
        _loaded[directory] = processor, model.eval()
    return _loaded[directory]


def user_turn(text, image=True):
    content = ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]
    return [{"role": "user", "content": content}]


def test_template_constants_are_the_llava_hf_strings():
    assert CHAT_TEMPLATES["llava-1.5"] is CHAT_TEMPLATES["llava-next-vicuna"] is LLAVA_VICUNA_CHAT_TEMPLATE
    assert CHAT_TEMPLATES["llava-next-mistral"] is LLAVA_MISTRAL_CHAT_TEMPLATE
    # spot checks against the published strings: newline characters (not backslash-n) after
    # <image>, the generation tags of the Vicuna one, and no generation-prompt branch in Mistral's
    assert "{{ '<image>\n' }}" in LLAVA_VICUNA_CHAT_TEMPLATE and "\\n" not in LLAVA_VICUNA_CHAT_TEMPLATE
    assert "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}" in LLAVA_VICUNA_CHAT_TEMPLATE
    assert LLAVA_VICUNA_CHAT_TEMPLATE.endswith("{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")
    assert "add_generation_prompt" not in LLAVA_MISTRAL_CHAT_TEMPLATE
    assert "{{' [/INST]' }}" in LLAVA_MISTRAL_CHAT_TEMPLATE


@pytest.mark.parametrize("variant", VARIANTS)
def test_chat_template_renders_like_the_real_checkpoint(checkpoints, variant):
    processor, _ = load(checkpoints[variant])
    assert (checkpoints[variant] / "chat_template.jinja").read_text() == CHAT_TEMPLATES[variant]
    assert processor.chat_template == CHAT_TEMPLATES[variant]
    rendered = processor.apply_chat_template(user_turn("What is this?"), add_generation_prompt=True)
    assert rendered == EXPECTED_IMAGE_PROMPTS[variant]
    text_only = processor.apply_chat_template(user_turn("What is this?", image=False), add_generation_prompt=True)
    assert text_only == EXPECTED_TEXT_PROMPTS[variant]
    assert processor.image_token == IMAGE_TOKEN


@pytest.mark.parametrize("variant", VARIANTS)
def test_saved_checkpoint_has_the_real_structure(checkpoints, variant):
    directory = checkpoints[variant]
    names = {p.name for p in directory.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "processor_config.json",
            "chat_template.jinja", "generation_config.json"} <= names
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in names)
    config = json.loads((directory / "config.json").read_text())
    assert config["architectures"] == [ARCHITECTURES[variant]]
    assert config["vision_config"]["model_type"] == "clip_vision_model"
    assert config["text_config"]["model_type"] == TEXT_MODEL_TYPES[variant]
    assert (config["vision_feature_layer"], config["vision_feature_select_strategy"]) == (-2, "default")
    assert config["projector_hidden_act"] == "gelu"
    assert config["text_config"]["vocab_size"] % 64 == 0
    generation = json.loads((directory / "generation_config.json").read_text())
    assert (generation["bos_token_id"], generation["eos_token_id"]) == (1, 2)
    processor, model = load(directory)
    tokenizer = processor.tokenizer
    assert tokenizer.padding_side == "left" and tokenizer.pad_token == "<pad>"
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert config["image_token_index"] == tokenizer.convert_tokens_to_ids(IMAGE_TOKEN) == len(tokenizer) - 2
    assert generation["pad_token_id"] == tokenizer.pad_token_id == len(tokenizer) - 1
    assert processor.patch_size == 16 and processor.vision_feature_select_strategy == "default"
    assert type(processor.image_processor).__name__.startswith(
        "CLIPImageProcessor" if variant == "llava-1.5" else "LlavaNextImageProcessor")
    assert len(model.model.multi_modal_projector.linear_1.weight.shape) == 2   # linear_1, gelu, linear_2
    if variant != "llava-1.5":
        assert config["image_grid_pinpoints"] == IMAGE_GRID_PINPOINTS
        assert processor.image_processor.image_grid_pinpoints == IMAGE_GRID_PINPOINTS
        assert model.model.image_newline.shape == (config["text_config"]["hidden_size"],)


@pytest.mark.parametrize("variant", VARIANTS)
def test_tokenizer_handles_arbitrary_text(checkpoints, variant):
    tokenizer = load(checkpoints[variant])[0].tokenizer
    batch = tokenizer(ARBITRARY_TEXT)
    for text, ids in zip(ARBITRARY_TEXT, batch.input_ids):
        assert ids[0] == tokenizer.bos_token_id
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == text


@pytest.mark.parametrize("variant", VARIANTS)
def test_batched_generation_with_two_image_sizes(checkpoints, variant):
    processor, model = load(checkpoints[variant])
    images = [Image.new("RGB", (50, 30), (200, 30, 30)), Image.new("RGB", (40, 70), (30, 30, 200))]
    texts = [processor.apply_chat_template(user_turn(question), add_generation_prompt=True)
             for question in ("What is this?", "How many birds are flying over the river, and why? "
                                               "Answer the question using a single word or phrase.")]
    inputs = processor(images=images, text=texts, return_tensors="pt", padding=True)
    assert inputs["attention_mask"][0, 0] == 0 and inputs["attention_mask"][:, -1].all()   # left padding
    assert inputs["input_ids"][0, 0] == processor.tokenizer.pad_token_id

    # the image tokens the processor wrote are as many as the features the model produces per image
    image_token_id = model.config.image_token_id
    counts = (inputs["input_ids"] == image_token_id).sum(1).tolist()
    with torch.no_grad():
        for i, count in enumerate(counts):
            image = dict(pixel_values=inputs["pixel_values"][i:i + 1])
            if variant != "llava-1.5":
                image["image_sizes"] = inputs["image_sizes"][i:i + 1]
            pooled = model.model.get_image_features(**image).pooler_output
            pooled = pooled if isinstance(pooled, (list, tuple)) else [pooled]
            hidden = model.config.text_config.hidden_size
            assert count == sum(feature.reshape(-1, hidden).shape[0] for feature in pooled)
    if variant == "llava-1.5":
        assert counts == [4, 4]
    else:   # anyres: base tile + several grid tiles, unpadded, with image_newline; differs by aspect
        assert inputs["pixel_values"].shape[1] > 2 and counts[0] != counts[1] and min(counts) > 4

    output = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert output.shape[0] == 2 and inputs["input_ids"].shape[1] < output.shape[1] <= inputs["input_ids"].shape[1] + 5
    assert torch.equal(output[:, :inputs["input_ids"].shape[1]], inputs["input_ids"])
    decoded = processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert len(decoded) == 2 and all(isinstance(text, str) for text in decoded)


@pytest.mark.parametrize("variant", ["llava-1.5", "llava-next-mistral"])
def test_text_only_generation(checkpoints, variant):
    """HallusionBench has questions without images."""
    processor, model = load(checkpoints[variant])
    texts = [processor.apply_chat_template(user_turn(q, image=False), add_generation_prompt=True)
             for q in ("Is the Eiffel Tower in Paris?", "Yes or no?")]
    inputs = processor(text=texts, return_tensors="pt", padding=True)
    assert "pixel_values" not in inputs
    output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert output.shape[0] == 2


def digest(directory: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


def test_same_seed_gives_byte_identical_files(checkpoints, tmp_path):
    variant = "llava-next-mistral"
    again = build_random_llava(variant, tmp_path / "again", seed=0)
    assert digest(again) == digest(checkpoints[variant])
    other = digest(build_random_llava(variant, tmp_path / "other", seed=1))
    assert other["model.safetensors"] != digest(again)["model.safetensors"]
    assert other["tokenizer.json"] == digest(again)["tokenizer.json"]   # the tokenizer does not depend on the seed


def test_building_leaves_the_global_rng_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_random_llava("llava-1.5", tmp_path / "m", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_unknown_variant_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown random llava variant"):
        build_random_llava("llava-2", tmp_path)


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_registry_accepts_the_directory(checkpoints, variant):
    from pytest_lvlmbench.engine.models import check_local_model, describe_model, resolve_model

    check_local_model(variant, checkpoints[variant])
    ref = resolve_model(str(checkpoints[variant]))
    assert ref.is_local and ref.source == str(checkpoints[variant].resolve())
    assert describe_model(str(checkpoints[variant]))[1] == ARCHITECTURES[variant]
