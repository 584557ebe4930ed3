"""Stored bytes of each KV spec over FP16 bytes, measured on a filled cache (CPU).

4 layers x 8 heads x head_dim 128, one sequence of 1,024 prompt tokens plus 32 decode steps,
random FP16-range activations: what ``QuantizedKVCache.nbytes()`` reports over what a float16
cache of the same tokens takes.

    python benchmarks/perf/kv_storage.py
"""

from __future__ import annotations

import torch
from tabulate import tabulate
from transformers import LlamaConfig

from quant import KVQuantSpec, QuantizedKVCache

SPECS = ("kv8-uniform", "kv4-uniform", "kv4-uniform-token", "kv4-uniform-headrow", "kv4-group-g32-r128",
         "kv4-outlier-s2", "kv2-uniform", "kv2-uniform-token", "kv2-group-g32-r128", "kv2-group-g8-r0",
         "kv2-outlier-s2", "kv2-outlier-s2-lr4", "kv2-outlier-s2-lrf0.02")
LAYERS, HEADS, HEAD_DIM, PROMPT, DECODE = 4, 8, 128, 1024, 32


def measure() -> list[list[str]]:
    config = LlamaConfig(hidden_size=HEADS * HEAD_DIM, num_attention_heads=HEADS, num_key_value_heads=HEADS,
                         num_hidden_layers=LAYERS)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for spec_id in SPECS:
        cache = QuantizedKVCache(KVQuantSpec.from_id(spec_id), config)
        for tokens in [PROMPT] + [1] * DECODE:
            for layer in range(LAYERS):
                k, v = (torch.randn(1, HEADS, tokens, HEAD_DIM, generator=generator).half() for _ in range(2))
                cache.update(k, v, layer)
        float_bytes = 2 * LAYERS * HEADS * (PROMPT + DECODE) * HEAD_DIM * 2
        rows.append([spec_id, f"{cache.nbytes() / float_bytes:.3f}"])
    return rows


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(tabulate(measure(), headers=["spec", "bytes vs FP16"], tablefmt="github"))
