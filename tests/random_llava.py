"""Random-initialised, structurally real llava-hf checkpoints for offline end-to-end runs.

``build_random_llava(variant, directory, seed)`` writes a directory that loads like the real
llava-hf checkpoint it imitates (``AutoProcessor`` / ``AutoModelForImageTextToText``), with tiny
dimensions so a CPU forward pass takes milliseconds:

* ``llava-1.5``          ~ llava-hf/llava-1.5-7b-hf: LlavaForConditionalGeneration, CLIP vision tower,
                           vision_feature_layer -2, "default" feature selection (CLS dropped), 2-layer
                           gelu MLP projector, LlamaForCausalLM text model; LlavaProcessor with a
                           CLIPImageProcessor (shortest-edge resize + centre crop).
* ``llava-next-vicuna``  ~ llava-hf/llava-v1.6-vicuna-7b-hf: LlavaNextForConditionalGeneration (anyres
                           tiles, image_newline), Llama text model, LlavaNextImageProcessor.
* ``llava-next-mistral`` ~ llava-hf/llava-v1.6-mistral-7b-hf: as above with a Mistral text model.

The chat templates are the llava-hf ones, byte for byte (see the constants). The tokenizer is not
Llama's (that cannot be downloaded here) but is built the same way: a BPE with byte fallback (every
UTF-8 string encodes, never to <unk>), a Metaspace "▁" pre-tokenizer that, like the llava-hf
fast Llama tokenizers, prepends "▁" to every stretch of text between special tokens, ids
<unk>=0, <s>=1, </s>=2, then the 256 <0xNN> byte tokens, the learned pieces, and finally "<image>" and "<pad>" appended
after the base vocabulary as the llava-hf conversion did (32000 / 32001 there); the model's
vocabulary is padded to a multiple of 64 like llava-hf's 32064. The BPE is trained in-process on a
few hundred lines of generic English written below. Same seed -> byte-identical files.
"""

from __future__ import annotations

import json
from pathlib import Path

VARIANTS = ("llava-1.5", "llava-next-vicuna", "llava-next-mistral")
IMAGE_TOKEN = "<image>"
PAD_TOKEN = "<pad>"

# Tiny, structurally faithful dimensions. Real: 336 px images, 14 px patches (24x24 = 576 tokens).
IMAGE_SIZE = 32
PATCH_SIZE = 16
IMAGE_SEQ_LENGTH = (IMAGE_SIZE // PATCH_SIZE) ** 2   # CLS dropped by the "default" strategy
# Real llava-v1.6 pinpoints are [[336,672],[672,336],[672,672],[1008,336],[336,1008]]: the same
# multiples (1x2, 2x1, 2x2, 3x1, 1x3) of the tile size, here 32 px.
IMAGE_GRID_PINPOINTS = [[IMAGE_SIZE * a, IMAGE_SIZE * b] for a, b in ((1, 2), (2, 1), (2, 2), (3, 1), (1, 3))]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]   # OPENAI_CLIP_MEAN / STD, as in the real preprocessors
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
BPE_VOCAB_SIZE = 768          # learned pieces incl. <unk>/<s>/</s> and the character alphabet
VOCAB_MULTIPLE = 64           # llava-hf resized embeddings to vocab + 2 padded to a multiple of 64

# --- chat templates -----------------------------------------------------------------------------
# Both strings are the `chat_template` values of the llava-hf hub repos' chat_template.json files.
# Sources (the hub itself is unreachable here), which agree character for character:
#  * openvinotoolkit/openvino.genai, src/cpp/src/tokenizer/chat_template_fallback_map.hpp at
#    c21261a92e751128e5c85e7651d195283b0b4ac8 (the entries lived in src/cpp/src/tokenizer.cpp from
#    8490584db5bf, Feb 2025, until 8433e664eb08, Aug 2025, dropped them): a table keyed by exact
#    equality with the template read from a checkpoint's chat_template.json, commented
#    "llava-1.5, llava-v1.6-vicuna (chat_template.json)" and
#    "tiny-random-llava-next, llava-v1.6-mistral (chat_template.json)";
#  * the llava-hf maintainers' push script (model2template: llava-1.5-7b/13b-hf and
#    llava-v1.6-vicuna-7b/13b-hf -> chat_vicuna, llava-v1.6-mistral-7b-hf -> chat_mistral), found in
#    the code index without a repository name, for the Mistral one and the Vicuna mapping;
#  * huggingface/transformers' LlavaProcessorTest (tests/models/llava/test_processor_llava.py; seen
#    through the code index, path not shown there): prepare_processor_dict holds the Vicuna template
#    verbatim, and test_chat_template expects llava-hf/llava-1.5-7b-hf to render
#    "USER: <image>\nWhat is shown in this image? ASSISTANT:".
# The Vicuna template writes no system line: "USER: <image>\n{text} ASSISTANT:".
LLAVA_VICUNA_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all text next #}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}"
    "{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}"
    "{% endfor %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
