"""GPU speed of quant/'s Triton kernels, each measured side by side with its baseline in one run.

    python benchmarks/perf/kernels_gpu.py                        # one GPU, about 6 minutes
    python benchmarks/perf/kernels_gpu.py --device cpu --small   # smoke test of the script (torch path only)

Three tables, with the GPU name and the torch/triton versions in the header:

1. KV pack bandwidth: ``quantize_pack`` and ``unpack_dequantize`` (quant/kernels/kv_pack.py) on a
   ``[8, 32, 4096, 128]`` fp16 tensor, for kv4 and kv2 with KIVI's layouts (keys: per channel, groups of
   32 tokens, block ``(1, 1, 32, 1)``; values: per token, groups of 32 channels, ``(1, 1, 1, 32)``) and
   per-token uniform ``(1, H, 1, D)``. Parameters are chosen beforehand (not timed). GB/s = (bytes read
   + bytes written) / time, against a device-to-device copy moving the same bytes; the torch path
   (``pack(quantize(...))``, ``dequantize(unpack(...))``) for contrast. Goal: >= 70% of copy bandwidth.
2. W4 GEMV: ``packed_linear`` (quant/kernels/weight_matmul.py) of a ``w4-group-g128`` QuantizedLinear on
   LLaMA-7B shapes (out x in: 4096x4096, 11008x4096, 4096x11008) at batch 1, 16 and a prefill of 512
   rows, against fp16 ``torch.matmul`` with the float weight, and the torch path (dequantize + matmul).
   Kernel times are GPU time (CUDA events, L2 flushed before every call). Goal: >= 2.5x fp16 at batch 1.
   Roofline: GB/s of the bytes each call must read and write (the weight as stored -- fp16, or packed
   codes + scales + zeros -- plus input and output), with their share of the run's copy bandwidth
   (table 3's); a share above 100% is flagged.
3. Decode tokens/s of a random-init LlamaForCausalLM with 7B shapes (hidden 4096, 32 heads,
   intermediate 11008, vocab 32000) but ``--layers`` decoder layers, fp16, at contexts 4096 and 16384:
   fp16 DynamicCache vs ours (``kv4-group-g32-r128``, ``kv2-group-g32-r128`` with
   ``enable_packed_attention``) vs transformers' QuantizedCache (quanto backend, 4 and 2 bits; needs
   ``pip install optimum-quanto``). For every cache the batch doubles from 1 until CUDA runs out of
   memory (cap ``--max-batch``); each point prefills the prompt once at batch 1, replicates the cache
   along the batch (``Cache.batch_repeat_interleave``; quanto's quantized states are re-quantized from
   the replicated dequantized ones), so prefill activations do not decide the largest batch and the
   sweep stays short, then times ``--steps`` decode steps after one warm-up step: tokens/s = batch x
   steps / time. "At the same memory budget": every cache gets the same GPU (``--budget-gib`` caps it),
   so the ratio is tokens/s at each cache's largest batch over the fp16 cache's at its largest batch.
   Goals: 4-bit cache >= 2.5x the fp16 cache's throughput at the same memory budget, and ahead of
   QuantizedCache (same bits) at every point measured.
   Each point's roofline line: bytes a decode step reads (the model's weights as stored, without the
   input embedding table, plus the whole KV cache as stored: ``pytest_lvlmbench.engine.roofline``),
   achieved GB/s = those bytes / step time, and its share of the device's copy bandwidth measured once
   in this run (a large ``copy_``). A share above 1 is faster than the bytes allow and is flagged
   (undercounted bytes, a timing error, or on CPU small tensors served from cache).

With only ``--layers`` layers the weights are small next to the cache, so at context 4096 the fp16
cache may already reach ``--max-batch``: then every cache runs at the cap and the budget ratio is a
plain equal-batch ratio. ``--budget-gib`` (e.g. the memory a full 32-layer 7B leaves for its cache,
scaled by layers / 32) or a larger ``--max-batch`` makes the memory budget bind.

On CPU (``--device cpu``, automatic without CUDA, which also implies ``--small``: shapes /16, context
512, batches 1 and 4) the Triton kernels would need TRITON_INTERPRET=1 and be far too slow, so only the
torch path is measured: CPU mode checks the script's logic, not the goals. With TRITON_INTERPRET=1 set
the Triton columns run in the interpreter (tiny shapes only).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tabulate import tabulate
from torch import nn
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM, QuantizedCache

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kv_cache_speed import cache_bytes  # noqa: E402

from pytest_lvlmbench.engine.roofline import FLAG_SHARE, copy_bandwidth, decode_weight_bytes  # noqa: E402

from quant import KVQuantSpec, QuantizedKVCache, QuantizedLinear, WeightQuantSpec  # noqa: E402
from quant.affine import QParams, choose_qparams, dequantize, quantize  # noqa: E402
from quant.kernels import interpreting, kernel_path  # noqa: E402
from quant.packed_attention import enable_packed_attention, hand_off  # noqa: E402
from quant.packing import pack, unpack  # noqa: E402

GOAL_COPY = 0.70
GOAL_GEMV = 2.5
GOAL_DECODE = 2.5
GIB = 2 ** 30
OUR_KV_SPECS = ("kv4-group-g32-r128", "kv2-group-g32-r128")
WEIGHT_SPEC = "w4-group-g128"
FLUSH_BYTES = 512 * 2 ** 20  # zeroed before every kernel timing: evicts L2 and covers the launch's CPU time


# ---------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn, device: torch.device, iters: int, flush: torch.Tensor | None = None) -> float:
    """Median seconds of one ``fn()`` after one warm-up call (Triton compiles there): CUDA events
    around each call on GPU (after zeroing ``flush``), ``time.perf_counter`` on CPU."""
    fn()
    sync(device)
    times = []
    for _ in range(iters):
        if flush is not None:
            flush.zero_()
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


class Span:
    """Wall time of a stretch of queued GPU work (CUDA events) or CPU work (perf_counter)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> Span:
        sync(self.device)
        if self.device.type == "cuda":
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            return
        if self.device.type == "cuda":
            self.end.record()
            self.end.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1e3
        else:
            self.seconds = time.perf_counter() - self.t0


