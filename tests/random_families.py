"""Random-initialised, structurally real checkpoints of the non-LLaVA families, for offline end-to-end runs.

``build_random_family(family, directory, seed)`` writes a directory laid out as the hub checkpoint it
imitates (config.json, safetensors, preprocessor_config.json, processor_config.json, tokenizer files,
chat_template.jinja) with tiny dimensions, so a CPU forward pass takes milliseconds. Each family keeps
its real architecture class, its real chat template and its processor's real settings where they do
not fix the image size; sizes are shrunk (2 text layers, hidden 64, 4 heads, 2 KV heads, head_dim 16, a
2-layer vision tower of width 32). The tokenizer is a byte-level BPE trained now on
``random_llava.corpus_lines`` with the family's special tokens (the real tokenizers cannot be
downloaded here), so every string encodes. Facts and sources: docs/dev/model-families-survey.md.

No video processor is written: the processors of Qwen2-VL, Qwen2.5-VL, LLaVA-OneVision, InternVL
and SmolVLM then load through :func:`pytest_lvlmbench.engine.families.processor_from_parts`, the path a
CPU machine without torchvision takes with the real checkpoints too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from random_llava import corpus_lines

# --- chat templates (each the checkpoint's own; sources beside them) ----------------------------------
# Qwen/Qwen2-VL-7B-Instruct chat_template.json (identical for Qwen2.5-VL-*-Instruct): the string in
# transformers tests/models/qwen2_vl/test_processor_qwen2_vl.py, which its integration test renders to
# "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>...".
from pytest_lvlmbench.zoo.build import QWEN2_VL_CHAT_TEMPLATE  # noqa: E402  (also tiny-qwen's)

# transformers tests/models/llava_onevision/test_processing_llava_onevision.py, prepare_processor_dict
# (the template of llava-hf/llava-onevision-qwen2-*-ov-hf).
LLAVA_ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}{{'<|im_end|>'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
# transformers src/transformers/models/internvl/convert_internvl_weights_to_hf.py (the InternVL3 version:
# the image placeholder is the processor's <IMG_CONTEXT>).
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "{{ '<IMG_CONTEXT>\n' }}{% elif content['type'] == 'video' %}{{ '<video>\n' }}{% elif content['type'] == 'text' %}"
    "{{ content['text'] }}{% endif %}{% endfor %}{% endif %}{{'<|im_end|>\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}")
# HuggingFaceM4/Idefics3-8B-Llama3: renders exactly what transformers
# tests/models/idefics3/test_processing_idefics3.py::test_apply_chat_template expects.
IDEFICS3_CHAT_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
# transformers tests/models/gemma3/test_processing_gemma3.py, Gemma3ProcessorTest.prepare_processor_dict
# (google/gemma-3-*-it's template: system text folded into the first user turn, roles user/model).
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\n' }}\n"
    "{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n")


@dataclass(frozen=True)
class FamilyRecipe:
    """What one family's tiny checkpoint is made of; ``build`` turns it into config, model and processor."""

    architecture: str
    processor: str
    image_processor: str                 # the PIL backend class (no torchvision)
    template: str
    specials: tuple[str, ...]
    bos: str | None
    eos: str
    pad: str
    image_processor_kwargs: dict = field(default_factory=dict)
    processor_kwargs: dict = field(default_factory=dict)
    tokenizer_extras: dict = field(default_factory=dict)   # extra_special_tokens the processor reads
    prompt_format: str = ""              # one user turn with an image, as the template renders it
    text_only_format: str = ""
    adds_bos: bool = False               # the tokenizer puts BOS first, as Gemma's and Llama 3's do


QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>")
QWEN_PROMPT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
               "<|vision_start|><|image_pad|><|vision_end|>{text}<|im_end|>\n<|im_start|>assistant\n")
QWEN_TEXT_ONLY = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{text}<|im_end|>\n"
                  "<|im_start|>assistant\n")