# llava-v1.6-mistral-7b-hf after hub commit 144bfb964d4eef1502a22af4c5ff20d0d4a94cc1 (Feb 2025,
# cited in openvino.genai c0cebe421fe6), which changed the assistant-turn end from the literal
# '<\s> ' to '</s> '; user turns and the prompt render the same either way:
# "[INST] <image>\n{text} [/INST]". It has no add_generation_prompt branch.
LLAVA_MISTRAL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' }}"
    "{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{# Render all text next #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}"
    "{% endfor %}"
    "{{' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'][0]['text'] + '</s> '}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}"
    "{% endfor %}"
)
CHAT_TEMPLATES = {
    "llava-1.5": LLAVA_VICUNA_CHAT_TEMPLATE,
    "llava-next-vicuna": LLAVA_VICUNA_CHAT_TEMPLATE,
    "llava-next-mistral": LLAVA_MISTRAL_CHAT_TEMPLATE,
}
# What each checkpoint renders for one user turn (image first, as the templates always put it).
PROMPT_FORMATS = {
    "llava-1.5": "USER: <image>\n{text} ASSISTANT:",
    "llava-next-vicuna": "USER: <image>\n{text} ASSISTANT:",
    "llava-next-mistral": "[INST] <image>\n{text} [/INST]",
}
TEXT_ONLY_PROMPT_FORMATS = {
    "llava-1.5": "USER: {text} ASSISTANT:",
    "llava-next-vicuna": "USER: {text} ASSISTANT:",
    "llava-next-mistral": "[INST] {text} [/INST]",
}
HUB_COUNTERPARTS = {
    "llava-1.5": "llava-hf/llava-1.5-7b-hf",
    "llava-next-vicuna": "llava-hf/llava-v1.6-vicuna-7b-hf",
    "llava-next-mistral": "llava-hf/llava-v1.6-mistral-7b-hf",
}


# --- tokenizer ------------------------------------------------------------------------------------
_SUBJECTS = ["the man", "a woman", "the child", "two dogs", "a black cat", "the bus", "an old car", "three birds",
             "the red train", "a small boat", "the teacher", "some people", "a young girl", "the players",
             "a brown horse", "the white sign", "a plate of food", "the laptop", "a green bottle", "the clock"]
_VERBS = ["is standing near", "is sitting on", "is looking at", "is holding", "is walking past", "is riding",
          "is parked next to", "is eating", "is playing with", "is flying over", "is lying under", "is reading"]
_OBJECTS = ["the table", "a wooden bench", "the kitchen counter", "a busy street", "the tall building",
            "a snowy mountain", "the beach", "a field of grass", "the river", "a large window", "the computer",
            "an umbrella", "the fence", "a pizza", "the bathroom sink", "a bowl of fruit", "the stop sign"]
_PLACES = ["in the park", "at the airport", "on a sunny day", "in the rain", "at night", "in a city",
           "inside a room", "near the water", "in the kitchen", "on the road", "at the station", "outdoors"]
_QUESTIONS = [
    "What is the man holding?", "What color is the bus?", "How many people are in the picture?",
    "Is there a dog in the image?", "Is there a cat in the image?", "What is written on the sign?",
    "What time is shown on the clock?", "Where was this photo taken?", "What is the woman wearing?",
    "Which animal is on the left?", "What brand is the laptop?", "What number is on the jersey?",
    "Is the light on or off?", "What sport is being played?", "What is the name of the store?",
    "Are the people happy?", "Why is the road wet?", "Who is sitting on the bench?", "What does the label say?",
    "How many birds are flying?", "What is the price of the item?", "What year is written on the coin?",
    "Is this a photo of a kitchen?", "Which way is the arrow pointing?", "What is the title of the book?",
    "What is the capital of France?", "Which of these states is farthest north?",
    "Which property do these three objects have in common?", "What is the weather like?",
    "Does the image show a map of the United States?", "Is the value of Line A greater than Line B?",
    "According to the chart, which year had the highest sales?", "Is it day or night?",
]
_INSTRUCTIONS = [
    "Answer the question using a single word or phrase.",
    "Answer with the option's letter from the given choices directly.",
    "When the provided information is insufficient, respond with 'Unanswerable'.",
    "Provide a one-sentence caption for the provided image.", "Please answer yes or no.",
    "Describe the image in detail.", "Please help me describe the image in detail.",
    "Reference OCR token: STOP, EXIT, 24/7, OPEN, Coca-Cola, $4.99, No. 12",
    "Context: The passage below describes an experiment.", "Options:", "Hint: look at the top left corner.",
    "A chat between a curious human and an artificial intelligence assistant.",
    "The assistant gives helpful, detailed, and polite answers to the human's questions.",
]
_ANSWERS = ["yes", "no", "Yes", "No", "two", "three", "red", "blue", "green", "white", "black", "yellow",
            "unanswerable", "Unanswerable", "tennis", "baseball", "pizza", "left", "right", "top", "bottom",
            "A", "B", "C", "D", "The answer is B.", "It is raining.", "Nothing.", "I don't know."]