def is_oom(error: BaseException) -> bool:
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or "CUBLAS_STATUS_ALLOC_FAILED" in text)


def free_memory(device: torch.device) -> None:
    hand_off(None)  # a decode step that died between the cache's hand-off and the attention keeps none alive
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def verdict(key: str, goal: str, value: float | None, target: float, measured: bool, note: str = "") -> dict:
    """A goal's verdict: ``status`` met/missed, or ``not measured`` where the value is missing or not
    the goal's measurement (CPU runs time the torch path); ``line`` as printed (``goal: met (x.xx)``);
    ``key`` names it in ``--json`` (benchmarks/perf/gpu_check.py reads it there)."""
    if value is None:
        status, line = "not measured", f"{goal}: not measured{note}"
    elif not measured:
        status, line = "not measured", f"{goal}: not measured{note} ({value:.2f})"
    else:
        status = "met" if value >= target else "missed"
        line = f"{goal}: {status} ({value:.2f}){note}"
    return {"key": key, "goal": goal, "status": status, "value": value, "target": target, "note": note.strip(),
            "line": line}


# ---------------------------------------------------------------- 1. KV pack bandwidth


def kv_layouts(heads: int, dim: int) -> list[tuple[str, tuple[int, int, int, int]]]:
    return [("KIVI keys (1,1,32,1)", (1, 1, 32, 1)), ("KIVI values (1,1,1,32)", (1, 1, 1, 32)),
            (f"per-token (1,{heads},1,{dim})", (1, heads, 1, dim))]


def torch_quantize_pack(x: torch.Tensor, qparams: QParams):
    return pack(quantize(x, qparams, check_finite=False), qparams.bits, check_range=False)


def torch_unpack_dequantize(codes, qparams: QParams, dtype: torch.dtype) -> torch.Tensor:
    return dequantize(unpack(codes), qparams, dtype)