# Idefics3 / SmolVLM: one 64 px image (real: 364 / 384 px tiles of a split image), 4 tokens after the 2x shuffle
IDEFICS_IMAGES = {"size": {"longest_edge": 64}, "max_image_size": {"longest_edge": 64}, "do_image_splitting": False}
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
RECIPES = {
    "qwen2-vl": FamilyRecipe(
        "Qwen2VLForConditionalGeneration", "Qwen2VLProcessor", "Qwen2VLImageProcessorPil", QWEN2_VL_CHAT_TEMPLATE,
        QWEN_SPECIALS, None, "<|im_end|>", "<|endoftext|>",
        # Qwen2-VL-7B-Instruct's preprocessor_config.json: patch 14, merge 2, temporal 2, min_pixels 3136;
        # max_pixels shrunk (real 12845056) so a fixture image gives a few tokens
        image_processor_kwargs={"min_pixels": 3136, "max_pixels": 56 * 56 * 4},
        prompt_format=QWEN_PROMPT, text_only_format=QWEN_TEXT_ONLY),
    "qwen2.5-vl": FamilyRecipe(
        "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor", "Qwen2VLImageProcessorPil",
        QWEN2_VL_CHAT_TEMPLATE, QWEN_SPECIALS, None, "<|im_end|>", "<|endoftext|>",
        image_processor_kwargs={"min_pixels": 3136, "max_pixels": 56 * 56 * 4},
        prompt_format=QWEN_PROMPT, text_only_format=QWEN_TEXT_ONLY),
    "llava-onevision": FamilyRecipe(
        "LlavaOnevisionForConditionalGeneration", "LlavaOnevisionProcessor", "LlavaOnevisionImageProcessorPil",
        LLAVA_ONEVISION_CHAT_TEMPLATE, ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"),
        None, "<|im_end|>", "<|endoftext|>",
        # anyres as llava-onevision-qwen2-*-ov-hf (384 px SigLIP tiles; here 32 px, 16 px patches)
        image_processor_kwargs={"size": {"height": 32, "width": 32},
                                "image_grid_pinpoints": [[32 * a, 32 * b] for a, b in ((1, 1), (1, 2), (2, 1), (2, 2))]},
        processor_kwargs={"num_image_tokens": 4, "vision_feature_select_strategy": "full"},
        prompt_format="<|im_start|>user <image>\n{text}<|im_end|><|im_start|>assistant\n",
        text_only_format="<|im_start|>user \n{text}<|im_end|><|im_start|>assistant\n"),
    "internvl": FamilyRecipe(
        "InternVLForConditionalGeneration", "InternVLProcessor", "GotOcr2ImageProcessorPil", INTERNVL_CHAT_TEMPLATE,
        ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"),
        None, "<|im_end|>", "<|endoftext|>",
        # OpenGVLab/InternVL3-*-hf: 448 px tiles, ImageNet mean/std; here 56 px tiles, no tiling
        image_processor_kwargs={"size": {"height": 56, "width": 56}, "crop_to_patches": False,
                                "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD},
        processor_kwargs={"image_seq_length": 4},
        tokenizer_extras={"start_image_token": "<img>", "end_image_token": "</img>",
                          "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"},
        prompt_format="<|im_start|>user\n<IMG_CONTEXT>\n{text}<|im_end|>\n<|im_start|>assistant\n",
        text_only_format="<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"),
    "idefics3": FamilyRecipe(
        "Idefics3ForConditionalGeneration", "Idefics3Processor", "Idefics3ImageProcessorPil", IDEFICS3_CHAT_TEMPLATE,
        ("<|begin_of_text|>", "<|end_of_text|>", "<fake_token_around_image>", "<image>", "<end_of_utterance>",
         "<global-img>"), "<|begin_of_text|>", "<end_of_utterance>", "<|end_of_text|>",
        image_processor_kwargs=IDEFICS_IMAGES, processor_kwargs={"image_seq_len": 4},
        prompt_format="<|begin_of_text|>User:<image>{text}<end_of_utterance>\nAssistant:",
        text_only_format="<|begin_of_text|>User: {text}<end_of_utterance>\nAssistant:", adds_bos=True),
    "smolvlm": FamilyRecipe(
        "SmolVLMForConditionalGeneration", "SmolVLMProcessor", "SmolVLMImageProcessorPil", "",  # shipped default
        ("<|im_start|>", "<|endoftext|>", "<fake_token_around_image>", "<image>", "<end_of_utterance>",
         "<global-img>", "<video>"), "<|im_start|>", "<end_of_utterance>", "<|endoftext|>",
        image_processor_kwargs=IDEFICS_IMAGES, processor_kwargs={"image_seq_len": 4},
        prompt_format="<|im_start|>User:<image>{text}<end_of_utterance>\nAssistant:",
        text_only_format="<|im_start|>User: {text}<end_of_utterance>\nAssistant:"),
    "gemma3": FamilyRecipe(
        "Gemma3ForConditionalGeneration", "Gemma3Processor", "Gemma3ImageProcessorPil", GEMMA3_CHAT_TEMPLATE,
        ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>",
         "<end_of_image>", "<image_soft_token>"), "<bos>", "<eos>", "<pad>",
        image_processor_kwargs={"size": {"height": 32, "width": 32}},
        processor_kwargs={"image_seq_length": 4},
        tokenizer_extras={"image_token": "<image_soft_token>", "boi_token": "<start_of_image>",
                          "eoi_token": "<end_of_image>"},
        prompt_format="<bos><start_of_turn>user\n<start_of_image>{text}<end_of_turn>\n<start_of_turn>model\n",
        text_only_format="<bos><start_of_turn>user\n{text}<end_of_turn>\n<start_of_turn>model\n", adds_bos=True),
}
FAMILIES = tuple(RECIPES)


