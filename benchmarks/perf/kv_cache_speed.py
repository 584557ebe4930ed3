"""Decode-step time and cache bytes of our quantized KV cache vs DynamicCache and transformers'
QuantizedCache, measured side by side in one run on one random-init Llama.

    python benchmarks/perf/kv_cache_speed.py [--prompts 4096 16384] [--new 32] [--repeats 3] [--all-specs]

Decode time per token: the mean time between generate's per-token logits calls over ``--new``
steps (prefill excluded), best of ``--repeats`` rounds; each round measures every cache once, in
turn, so a slow spell of the machine hits all of them. Ours runs twice: with the model's SDPA (the cache dequantizes the
history at every step) and with ``enable_packed_attention`` (the attention reads the packed
history: quant/packed_math.py on CPU, the Triton kernels on CUDA). Ratios are to DynamicCache
and to QuantizedCache at the same bits. QuantizedCache rows need ``pip install optimum-quanto``
(``.[perf]``; skipped with a note otherwise).
"""

from __future__ import annotations

import argparse
import copy

import torch
from tabulate import tabulate
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM, LogitsProcessorList, QuantizedCache

from pytest_lvlmbench.engine.roofline import DecodeClock
from quant import KVQuantSpec, enable_packed_attention
from quant.kvcache import QuantizedKVCache

MAIN_SPECS = ["kv4-group-g64-r128", "kv2-group-g64-r128"]   # the QuantizedCache layout (g64, r128) at 4 and 2 bits
MORE_SPECS = ["kv4-uniform", "kv4-group-g32-r128", "kv4-outlier-s2", "kv2-outlier-s2-lr4"]


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


def timed_generate(model, prompt, make_cache, new_tokens: int) -> tuple[float, int]:
    """(seconds per decode step, cache bytes at the end) of one greedy generation: the steps are
    timed between generate's per-token logits calls (the suite's DecodeClock), so the prefill is
    not in them."""
    cache, clock = make_cache(), DecodeClock()
    clock.begin()
    model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                   min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, cache=cache,
                   logits_processor=LogitsProcessorList([clock]))
    clock.end(0)
    return clock.seconds / clock.steps, cache_bytes(cache)


def candidates(model, packed_model, specs: list[str]) -> dict[str, tuple]:
    """name -> (model, cache factory, name of the QuantizedCache row at the same bits, or None)."""
    config = model.config
    rows = {"DynamicCache (fp32)": (model, lambda: DynamicCache(config=config), None)}
    quanto = {bits: f"transformers QuantizedCache quanto {bits}-bit (g64, r128)" for bits in (4, 2)}
    try:
        import optimum.quanto  # noqa: F401

        for bits, name in quanto.items():
            rows[name] = (model, lambda b=bits: QuantizedCache("quanto", config, nbits=b), None)
    except ImportError:
        print("optimum-quanto is not installed: transformers' QuantizedCache rows skipped (pip install -e '.[perf]')")
    for spec_id in specs:
        spec = KVQuantSpec.from_id(spec_id)
        reference = quanto.get(spec.bits)
        rows[f"ours {spec_id}"] = (model, lambda s=spec: QuantizedKVCache(s, config), reference)
        rows[f"ours {spec_id}, packed attention"] = (
            packed_model, lambda s=spec: QuantizedKVCache(s, packed_model.config), reference)
    return rows


def measure_all(rows: dict[str, tuple], prompt, new_tokens: int, repeats: int) -> dict[str, tuple[float, int]]:
    """Best decode time per token and cache bytes of every row, the rows taken in turn each round."""
    for model, make_cache, _ in rows.values():
        timed_generate(model, prompt, make_cache, 2)  # warm-up
    best = {}
    for _ in range(repeats):
        for name, (model, make_cache, _) in rows.items():
            step, size = timed_generate(model, prompt, make_cache, new_tokens + 1)
            best[name] = min(best.get(name, (step, size)), (step, size))
    return best


def table(rows: dict[str, tuple], results: dict[str, tuple[float, int]]) -> str:
    base_step, base_size = results["DynamicCache (fp32)"]
    lines = []
    for name, (step, size) in results.items():
        reference = results.get(rows[name][2])
        lines.append([name, f"{step * 1e3:.2f}", f"{step / base_step:.2f}",
                      "" if reference is None else f"{step / reference[0]:.2f}",
                      f"{size / 2**20:.2f}", f"{size / base_size:.3f}"])
    return tabulate(lines, headers=["cache", "ms / decode step", "vs Dynamic", "vs QuantizedCache same bits",
                                    "cache MiB", "bytes vs Dynamic"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--new", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--all-specs", action="store_true", help=f"also {', '.join(MORE_SPECS)}")
    args = parser.parse_args()

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=1000, hidden_size=512, intermediate_size=1024, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=8,
                         max_position_embeddings=max(args.prompts) + args.new + 2)
    model = LlamaForCausalLM(config).eval()
    packed_model = copy.deepcopy(model)
    enable_packed_attention(packed_model)
    rows = candidates(model, packed_model, MAIN_SPECS + (MORE_SPECS if args.all_specs else []))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, random Llama (hidden 512, 4 layers, "
          f"fp32), {args.new} new tokens, best of {args.repeats} rounds")
    with torch.inference_mode():
        for length in args.prompts:
            prompt = torch.randint(1, 1000, (1, length), generator=torch.Generator().manual_seed(0))
            print(f"\nprompt {length} tokens")
            print(table(rows, measure_all(rows, prompt, args.new, args.repeats)))


if __name__ == "__main__":
    main()
