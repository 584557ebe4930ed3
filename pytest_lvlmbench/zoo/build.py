"""Tokenizer, processor and model configs of the embedded tiny LLaVA variants.

Two variants mirror the two real architectures: ``tiny`` is a LlavaForConditionalGeneration
(LLaVA-1.5: CLIP tower, MLP projector, Llama), ``tiny-next`` a LlavaNextForConditionalGeneration
(LLaVA-1.6: anyres tiles plus image newlines). Both see 48x48 images through 16 px patches
(one patch per grid cell of the shapes world) and speak a word-level vocabulary.
"""

from __future__ import annotations

import math

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                          LlavaForConditionalGeneration, LlavaNextConfig, LlavaNextForConditionalGeneration,
                          LlavaNextImageProcessorPil, LlavaNextProcessor, LlavaProcessor,
                          PreTrainedTokenizerFast)

from ..tasks.shapes.world import IMAGE_SIZE, vocabulary

VARIANTS = ("tiny", "tiny-next")
PATCH = 16
IMAGE_TOKEN = "<image>"
SPECIAL = ("<pad>", "<s>", "</s>", "<unk>", IMAGE_TOKEN)
CHAT_TEMPLATE = ("{% for message in messages %}{% if message['role'] == 'user' %}USER: "
                 "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
                 "{% else %}{{ part['text'] }}{% endif %}{% endfor %} {% else %}ASSISTANT: "
                 "{% for part in message['content'] %}{{ part['text'] }}{% endfor %}</s>{% endif %}"
                 "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")
PINPOINTS = [[48, 48], [48, 96], [96, 48], [96, 96]]
# Qwen/Qwen2-VL-7B-Instruct's chat_template.json (the same for Qwen2.5-VL-*-Instruct): the string of
# transformers tests/models/qwen2_vl/test_processor_qwen2_vl.py, whose integration test expects
# "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>...".
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: "
    "{% endif %}<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% endif %}")


def prompt(question: str) -> str:
    """The LLaVA-1.5 conversation format, as the chat template writes it."""
    return f"USER: {IMAGE_TOKEN}\n{question} ASSISTANT:"


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(SPECIAL + tuple(vocabulary()))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##")
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", padding_side="left", chat_template=CHAT_TEMPLATE,
                                   extra_special_tokens={"image_token": IMAGE_TOKEN})


def build_processor(variant: str):
    tokenizer = build_tokenizer()
    common = dict(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    if variant == "tiny":
        return LlavaProcessor(image_processor=CLIPImageProcessorPil(**common), tokenizer=tokenizer,
                              patch_size=PATCH, vision_feature_select_strategy="default",
                              num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)
    return LlavaNextProcessor(image_processor=LlavaNextImageProcessorPil(image_grid_pinpoints=PINPOINTS,
                                                                          do_pad=True, **common),
                              tokenizer=tokenizer, patch_size=PATCH, vision_feature_select_strategy="default",
                              num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)


def build_config(variant: str, vocab_size: int, image_token_id: int, *, text_hidden: int = 128,
                 text_layers: int = 4, text_heads: int = 4):
    """Narrow on purpose: a model near capacity has the narrow margins that make compression bite."""
    vision = CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=PATCH, hidden_size=128, intermediate_size=256,
                              num_hidden_layers=3, num_attention_heads=4)
    text = LlamaConfig(vocab_size=vocab_size, hidden_size=text_hidden, intermediate_size=4 * text_hidden,
                       num_hidden_layers=text_layers, num_attention_heads=text_heads,
                       num_key_value_heads=text_heads, max_position_embeddings=256,
                       tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    common = dict(vision_config=vision, text_config=text, image_token_id=image_token_id, vision_feature_layer=-1,
                  vision_feature_select_strategy="default", projector_hidden_act="gelu")
    if variant == "tiny":
        return LlavaConfig(image_seq_length=(IMAGE_SIZE // PATCH) ** 2, **common)
    return LlavaNextConfig(image_grid_pinpoints=PINPOINTS, image_seq_length=(IMAGE_SIZE // PATCH) ** 2, **common)


def build_model(variant: str, seed: int = 0, **config_overrides):
    """A fresh model whose vision position embeddings start as a strong 2-D code: CLIP's default
    (std 0.02) is far smaller than a patch's content, which leaves spatial relations unlearned."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown tiny variant {variant!r}: known are {VARIANTS}")
    tokenizer = build_tokenizer()
    config = build_config(variant, len(tokenizer), tokenizer.convert_tokens_to_ids(IMAGE_TOKEN), **config_overrides)
    torch.manual_seed(seed)
    cls = LlavaForConditionalGeneration if variant == "tiny" else LlavaNextForConditionalGeneration
    model = cls(config)
    embedding = model.model.vision_tower.embeddings.position_embedding.weight
    side = IMAGE_SIZE // PATCH
    with torch.no_grad():
        rows, cols = torch.randn(side, embedding.shape[1]), torch.randn(side, embedding.shape[1])
        grid = (rows[:, None] + cols[None, :]).reshape(side * side, -1) * (0.5 / math.sqrt(2))
        embedding[1:] = grid  # index 0 is the class token
    return model
