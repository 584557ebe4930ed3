"""One batched greedy generation step shared by the plugin and the zoo scripts."""

from __future__ import annotations

import torch

from quant import KVQuantSpec, QuantizedKVCache


def generate_batch(model, processor, images, prompts: list[str], kv_spec: KVQuantSpec, max_new_tokens: int,
                   device: str = "cpu", dtype: torch.dtype | None = None) -> tuple[list[str], int]:
    """Greedy answers for one left-padded batch, the KV spec applied through the quantized cache;
    also returns the cache's stored bytes."""
    inputs = processor(images=images, text=prompts, return_tensors="pt", padding=True).to(device)
    if dtype is not None and "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    cache = QuantizedKVCache(kv_spec, model.config)
    with torch.inference_mode():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, cache=cache,
                                pad_token_id=processor.tokenizer.pad_token_id)
    texts = processor.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    return [text.strip() for text in texts], cache.nbytes()
