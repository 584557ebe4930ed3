"""One batched greedy generation step shared by the plugin and the zoo scripts."""

from __future__ import annotations

import torch
from transformers import LogitsProcessorList

from quant import KVQuantSpec, QuantizedKVCache
from quant.layers import LayerSelection

from .gencache import Generated
from .roofline import DecodeClock


def float_cache_bytes(config, batch: int, tokens: int, dtype: torch.dtype) -> int:
    """Bytes a float cache in ``dtype`` takes for ``tokens`` positions of ``batch`` sequences."""
    text = config.get_text_config(decoder=True)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    return 2 * text.num_hidden_layers * batch * tokens * kv_heads * head_dim * dtype.itemsize


def generate_batch(model, processor, images, prompts: list[str], kv_spec: KVQuantSpec, max_new_tokens: int,
                   device: str = "cpu", dtype: torch.dtype | None = None,
                   kv_layers: LayerSelection | None = None, kv_rest: KVQuantSpec | None = None,
                   clock: DecodeClock | None = None) -> list[Generated]:
    """Greedy answers for one left-padded batch, the KV spec applied through the quantized cache,
    each with the cache's stored and float-equivalent bytes. The images are all pictures or all
    None (text-only questions, e.g. HallusionBench's non_image split): the caller groups them.
    ``clock`` (the report's roofline) times the decode steps and the KV bytes they read."""
    if any(image is None for image in images) and not all(image is None for image in images):
        raise ValueError("generate_batch: a batch mixes questions with and without an image; group them")
    pictures = None if images and images[0] is None else images
    inputs = processor(images=pictures, text=prompts, return_tensors="pt", padding=True).to(device)
    if dtype is not None and "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    cache = QuantizedKVCache(kv_spec, model.config, kv_layers, kv_rest)
    if clock is not None:
        clock.begin()
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, cache=cache,
                                pad_token_id=processor.tokenizer.pad_token_id,
                                logits_processor=None if clock is None else LogitsProcessorList([clock]))
    if clock is not None:
        clock.end(cache.nbytes())
    texts = processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    float_bytes = float_cache_bytes(model.config, output.shape[0], cache.get_seq_length(), model.dtype)
    return [Generated(text.strip(), cache.nbytes(), float_bytes) for text in texts]