_MISC = [
    "In 1998, the population was 1,234,567; by 2020 it had grown by 12.5%.",
    "The temperature is 21°C (about 70°F) at 3:45 p.m. on 2019-06-01.",
    "She said, \"Don't touch that!\" and he replied: 'Why not?'",
    "Call 555-0100 or e-mail info@example.com before Friday, March 3rd.",
    "Prices: $3.50, €2.99, £1.25 and ¥100 — all taxes included.",
    "The café in Zürich served crème brûlée, a naïve résumé of French cuisine.",
    "São Paulo, München, Kraków, Ångström, Øresund, Málaga, İstanbul.",
    "Math: 2 + 2 = 4, 3 * 7 = 21, 10 / 4 = 2.5, x^2 - 1 < 0, 50% of 8 is 4.",
    "Lists use commas, semicolons; colons: dashes - and (parentheses) [brackets] {braces}.",
    "Hashtags #fun & @mentions | pipes / slashes \\ backslashes ~ tildes ` backticks.",
    "“Curly quotes” and ‘single ones’ … ellipses… and em-dashes — en-dashes –.",
    "Unicode: ½ ¼ ¾ × ÷ ± ≤ ≥ ≠ ∞ π µ © ® ™ → ← ↑ ↓ ★ ☆ ♥.",
    "日本語のテキスト、中文文本、한국어 텍스트, Русский текст, Ελληνικά, العربية, עברית, हिन्दी.",
    "Emoji appear too: 😀 🐶 🍕 🚌 ⚽ 🌧️ 👍🏽.",
]


def corpus_lines() -> list[str]:
    """A few hundred lines of generic English (and some punctuation, digits and unicode), fixed."""
    lines = []
    for i in range(240):
        subject, verb = _SUBJECTS[i % len(_SUBJECTS)], _VERBS[(i * 7) % len(_VERBS)]
        obj, place = _OBJECTS[(i * 5) % len(_OBJECTS)], _PLACES[(i * 3) % len(_PLACES)]
        sentence = f"{subject} {verb} {obj} {place}."
        lines.append(sentence[0].upper() + sentence[1:])
    for i, question in enumerate(_QUESTIONS):
        lines.append(f"{question}\n{_INSTRUCTIONS[i % len(_INSTRUCTIONS)]}".replace("\n", " "))
        lines.append(f"{question} A. {_ANSWERS[i % len(_ANSWERS)]} B. {_ANSWERS[(i + 3) % len(_ANSWERS)]} "
                     f"C. {_ANSWERS[(i + 5) % len(_ANSWERS)]} D. {_ANSWERS[(i + 9) % len(_ANSWERS)]}")
    lines += _INSTRUCTIONS + _MISC + [f"Answer: {a}" for a in _ANSWERS]
    lines += [f"Number {n}, year {1900 + 7 * n}, {n} items at {n}.{n:02d} dollars, {n * 37}%." for n in range(40)]
    for i, question in enumerate(_QUESTIONS[:20]):  # the chat formats the templates produce
        answer = _ANSWERS[i % len(_ANSWERS)]
        lines.append(f"USER: {question} ASSISTANT: {answer}" if i % 2 else f"[INST] {question} [/INST] {answer}")
    return lines