def template_of(family: str) -> str:
    if family == "smolvlm":   # shipped in transformers/models/smolvlm/processing_smolvlm.py
        from transformers.models.smolvlm.processing_smolvlm import DEFAULT_CHAT_TEMPLATE
        return DEFAULT_CHAT_TEMPLATE
    return RECIPES[family].template


def build_tokenizer(family: str):
    """A byte-level BPE trained now, the family's special tokens first (atomic, never split)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    recipe = RECIPES[family]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(corpus_lines(), trainers.BpeTrainer(
        vocab_size=600, special_tokens=list(recipe.specials), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in recipe.specials])
    if recipe.adds_bos:
        bos = (recipe.bos, core.token_to_id(recipe.bos))
        core.post_processor = processors.TemplateProcessing(single=f"{recipe.bos} $A", special_tokens=[bos],
                                                            pair=f"{recipe.bos} $A {recipe.bos} $B")
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=recipe.bos, eos_token=recipe.eos,
                                   pad_token=recipe.pad, padding_side="left", chat_template=template_of(family),
                                   extra_special_tokens=recipe.tokenizer_extras or None)


def build_config(family: str, tokenizer):
    import transformers

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in RECIPES[family].specials}
    text = dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    siglip = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, vision_use_head=False)
    if family in ("qwen2-vl", "qwen2.5-vl"):
        # mrope_section sums to head_dim / 2 (real: [16, 24, 24] for head_dim 128)
        text["rope_parameters"] = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [4, 2, 2]}
        vision = (dict(depth=2, embed_dim=32, hidden_size=64, num_heads=4, mlp_ratio=2, patch_size=14,
                       spatial_merge_size=2, temporal_patch_size=2) if family == "qwen2-vl" else
                  dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=64, patch_size=14,
                       spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[1]))
        cls = transformers.Qwen2VLConfig if family == "qwen2-vl" else transformers.Qwen2_5_VLConfig
        return cls(text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
                   video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                   vision_end_token_id=ids["<|vision_end|>"], tie_word_embeddings=True)
    if family == "llava-onevision":
        recipe = RECIPES[family]
        return transformers.LlavaOnevisionConfig(
            text_config=dict(model_type="qwen2", **text), vision_config=dict(siglip, image_size=32, patch_size=16),
            image_token_index=ids["<image>"], video_token_index=ids["<video>"],
            image_grid_pinpoints=recipe.image_processor_kwargs["image_grid_pinpoints"],
            vision_feature_select_strategy="full", vision_feature_layer=-1, tie_word_embeddings=True)
    if family == "internvl":
        return transformers.InternVLConfig(
            text_config=dict(model_type="qwen2", **text),
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                               image_size=[56, 56], patch_size=[14, 14]),
            image_token_id=ids["<IMG_CONTEXT>"], image_seq_length=4, downsample_ratio=0.5, vision_feature_layer=-1,
            vision_feature_select_strategy="default")
    if family in ("idefics3", "smolvlm"):
        cls = transformers.Idefics3Config if family == "idefics3" else transformers.SmolVLMConfig
        return cls(text_config=dict(model_type="llama", **text),
                   vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      image_size=64, patch_size=16),
                   image_token_id=ids["<image>"], scale_factor=2, pad_token_id=tokenizer.pad_token_id,
                   tie_word_embeddings=True)
    # Gemma 3: a windowed layer then a global one (real 4B: five sliding layers per global, window 1024);
    # the window is 16 tokens here, so the fixtures' prompts run past it
    return transformers.Gemma3Config(
        text_config=dict(text, head_dim=16, query_pre_attn_scalar=16, sliding_window=16,
                         layer_types=["sliding_attention", "full_attention"]),
        vision_config=dict(siglip, image_size=32, patch_size=8), mm_tokens_per_image=4,
        boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
        image_token_index=ids["<image_soft_token>"], tie_word_embeddings=True)


def build_random_family(family: str, directory: Path, seed: int = 0) -> Path:
    """Write a random-init checkpoint of ``family`` to ``directory`` (created) and return it."""
    import torch
    import transformers
    from transformers import GenerationConfig

    if family not in RECIPES:
        raise ValueError(f"unknown random family {family!r}: known are {FAMILIES}")
    recipe = RECIPES[family]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(family)
    config = build_config(family, tokenizer)
    config.architectures = [recipe.architecture]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = getattr(transformers, recipe.architecture)(config).eval()
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
                                               eos_token_id=tokenizer.eos_token_id)
    model.save_pretrained(directory, safe_serialization=True)
    image_processor = getattr(transformers, recipe.image_processor)(**recipe.image_processor_kwargs)
    image_processor.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    (directory / "chat_template.jinja").write_text(template_of(family))
    (directory / "processor_config.json").write_text(json.dumps({"processor_class": recipe.processor,
                                                                 **recipe.processor_kwargs}, indent=2))
    return directory


def build_random_families(root: Path, seed: int = 0, families=FAMILIES) -> dict[str, Path]:
    return {family: build_random_family(family, Path(root) / family, seed) for family in families}