def copy_time(nbytes: int, device: torch.device, iters: int, flush) -> float:
    """Seconds of ``torch.empty_like(src).copy_(src)`` moving ``nbytes`` (read + write) in all."""
    src = torch.empty(max(nbytes // 2, 1), dtype=torch.uint8, device=device)
    seconds = time_call(lambda: torch.empty_like(src).copy_(src), device, iters, flush)
    del src
    return seconds


def bench_kv_pack(args, device: torch.device, kernels: bool, flush) -> tuple[list, list[float]]:
    if kernels:
        from quant.kernels.kv_pack import quantize_pack, unpack_dequantize  # imports triton
    batch, heads, tokens, dim = args.kv_shape
    x = torch.randn(batch, heads, tokens, dim, device=device, dtype=torch.float16)
    rows, ratios = [], []
    for bits in (4, 2):
        for layout, block in kv_layouts(heads, dim):
            qp = choose_qparams(x, bits, block, param_dtype=torch.float16)
            ref_codes = torch_quantize_pack(x, qp)
            packed_bytes, param_bytes, x_bytes = ref_codes.nbytes, qp.nbytes, x.numel() * x.element_size()
            directions = {
                "quantize+pack": (x_bytes + param_bytes + packed_bytes,
                                  lambda: torch_quantize_pack(x, qp),
                                  (lambda: quantize_pack(x, qp, check_finite=False)) if kernels else None),
                "unpack+dequantize": (packed_bytes + param_bytes + x_bytes,
                                      lambda: torch_unpack_dequantize(ref_codes, qp, torch.float16),
                                      (lambda: unpack_dequantize(ref_codes, qp, torch.float16)) if kernels else None),
            }
            for direction, (moved, torch_fn, kernel_fn) in directions.items():
                t_copy = copy_time(moved, device, args.iters, flush)
                t_torch = time_call(torch_fn, device, args.iters, flush)
                row = [f"kv{bits}", layout, direction, f"{moved / 2**20:.3g}", f"{moved / t_copy / 1e9:.3g}",
                       f"{moved / t_torch / 1e9:.3g}", f"{t_copy / t_torch:.2f}"]
                if kernel_fn is not None:
                    t_kernel = time_call(kernel_fn, device, args.iters, flush)
                    out = kernel_fn()
                    if direction == "quantize+pack":
                        same = torch.equal(out.data, ref_codes.data)
                    else:
                        same = torch.equal(out, torch_fn())
                    del out
                    ratios.append(t_copy / t_kernel)
                    row += [f"{moved / t_kernel / 1e9:.3g}", f"{t_copy / t_kernel:.2f}", "yes" if same else "NO"]
                else:
                    ratios.append(None)
                    row += ["n/a", "n/a", "n/a"]
                rows.append(row)
            del ref_codes, qp
    del x
    free_memory(device)
    return rows, ratios


# ---------------------------------------------------------------- 2. W4 GEMV


def roofline_cell(nbytes: int, seconds: float, copy_gbps: float) -> tuple[str, bool]:
    """``GB/s (share of copy)``, and whether the share is above what the bytes allow."""
    achieved = nbytes / seconds / 1e9
    share = achieved / copy_gbps
    return f"{achieved:.1f} ({share:.0%}){' FLAG' if share > FLAG_SHARE else ''}", share > FLAG_SHARE


def bench_gemv(args, device: torch.device, kernels: bool, flush, copy_gbps: float) -> tuple[list, list[float], int]:
    """Rows, the batch-1 speedups of packed_linear over fp16, and how many timings beat their bytes."""
    if kernels:
        from quant.kernels.weight_matmul import packed_linear  # imports triton
    spec = WeightQuantSpec.from_id(WEIGHT_SPEC)
    group = spec.group_size
    rows, batch1, flagged = [], [], 0
    for out_features, in_features in args.gemv_shapes:
        torch.manual_seed(0)
        linear = nn.Linear(in_features, out_features, bias=False, device=device, dtype=torch.float16)
        ql = QuantizedLinear.from_linear(linear, spec)
        weight = linear.weight.detach()
        packed_bytes = sum(b.numel() * b.element_size() for b in ql.buffers())
        for m in (1, 16, args.prefill_rows):
            x = torch.randn(m, in_features, device=device, dtype=torch.float16)
            activations = 2 * m * (in_features + out_features)   # fp16 input read + output written
            t_fp16 = time_call(lambda: torch.matmul(x, weight.t()), device, args.iters, flush)
            # QuantizedLinear.forward's torch path (LVLMBENCH_KERNELS=torch)
            t_torch = time_call(lambda: F.linear(x, ql.stored_weight(x.dtype)), device, args.iters, flush)
            fp16_line, fp16_flag = roofline_cell(weight.numel() * 2 + activations, t_fp16, copy_gbps)
            flagged += fp16_flag
            row = [f"{out_features}x{in_features}", m, f"{t_fp16 * 1e6:.1f}", fp16_line, f"{t_torch * 1e6:.1f}",
                   f"{t_fp16 / t_torch:.2f}"]
            if kernels:
                def fused():
                    return packed_linear(x, ql.codes, ql.scale, ql.zero, spec.bits, group, in_features, ql.bias)

                t_kernel = time_call(fused, device, args.iters, flush)
                reference = F.linear(x, ql.stored_weight(x.dtype)).float()
                err = (fused().float() - reference).abs().max().item() / max(reference.abs().max().item(), 1e-6)
                kernel_line, kernel_flag = roofline_cell(packed_bytes + activations, t_kernel, copy_gbps)
                flagged += kernel_flag
                row += [f"{t_kernel * 1e6:.1f}", kernel_line, f"{t_fp16 / t_kernel:.2f}", f"{err:.1e}"]
                if m == 1:
                    batch1.append(t_fp16 / t_kernel)
            else:
                row += ["n/a", "n/a", "n/a", "n/a"]
                if m == 1:
                    batch1.append(None)
            rows.append(row)
            del x
        del linear, ql, weight
        free_memory(device)
    return rows, batch1, flagged


# ---------------------------------------------------------------- 3. decode tokens/s


@dataclass
class Point:
    batch: int
    tokens_per_s: float
    step_ms: float
    peak_gib: float | None
    cache_gib: float
    bytes_per_step: int   # weights as stored (no embedding table) + the whole cache: the roofline's traffic

    def achieved_gbps(self) -> float:
        return self.bytes_per_step / (self.step_ms / 1e3) / 1e9


def replicate(cache, batch: int) -> None:
    """Grow a batch-1 cache to ``batch`` identical sequences (timing does not depend on the values)."""
    if batch == 1:
        return
    quantized = [layer for layer in cache.layers if getattr(layer, "_quantized_keys", None) is not None]
    if not quantized:  # DynamicCache, QuantizedKVCache
        cache.batch_repeat_interleave(batch)
        return
    for layer in quantized:  # transformers' QuantizedLayer: batch_repeat_interleave skips the quantized states
        keys = layer._dequantize(layer._quantized_keys).repeat_interleave(batch, dim=0)
        layer._quantized_keys = layer._quantize(keys.contiguous(), axis=layer.axis_key)
        del keys
        values = layer._dequantize(layer._quantized_values).repeat_interleave(batch, dim=0)
        layer._quantized_values = layer._quantize(values.contiguous(), axis=layer.axis_value)
        del values
        if layer.keys is not None and layer.keys.numel():
            layer.keys = layer.keys.repeat_interleave(batch, dim=0)
            layer.values = layer.values.repeat_interleave(batch, dim=0)


def decode_point(model, make_cache, prompt: torch.Tensor, batch: int, steps: int, device: torch.device) -> Point:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    cache = make_cache()
    model(input_ids=prompt, cache=cache, use_cache=True, logits_to_keep=1)
    replicate(cache, batch)
    token = torch.full((batch, 1), 7, dtype=torch.long, device=device)
    model(input_ids=token, cache=cache, use_cache=True, logits_to_keep=1)  # warm-up step
    with Span(device) as span:
        for _ in range(steps):
            model(input_ids=token, cache=cache, use_cache=True, logits_to_keep=1)
    peak = torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else None
    size = cache_bytes(cache)
    return Point(batch, batch * steps / span.seconds, span.seconds / steps * 1e3, peak, size / GIB,
                 decode_weight_bytes(model) + size)


def sweep(model, make_cache, prompt, batches: list[int], steps: int, device: torch.device
          ) -> tuple[list[Point], str]:
    """Points at doubling batches until out of memory; the note says where the sweep stopped."""
    points, note = [], f"cap {batches[-1]}"
    for batch in batches:
        failed = None
        try:
            points.append(decode_point(model, make_cache, prompt, batch, steps, device))
        except Exception as error:  # noqa: BLE001 - only OOM is expected; anything else is re-raised below
            if not is_oom(error):
                raise
            failed = f"OOM at batch {batch}"
        free_memory(device)  # outside the except block: its traceback no longer holds the tensors
        if failed:
            note = failed
            break
    return points, note


def decode_candidates(config, model, device: torch.device, kernels: bool) -> tuple[dict, str | None]:
    """name -> (prepare model, make cache); and why the QuantizedCache rows are missing (or None)."""
    def sdpa() -> None:
        model.set_attn_implementation("sdpa")

    def packed() -> None:
        if kernels:
            enable_packed_attention(model)
        else:
            sdpa()

    candidates = {"DynamicCache fp16": (sdpa, lambda: DynamicCache(config=model.config))}
    for spec_id in OUR_KV_SPECS:
        spec = KVQuantSpec.from_id(spec_id)
        candidates[f"ours {spec_id}"] = (packed, lambda s=spec: QuantizedKVCache(s, model.config))
    missing = None
    if importlib.util.find_spec("optimum") is None or importlib.util.find_spec("optimum.quanto") is None:
        missing = "not installed (pip install optimum-quanto)"
    else:
        try:
            import optimum.quanto  # noqa: F401
        except Exception as error:  # noqa: BLE001 - a broken install is reported, not fatal
            missing = f"does not import ({type(error).__name__}: {error})"
    if missing is None:
        for bits in (4, 2):
            candidates[f"QuantizedCache quanto {bits}-bit"] = (
                sdpa, lambda b=bits: QuantizedCache("quanto", model.config, nbits=b))
    return candidates, missing


def bench_decode(args, device: torch.device, kernels: bool, copy_gbps: float) -> tuple[list, tuple, int]:
    """The sweep's rows (with each point's roofline line against ``copy_gbps``), the summary
    (:func:`summarize`) and how many points ran faster than the bytes allow."""
    if args.small:
        shape = dict(hidden_size=256, intermediate_size=688, num_attention_heads=4, num_key_value_heads=4)
    else:
        shape = dict(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32)
    config = LlamaConfig(vocab_size=32000, num_hidden_layers=args.layers,
                         max_position_embeddings=max(args.contexts) + args.steps + 16, **shape)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.float16).eval()
    candidates, missing = decode_candidates(config, model, device, kernels)
    batches = [1, 4] if device.type == "cpu" else [2 ** i for i in range(args.max_batch.bit_length())
                                                   if 2 ** i <= args.max_batch]
    detail, results, flagged = [], {}, 0
    for context in args.contexts:
        prompt = torch.randint(1, config.vocab_size, (1, context), generator=torch.Generator().manual_seed(0))
        prompt = prompt.to(device)
        for name, (prepare, make_cache) in candidates.items():
            prepare()
            points, note = sweep(model, make_cache, prompt, batches, args.steps, device)
            results[context, name] = (points, note)
            for p in points:
                share = p.achieved_gbps() / copy_gbps
                flagged += share > FLAG_SHARE
                detail.append([context, name, p.batch, f"{p.step_ms:.2f}", f"{p.tokens_per_s:.0f}",
                               "n/a" if p.peak_gib is None else f"{p.peak_gib:.2f}", f"{p.cache_gib * 1024:.1f}",
                               f"{p.bytes_per_step / 1e6:.1f}", f"{p.achieved_gbps():.1f}",
                               f"{share:.0%}" + (" FLAG" if share > FLAG_SHARE else "")])
            if not points:
                detail.append([context, name, "-", note, "", "", "", "", "", ""])
            print(f"  ctx {context} {name}: largest batch {points[-1].batch if points else 0} ({note})",
                  file=sys.stderr, flush=True)
        del prompt
    model.set_attn_implementation("sdpa")
    del model
    free_memory(device)
    return detail, summarize(results, args.contexts, list(candidates), missing), flagged


def summarize(results: dict, contexts: list[int], names: list[str], missing: str | None) -> tuple:
    """Summary rows, the worst 4-bit budget ratio, the worst ours/QuantizedCache ratio, why QuantizedCache is missing."""
    rows, budget_ratios, quanto_ratios = [], [], []
    for context in contexts:
        base_points, _ = results[context, "DynamicCache fp16"]
        base = base_points[-1] if base_points else None
        for name in names:
            points, note = results[context, name]
            top = points[-1] if points else None
            at_budget = top.tokens_per_s / base.tokens_per_s if top and base else None
            same_batch = next((p for p in points if base and p.batch == base.batch), None)
            equal = same_batch.tokens_per_s / base.tokens_per_s if same_batch and base else None
            vs_quanto = "n/a"
            if name.startswith("ours kv"):
                bits = int(name.split("kv")[1][0])
                if bits == 4 and at_budget is not None:
                    budget_ratios.append(at_budget)
                peer = results.get((context, f"QuantizedCache quanto {bits}-bit"))
                if peer is None:
                    vs_quanto = "not installed" if missing else "n/a"
                elif top and peer[0]:
                    theirs = {p.batch: p.tokens_per_s for p in peer[0]}
                    ours = {p.batch: p.tokens_per_s for p in points}
                    every = [ours[b] / theirs[b] for b in ours if b in theirs] + [top.tokens_per_s / peer[0][-1].tokens_per_s]
                    quanto_ratios += every
                    vs_quanto = f"{every[-1]:.2f} (min {min(every):.2f})"
            rows.append([context, name, top.batch if top else 0, note, f"{top.tokens_per_s:.0f}" if top else "-",
                         "-" if at_budget is None else f"{at_budget:.2f}", "-" if equal is None else f"{equal:.2f}",
                         vs_quanto])
    return (rows, min(budget_ratios) if budget_ratios else None, min(quanto_ratios) if quanto_ratios else None,
            missing)


# ---------------------------------------------------------------- main


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.replace("x", ",").split(",") if v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    parser.add_argument("--small", action="store_true", help="small shapes (implied on CPU)")
    parser.add_argument("--tables", default="1,2,3", help="which tables to run, e.g. 1,2")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers of the table-3 model")
    parser.add_argument("--contexts", default=None, help="table-3 contexts (default 4096,16384; small 512)")
    parser.add_argument("--steps", type=int, default=None, help="timed decode steps per point (default 32, CPU 8)")
    parser.add_argument("--max-batch", type=int, default=256, help="table-3 batch cap")
    parser.add_argument("--budget-gib", type=float, default=None,
                        help="cap this process's GPU memory (torch.cuda.set_per_process_memory_fraction)")
    parser.add_argument("--json", default=None, help="also write the verdicts here (read by gpu_check.py)")
    parser.add_argument("--iters", type=int, default=None, help="timed calls per kernel (default 20, CPU 3)")
    parser.add_argument("--kv-shape", default=None, help="table-1 B,H,T,D (default 8,32,4096,128; small 1,4,256,64)")
    parser.add_argument("--gemv-shapes", default=None,
                        help="table-2 out x in list (default 4096x4096,11008x4096,4096x11008; small 256x256,...)")
    args = parser.parse_args()

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no CUDA device")
    if device.type not in ("cuda", "cpu"):
        parser.error(f"--device {device}: cuda or cpu")
    if device.type == "cpu":
        args.small = True
    kernels = device.type == "cuda" or interpreting()
    args.iters = args.iters or (20 if device.type == "cuda" else 3)
    args.steps = args.steps or (32 if device.type == "cuda" else 8)
    args.kv_shape = parse_ints(args.kv_shape or ("1,4,256,64" if args.small else "8,32,4096,128"))
    gemv = args.gemv_shapes or ("256x256,768x256,256x768" if args.small else "4096x4096,11008x4096,4096x11008")
    args.gemv_shapes = [tuple(int(v) for v in s.split("x")) for s in gemv.split(",")]
    args.prefill_rows = 64 if args.small else 512
    args.contexts = parse_ints(args.contexts or ("512" if args.small else "4096,16384"))
    tables = set(parse_ints(args.tables))

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        total = torch.cuda.get_device_properties(device).total_memory
        if args.budget_gib:
            torch.cuda.set_per_process_memory_fraction(min(1.0, args.budget_gib * GIB / total), device)
        memory = f"{total / GIB:.0f} GiB" + (f", budget {args.budget_gib:g} GiB" if args.budget_gib else "")
    else:
        name, memory = "CPU", f"{torch.get_num_threads()} threads"
    triton_version = "not installed"
    if importlib.util.find_spec("triton") is not None:
        import triton

        triton_version = triton.__version__
    print(f"{name} ({memory}) | torch {torch.__version__} | triton {triton_version} | "
          f"LVLMBENCH_KERNELS={os.environ.get('LVLMBENCH_KERNELS', 'auto')}, model path: {kernel_path(device)}"
          f"{' | small shapes' if args.small else ''}")
    if not kernels:
        print("CPU run: torch path only (the Triton kernels need CUDA, or TRITON_INTERPRET=1 and far more time); "
              "a smoke test of this script, not a measurement of the goals")
    flush = torch.empty(FLUSH_BYTES, dtype=torch.uint8, device=device) if device.type == "cuda" else None
    verdicts = []
    flagged = 0   # roofline: timings faster than their bytes allow (tables 2 and 3)
    copy_gbps = copy_bandwidth(str(device))   # once per run: tables 2 and 3 hold their GB/s against it
    cpu_note = "" if kernels else " on CPU (torch path worst)"

    with torch.inference_mode():
        if 1 in tables:
            rows, ratios = bench_kv_pack(args, device, kernels, flush)
            print(f"\n1. KV pack bandwidth, fp16 x of shape {list(args.kv_shape)}, GB/s = (read + written) / time, "
                  f"median of {args.iters}")
            print(tabulate(rows, headers=["bits", "layout", "op", "MiB moved", "copy GB/s", "torch GB/s",
                                          "torch / copy", "Triton GB/s", "Triton / copy", "= torch"]))
            value = min(ratios) if kernels else min(float(r[6]) for r in rows)
            verdicts.append(verdict("kv_pack", f"goal >={GOAL_COPY:.0%} of copy (worst row)", value, GOAL_COPY, kernels,
                                    cpu_note))
        if 2 in tables:
            rows, batch1, flagged_gemv = bench_gemv(args, device, kernels, flush, copy_gbps)
            print(f"\n2. {WEIGHT_SPEC} linear, fp16 x [M, in], µs per call (median of {args.iters}"
                  f"{', L2 flushed before each' if flush is not None else ''}); GB/s of the bytes read + written "
                  f"(share of {copy_gbps:.1f} GB/s copy)")
            print(tabulate(rows, headers=["out x in", "M", "fp16 matmul µs", "fp16 GB/s", "torch dequant+matmul µs",
                                          "fp16 / torch", "packed_linear µs", "packed GB/s", "speedup vs fp16",
                                          "rel. err"]))
            value = min(batch1) if kernels else min(float(r[5]) for r in rows if r[1] == 1)
            flagged += flagged_gemv
            verdicts.append(verdict("gemv", f"goal W4 GEMV >={GOAL_GEMV}x fp16 at batch 1 (worst shape)", value, GOAL_GEMV,
                                    kernels, cpu_note))
        if flush is not None:
            del flush
            free_memory(device)
        if 3 in tables:
            print(f"\n3. decode tokens/s, random Llama {'small' if args.small else '7B'} shapes, "
                  f"{args.layers} layers, fp16, {args.steps} steps after 1 warm-up (sweep progress on stderr); "
                  f"roofline: MB read per step (weights + KV as stored), GB/s, share of this run's copy "
                  f"bandwidth {copy_gbps:.1f} GB/s", flush=True)
            detail, (summary, budget, vs_quanto, missing), flagged_decode = bench_decode(args, device, kernels,
                                                                                         copy_gbps)
            flagged += flagged_decode
            print(tabulate(detail, headers=["ctx", "cache", "batch", "ms / step", "tokens/s", "peak GiB",
                                            "cache MiB", "MB / step", "GB/s", "of copy"]))
            print()
            print(tabulate(summary, headers=["ctx", "cache", "max batch", "sweep stopped", "tokens/s at max",
                                             "vs fp16 same budget", "vs fp16 same batch",
                                             "vs QuantizedCache same bits (min over points)"]))
            cpu_note = "" if kernels else " on CPU (torch path)"
            verdicts.append(verdict("decode_budget", f"goal 4-bit cache >={GOAL_DECODE}x fp16 cache tokens/s at the same memory "
                                    "budget (worst context)", budget, GOAL_DECODE, kernels, cpu_note))
            verdicts.append(verdict("decode_vs_quantized_cache", "goal ours ahead of QuantizedCache at every point (worst ours/theirs)", vs_quanto,
                                    1.0 + 1e-9, kernels,
                                    f" (QuantizedCache {missing})" if missing else cpu_note))
        if tables & {2, 3}:
            line = (f"roofline: {flagged} timing(s) in tables 2-3 faster than their bytes allow at "
                    f"{copy_gbps:.1f} GB/s copy" + (" (FLAG in their rows)" if flagged else ""))
            verdicts.append({"key": "roofline", "goal": "no GEMV or decode timing faster than its bytes allow",
                             "status": "flagged" if flagged else "ok", "value": flagged, "target": 0,
                             "note": f"copy {copy_gbps:.1f} GB/s", "line": line})

    print("\nverdicts" + ("" if kernels else " (CPU: torch path, goals not measured)") + ":")
    for entry in verdicts:
        print(f"  {entry['line']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "kernels": kernels, "small": args.small,
                                               "verdicts": verdicts}, indent=1))


if __name__ == "__main__":
    main()
