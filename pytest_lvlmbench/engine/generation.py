"""One batched greedy generation step shared by the plugin and the zoo scripts."""

from __future__ import annotations

import zlib
from contextlib import nullcontext

import torch
from transformers import LogitsProcessorList

from quant import KVQuantSpec, QuantizedKVCache
from quant.layers import LayerSelection
from quant.scored_attention import observing_attention
from quant.token_spec import EvictSpec, VTokSpec

from .gencache import Generated
from .roofline import DecodeClock


def float_cache_bytes(config, batch: int, tokens: int, dtype: torch.dtype) -> int:
    """Bytes a float cache in ``dtype`` takes for ``tokens`` positions of ``batch`` sequences."""
    text = config.get_text_config(decoder=True)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    return 2 * text.num_hidden_layers * batch * tokens * kv_heads * head_dim * dtype.itemsize


def token_anchored(*specs: KVQuantSpec | None) -> bool:
    """Whether a KV spec compresses tokens by where they fall from the start of the padded batch: KIVI's
    key groups (G tokens each) and any full-precision window (R tokens, flushed from position 0). The
    cache keeps padding out of every statistic (QuantizedKVCache.set_padding), but not out of these
    boundaries, so such a batch is generated per prompt length, without padding."""
    return any(spec is not None and not spec.is_float and (spec.method == "group" or spec.residual_length > 0)
               for spec in specs)


def equal_length_rows(attention_mask: torch.Tensor, image_tokens: list[int] | None = None) -> list[list[int]]:
    """The batch's rows grouped by their number of real tokens (and, given, of image tokens: visual-token
    pruning keeps the same number in every row), in order of first appearance."""
    groups: dict[tuple[int, int], list[int]] = {}
    for row, length in enumerate(attention_mask.sum(dim=1).tolist()):
        groups.setdefault((length, image_tokens[row] if image_tokens else 0), []).append(row)
    return list(groups.values())


def pruning_seed(prompt: str, image) -> int:
    """Random pruning's seed for one question: its prompt and picture (never its batch mates)."""
    return zlib.crc32(prompt.encode()) ^ (zlib.crc32(image.tobytes()) if image is not None else 0)


def image_token_id(config) -> int | None:
    """The id of the token each image's embeddings replace (its name differs between families)."""
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    return None


def without_padding(inputs, rows: list[int], image_token: int | None = None):
    """The processor's batch restricted to ``rows`` of one real length, its left padding cut off
    every per-token tensor (integer tensors shaped like ``input_ids``: the attention mask, the token-type
    ids some families' processors return, e.g. Qwen2-VL's ``mm_token_type_ids``, Gemma 3's
    ``token_type_ids``, which must stay aligned with the ids). Tensors with a row per sequence are
    selected by row; flat image tensors (Qwen2-VL's patches ``[patches, ...]``, InternVL's tiles
    ``[tiles, 3, H, W]``) are split in proportion to each row's count of ``image_token``, since a row's
    patches or tiles each give it the same number of image tokens."""
    batch, length = inputs["input_ids"].shape
    index = torch.tensor(rows, device=inputs["input_ids"].device)
    tokens = (inputs["input_ids"] == image_token).sum(dim=1).tolist() if image_token is not None else None
    part = {}
    for key, value in inputs.items():
        if not isinstance(value, torch.Tensor) or not value.dim():
            part[key] = value
        elif value.shape[0] == batch:   # a flat tensor this long has one patch/tile per row: the same split
            part[key] = value.index_select(0, index.to(value.device))
        else:
            part[key] = _flat_rows(key, value, tokens, rows)
    pad = length - int(part["attention_mask"][0].sum())
    per_token = [key for key, value in inputs.items() if isinstance(value, torch.Tensor)
                 and not value.is_floating_point() and tuple(value.shape) == (batch, length)]
    return {**part, **{key: part[key][:, pad:] for key in per_token}}


