"""Tokenizer, processor and model configs of the embedded tiny models.

Three variants mirror real architectures: ``tiny`` is a LlavaForConditionalGeneration (LLaVA-1.5:
CLIP tower, MLP projector, Llama), ``tiny-next`` a LlavaNextForConditionalGeneration (LLaVA-1.6:
anyres tiles plus image newlines), ``tiny-qwen`` a Qwen2VLForConditionalGeneration (a ViT with 2-D
rotary positions, a patch merger as projector, a Qwen2 text model with multimodal RoPE, Qwen2-VL's
own chat template). All see 48x48 images as one token per 16 px grid cell of the shapes world (LLaVA:
16 px patches; Qwen: 8 px patches merged 2x2) and speak a word-level vocabulary.
"""

from __future__ import annotations

import math

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                          LlavaForConditionalGeneration, LlavaNextConfig, LlavaNextForConditionalGeneration,
                          LlavaNextImageProcessorPil, LlavaNextProcessor, LlavaProcessor,
                          PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from ..engine.families import accepting_no_video
from ..tasks.shapes.world import IMAGE_SIZE, vocabulary

VARIANTS = ("tiny", "tiny-next", "tiny-qwen")
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


QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                "<|video_pad|>", "<unk>")   # <unk>: the word-level vocabulary's; Qwen's byte BPE has none
QWEN_WORDS = ("system", "You", "are", "a", "helpful", "assistant.", "user", "assistant")   # the template's own words
QWEN_PATCH, QWEN_MERGE = 8, 2
QWEN_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


def prompt(question: str, variant: str = "tiny") -> str:
    """One user turn with the image, as the variant's chat template writes it (LLaVA-1.5's or Qwen2-VL's)."""
    if variant == "tiny-qwen":
        return (f"{QWEN_SYSTEM}<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>{question}<|im_end|>\n"
                "<|im_start|>assistant\n")
    return f"USER: {IMAGE_TOKEN}\n{question} ASSISTANT:"


def build_tokenizer(variant: str = "tiny") -> PreTrainedTokenizerFast:
    if variant == "tiny-qwen":
        special, words = QWEN_SPECIAL, sorted(set(vocabulary()) - {"USER:", "ASSISTANT:"} | set(QWEN_WORDS))
        names = dict(eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=QWEN2_VL_CHAT_TEMPLATE,
                     extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"})
    else:
        special, words = SPECIAL, vocabulary()
        names = dict(bos_token="<s>", eos_token="</s>", pad_token="<pad>", chat_template=CHAT_TEMPLATE,
                     extra_special_tokens={"image_token": IMAGE_TOKEN})
    vocab = {token: i for i, token in enumerate(special + tuple(words))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##")
    if variant == "tiny-qwen":   # Qwen's template glues words to its special tokens: split those out first
        core.add_special_tokens([AddedToken(token, special=True, normalized=False) for token in special])
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", padding_side="left", **names)


def build_processor(variant: str):
    tokenizer = build_tokenizer(variant)
    if variant == "tiny-qwen":   # the 48 px image stays 48 px: 6x6 patches of 8 px, merged 2x2 into 9 tokens
        image_processor = Qwen2VLImageProcessorPil(patch_size=QWEN_PATCH, merge_size=QWEN_MERGE, temporal_patch_size=2,
                                                   min_pixels=IMAGE_SIZE ** 2, max_pixels=IMAGE_SIZE ** 2)
        return accepting_no_video(Qwen2VLProcessor)(image_processor=image_processor, tokenizer=tokenizer,
                                                    video_processor=None, chat_template=QWEN2_VL_CHAT_TEMPLATE)
    common = dict(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    if variant == "tiny":
        return LlavaProcessor(image_processor=CLIPImageProcessorPil(**common), tokenizer=tokenizer,
                              patch_size=PATCH, vision_feature_select_strategy="default",
                              num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)
    return LlavaNextProcessor(image_processor=LlavaNextImageProcessorPil(image_grid_pinpoints=PINPOINTS,
                                                                          do_pad=True, **common),
                              tokenizer=tokenizer, patch_size=PATCH, vision_feature_select_strategy="default",
                              num_additional_image_tokens=1, chat_template=CHAT_TEMPLATE)


def save_processor(processor, directory) -> None:
    """``processor.save_pretrained``, or (no video processor: it cannot save itself) its parts laid out as
    the hub's Qwen2-VL checkpoints lay them out, which :func:`..engine.families.load_processor` reads."""
    if getattr(processor, "video_processor", False) is not None:
        processor.save_pretrained(directory)
        return
    processor.image_processor.save_pretrained(directory)
    processor.tokenizer.save_pretrained(directory)
    (directory / "chat_template.jinja").write_text(processor.chat_template)
    (directory / "processor_config.json").write_text(f'{{"processor_class": "{type(processor).__name__}"}}\n')


def build_config(variant: str, vocab_size: int, image_token_id: int, *, text_hidden: int = 128,
                 text_layers: int = 4, text_heads: int = 4):
    """Narrow on purpose: a model near capacity has the narrow margins that make compression bite."""
    if variant == "tiny-qwen":   # the same text width and depth; GQA (2 KV heads) as Qwen2-VL-7B has
        head_dim = text_hidden // text_heads
        text = dict(vocab_size=vocab_size, hidden_size=text_hidden, intermediate_size=4 * text_hidden,
                    num_hidden_layers=text_layers, num_attention_heads=text_heads, num_key_value_heads=2,
                    max_position_embeddings=512, bos_token_id=None, eos_token_id=QWEN_SPECIAL.index("<|im_end|>"),
                    pad_token_id=QWEN_SPECIAL.index("<|endoftext|>"),
                    # Qwen2-VL's temporal/height/width split of the rotary pairs, [16, 24, 24] of 64, scaled
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0,
                                     "mrope_section": [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]})
        vision = dict(depth=3, embed_dim=128, hidden_size=text_hidden, num_heads=4, mlp_ratio=2, patch_size=QWEN_PATCH,
                      spatial_merge_size=QWEN_MERGE, temporal_patch_size=2)
        ids = {token.strip("<|>"): QWEN_SPECIAL.index(token) for token in QWEN_SPECIAL}   # specials come first
        return Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=image_token_id,
                             video_token_id=ids["video_pad"], vision_start_token_id=ids["vision_start"],
                             vision_end_token_id=ids["vision_end"], tie_word_embeddings=False)
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
    tokenizer = build_tokenizer(variant)
    config = build_config(variant, len(tokenizer), tokenizer.convert_tokens_to_ids(tokenizer.image_token),
                          **config_overrides)
    torch.manual_seed(seed)
    if variant == "tiny-qwen":   # its vision tower has rotary positions, no learned table to initialise
        return Qwen2VLForConditionalGeneration(config)
    cls = LlavaForConditionalGeneration if variant == "tiny" else LlavaNextForConditionalGeneration
    model = cls(config)
    embedding = model.model.vision_tower.embeddings.position_embedding.weight
    side = IMAGE_SIZE // PATCH
    with torch.no_grad():
        rows, cols = torch.randn(side, embedding.shape[1]), torch.randn(side, embedding.shape[1])
        grid = (rows[:, None] + cols[None, :]).reshape(side * side, -1) * (0.5 / math.sqrt(2))
        embedding[1:] = grid  # index 0 is the class token
    return model
