"""Decode-step time and cache bytes of our quantized KV cache vs DynamicCache and transformers'
QuantizedCache, measured side by side on one random-init Llama and one prompt.

    python benchmarks/perf/kv_cache_speed.py [--prompt 1024] [--new 64] [--repeats 3]

Decode time per token = (time of generate(new + 1 tokens) - time of generate(1 token)) / new,
best of ``--repeats`` runs after a warm-up. Ratios are to DynamicCache. transformers'
QuantizedCache rows need ``pip install optimum-quanto`` (skipped with a note otherwise).
"""

from __future__ import annotations

import argparse
import time

import torch
from tabulate import tabulate
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM, QuantizedCache

from quant import KVQuantSpec
from quant.kvcache import QuantizedKVCache

OUR_SPECS = ["kv4-uniform", "kv4-group-g32-r128", "kv4-group-g64-r128", "kv4-outlier-s2", "kv2-uniform",
             "kv2-group-g32-r128", "kv2-group-g64-r128",
             "kv2-outlier-s2", "kv2-outlier-s2-lr4"]


def tensor_bytes(obj) -> int:
    """Bytes of a tensor, walking tensor subclasses (quanto's QTensor) through their inner tensors."""
    if hasattr(obj, "__tensor_flatten__"):
        names, _ = obj.__tensor_flatten__()
        return sum(tensor_bytes(getattr(obj, name)) for name in names)
    return obj.numel() * obj.element_size()


def cache_bytes(cache) -> int:
    if isinstance(cache, QuantizedKVCache):
        return cache.nbytes()
    total = 0
    for layer in cache.layers:
        for name in ("keys", "values", "_quantized_keys", "_quantized_values"):
            tensor = getattr(layer, name, None)
            if tensor is not None:
                total += tensor_bytes(tensor)
    return total


def timed_generate(model, prompt, make_cache, new_tokens: int) -> tuple[float, object]:
    cache = make_cache()
    start = time.perf_counter()
    model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                   min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, cache=cache)
    return time.perf_counter() - start, cache


def measure(model, prompt, make_cache, new_tokens: int, repeats: int) -> tuple[float, int]:
    timed_generate(model, prompt, make_cache, 2)  # warm-up
    full = min(timed_generate(model, prompt, make_cache, new_tokens + 1)[0] for _ in range(repeats))
    prefill = min(timed_generate(model, prompt, make_cache, 1)[0] for _ in range(repeats))
    _, cache = timed_generate(model, prompt, make_cache, new_tokens + 1)
    return (full - prefill) / new_tokens, cache_bytes(cache)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", type=int, default=1024)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=1000, hidden_size=512, intermediate_size=1024, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=4096)
    model = LlamaForCausalLM(config).eval()
    prompt = torch.randint(1, 1000, (1, args.prompt), generator=torch.Generator().manual_seed(0))

    candidates = {"DynamicCache (fp32)": lambda: DynamicCache(config=config)}
    for spec_id in OUR_SPECS:
        candidates[f"ours {spec_id}"] = lambda s=KVQuantSpec.from_id(spec_id): QuantizedKVCache(s, config)
    try:
        import optimum.quanto  # noqa: F401

        for bits in (4, 2):
            candidates[f"transformers QuantizedCache quanto {bits}-bit (g64 r128)"] = (
                lambda b=bits: QuantizedCache("quanto", config, nbits=b))
    except ImportError:
        print("optimum-quanto is not installed: transformers' QuantizedCache rows skipped")

    rows, base = [], None
    with torch.inference_mode():
        for name, make_cache in candidates.items():
            step, size = measure(model, prompt, make_cache, args.new, args.repeats)
            base = base or (step, size)
            rows.append([name, f"{step * 1e3:.2f}", f"{step / base[0]:.2f}", f"{size / 2**20:.2f}",
                         f"{size / base[1]:.3f}"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, prompt {args.prompt} tokens, "
          f"{args.new} new tokens, best of {args.repeats}")
    print(tabulate(rows, headers=["cache", "ms / decode step", "time vs Dynamic", "cache MiB", "bytes vs Dynamic"]))


if __name__ == "__main__":
    main()