def build_tokenizer():
    """A Llama-style BPE with byte fallback, trained now; returns a transformers fast tokenizer."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    base_special = ["<unk>", "<s>", "</s>"]
    metaspace = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainee = Tokenizer(models.BPE(unk_token="<unk>"))
    trainee.pre_tokenizer = metaspace
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB_SIZE, special_tokens=base_special, show_progress=False,
                                  min_frequency=2)
    trainee.train_from_iterator(corpus_lines(), trainer=trainer)
    learned = json.loads(trainee.to_str())["model"]
    pieces = [token for token, _ in sorted(learned["vocab"].items(), key=lambda item: item[1])
              if token not in base_special]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    vocab = {token: i for i, token in enumerate(base_special + byte_tokens + pieces)}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]

    core = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    core.pre_tokenizer = metaspace
    core.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                      decoders.Strip(" ", 1, 0)])
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in base_special])
    core.add_special_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False),
                             AddedToken(PAD_TOKEN, special=True, normalized=False)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token=PAD_TOKEN, padding_side="left", add_bos_token=True,
                                   add_eos_token=False,
                                   extra_special_tokens={"image_token": IMAGE_TOKEN})


# --- processor and model ------------------------------------------------------------------------------
def build_processor(variant: str, tokenizer=None):
    from transformers import CLIPImageProcessorPil, LlavaNextImageProcessorPil, LlavaNextProcessor, LlavaProcessor

    _check_variant(variant)
    tokenizer = tokenizer or build_tokenizer()
    common = dict(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                  do_center_crop=True, do_convert_rgb=True, resample=3, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    kwargs = dict(tokenizer=tokenizer, patch_size=PATCH_SIZE, vision_feature_select_strategy="default",
                  num_additional_image_tokens=1, image_token=IMAGE_TOKEN, chat_template=CHAT_TEMPLATES[variant])
    if variant == "llava-1.5":
        return LlavaProcessor(image_processor=CLIPImageProcessorPil(**common), **kwargs)
    image_processor = LlavaNextImageProcessorPil(image_grid_pinpoints=IMAGE_GRID_PINPOINTS, do_pad=True, **common)
    return LlavaNextProcessor(image_processor=image_processor, **kwargs)


def padded_vocab_size(tokenizer) -> int:
    return -(-len(tokenizer) // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


def build_config(variant: str, tokenizer):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaNextConfig, MistralConfig

    _check_variant(variant)
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    vision = CLIPVisionConfig(image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=2, projection_dim=32,
                              hidden_act="quick_gelu", layer_norm_eps=1e-5)
    text_common = dict(vocab_size=padded_vocab_size(tokenizer), hidden_size=64, intermediate_size=128,
                       num_hidden_layers=2, num_attention_heads=4, rms_norm_eps=1e-5, hidden_act="silu",
                       tie_word_embeddings=False, **ids)
    if variant == "llava-next-mistral":  # Mistral-7B-Instruct-v0.2: GQA, rope_theta 1e6, no sliding window
        text = MistralConfig(num_key_value_heads=2, max_position_embeddings=32768, sliding_window=None,
                             rope_theta=1000000.0, **text_common)
    else:  # Vicuna-7B v1.5 (Llama-2): multi-head attention, 4096 positions
        text = LlamaConfig(num_key_value_heads=4, max_position_embeddings=4096, **text_common)
    common = dict(vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                  projector_hidden_act="gelu", vision_feature_layer=-2, vision_feature_select_strategy="default",
                  image_seq_length=IMAGE_SEQ_LENGTH, tie_word_embeddings=False)
    if variant == "llava-1.5":
        config = LlavaConfig(**common)
    else:
        config = LlavaNextConfig(image_grid_pinpoints=IMAGE_GRID_PINPOINTS, **common)
    config.pad_token_id = tokenizer.pad_token_id   # the real configs carry it at the top level too
    return config


def build_random_llava(variant: str, directory: Path, seed: int = 0) -> Path:
    """Write a random-init checkpoint of ``variant`` to ``directory`` (created) and return it.
    Loads with AutoProcessor / AutoModelForImageTextToText.from_pretrained(directory)."""
    import torch
    from transformers import GenerationConfig, LlavaForConditionalGeneration, LlavaNextForConditionalGeneration

    _check_variant(variant)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    processor = build_processor(variant, tokenizer)
    config = build_config(variant, tokenizer)
    config.architectures = [("LlavaForConditionalGeneration" if variant == "llava-1.5"
                             else "LlavaNextForConditionalGeneration")]
    cls = LlavaForConditionalGeneration if variant == "llava-1.5" else LlavaNextForConditionalGeneration
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = cls(config).eval()
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id,
                                               eos_token_id=tokenizer.eos_token_id,
                                               pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(directory, safe_serialization=True)
    processor.save_pretrained(directory)
    return directory


def build_random_llavas(root: Path, seed: int = 0, variants=VARIANTS) -> dict[str, Path]:
    """Every variant under ``root/<variant>``: for a session-scoped fixture, e.g.
    ``build_random_llavas(tmp_path_factory.mktemp("random-llava"))``. About a second each on CPU."""
    return {variant: build_random_llava(variant, Path(root) / variant, seed) for variant in variants}


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown random llava variant {variant!r}: known are {VARIANTS}")


def stop_early(model_dir) -> None:
    """Make every 16th token an end of sequence: random weights never choose EOS, so without this each
    answer runs to its task's max_new_tokens (1,024 for MM-Vet) and the test to many minutes."""
    path = model_dir / "generation_config.json"
    config = json.loads(path.read_text())
    config["eos_token_id"] = list(range(2, json.loads((model_dir / "config.json").read_text())["text_config"]
                                        ["vocab_size"], 16))
    path.write_text(json.dumps(config))