def _flat_rows(key: str, value: torch.Tensor, tokens: list[int] | None, rows: list[int]) -> torch.Tensor:
    """The slices of a flat image tensor that belong to ``rows`` (see :func:`without_padding`)."""
    total = sum(tokens or ())
    if not total or any((value.shape[0] * count) % total for count in tokens):
        held = "no image token id in the model config (image_token_id / image_token_index)" if tokens is None \
            else f"rows holding {tokens} image tokens"
        raise ValueError(f"without_padding: cannot split {key} {list(value.shape)} by row: {held}")
    starts = [0]
    for count in tokens:
        starts.append(starts[-1] + value.shape[0] * count // total)
    return torch.cat([value[starts[row]:starts[row + 1]] for row in rows])


def model_inputs(processor, images, prompts: list[str], device: str, dtype: torch.dtype | None):
    """The processor's batch for ``prompts``: each picture nested under its prompt (SmolVLM and Gemma 3
    refuse a flat list), no second BOS where the chat template already wrote one (Gemma 3's and
    Idefics3's templates start with it; the tokenizer would add another, as transformers' own
    ``apply_chat_template`` avoids), pixels in the model's dtype."""
    bos = processor.tokenizer.bos_token
    written = bool(bos) and all(prompt.startswith(bos) for prompt in prompts)
    inputs = processor(images=None if images is None else [[image] for image in images], text=prompts,
                       return_tensors="pt", padding=True, add_special_tokens=not written).to(device)
    if dtype is not None and "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    return inputs


def generate_batch(model, processor, images, prompts: list[str], kv_spec: KVQuantSpec, max_new_tokens: int,
                   device: str = "cpu", dtype: torch.dtype | None = None,
                   kv_layers: LayerSelection | None = None, kv_rest: KVQuantSpec | None = None,
                   clock: DecodeClock | None = None, evict: EvictSpec | None = None,
                   vtok: VTokSpec | None = None) -> list[Generated]:
    """Greedy answers for one left-padded batch, the KV spec applied through the quantized cache (told
    the padding, so no answer depends on its batch mates; a token-anchored spec, KV eviction and
    visual-token pruning run per prompt length, unpadded), each with the cache's stored and
    float-equivalent bytes. The images are all pictures or all None (text-only questions, e.g.
    HallusionBench's non_image split): the caller groups them. ``clock`` (the report's roofline and
    prefill cost) times the prefill and decode steps and records the prompt entries each layer kept."""
    if any(image is None for image in images) and not all(image is None for image in images):
        raise ValueError("generate_batch: a batch mixes questions with and without an image; group them")
    inputs = model_inputs(processor, None if images and images[0] is None else images, prompts, device, dtype)
    mask = inputs.get("attention_mask")
    seeds = [pruning_seed(prompt, image) for prompt, image in zip(prompts, images)]
    run = lambda part, rows: _generate(model, processor, part, kv_spec, max_new_tokens, kv_layers, kv_rest,  # noqa: E731
                                       clock, evict, vtok, [seeds[row] for row in rows])
    if mask is not None and (token_anchored(kv_spec, kv_rest) or evict is not None or vtok is not None):
        token = image_token_id(model.config)
        counts = (inputs["input_ids"] == token).sum(dim=1).tolist() if vtok is not None and token is not None else None
        groups = equal_length_rows(mask, counts)
        if len(groups) > 1 or not bool(mask.all()):
            answers: list[Generated | None] = [None] * mask.shape[0]
            for rows in groups:
                for row, generated in zip(rows, run(without_padding(inputs, rows, token), rows)):
                    answers[row] = generated
            return answers
    return run(inputs, range(len(prompts)))


def _dropping(model, inputs, cache: QuantizedKVCache, evict: EvictSpec | None, vtok: VTokSpec | None,
              seeds: list[int]):
    """The context a generate call with eviction and/or pruning runs in (prompts without an image
    token are not pruned)."""
    observers = ([cache.select], [cache.key_bias]) if evict is not None else ([], [])
    image_token = image_token_id(model.config)
    if vtok is not None and image_token is not None and bool((inputs["input_ids"] == image_token).any()):
        from quant.vtokens import pruning_visual_tokens

        return pruning_visual_tokens(model, vtok, inputs["input_ids"], image_token, *observers, seeds=seeds)
    return observing_attention(model, *observers) if evict is not None else nullcontext()


def _generate(model, processor, inputs, kv_spec: KVQuantSpec, max_new_tokens: int, kv_layers: LayerSelection | None,
              kv_rest: KVQuantSpec | None, clock: DecodeClock | None, evict: EvictSpec | None = None,
              vtok: VTokSpec | None = None, seeds: list[int] | None = None) -> list[Generated]:
    def greedy(cache, tokens: int, timer: DecodeClock | None):
        return model.generate(**inputs, max_new_tokens=tokens, do_sample=False, cache=cache,
                              pad_token_id=processor.tokenizer.pad_token_id,
                              logits_processor=None if timer is None else LogitsProcessorList([timer]))

    cache = QuantizedKVCache(kv_spec, model.config, kv_layers, kv_rest, eviction=evict)
    cache.set_padding(inputs.get("attention_mask"))   # padded positions enter no compression statistic
    reference = DecodeClock() if clock is not None and (evict is not None or vtok is not None) else None

    def undropped() -> None:   # the same batch without dropping: its prefill, timed beside the dropped one
        reference.begin()
        greedy(QuantizedKVCache(kv_spec, model.config, kv_layers, kv_rest), 1, reference)

    first = reference is not None and clock.batches % 2 == 1   # which goes first alternates by batch
    with torch.inference_mode():
        if first:
            undropped()
        if clock is not None:
            clock.begin()
        with _dropping(model, inputs, cache, evict, vtok, seeds or [0] * inputs["input_ids"].shape[0]):
            output = greedy(cache, max_new_tokens, clock)
        if reference is not None and not first:
            undropped()
    prompt = inputs["input_ids"].shape[1]
    if clock is not None:
        clock.end(cache.nbytes(), output.shape[0], [kept / prompt for kept in cache.kept_by_layer()],
                  reference=reference)
    cache.check_finite()   # NaN/inf recorded on the device during generation (CUDA): raised here, named
    texts = processor.batch_decode(output[:, prompt:], skip_special_tokens=True)
    # what a float cache holds for the same tokens: the whole prompt (before any eviction or pruning)
    # and every token decoded
    float_bytes = float_cache_bytes(model.config, output.shape[0], prompt + cache.decoded_tokens(), model.dtype)
    return [Generated(text.strip(), cache.nbytes(), float_bytes) for text in texts]
