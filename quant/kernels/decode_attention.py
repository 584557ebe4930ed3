"""Decode attention over the packed KV cache: scores from packed keys, weighted sums of packed values.

KIVI's decode step (jy-yuan/KIVI 876b4d2 ``models/llama_kivi.py``, ``LlamaAttention_KIVI.forward``)
computes ``q·Kᵀ`` straight from the packed keys (``triton_bmm_fA_qB_outer``), the full-precision
window's scores with a plain matmul, one softmax over both, then ``p·V`` straight from the packed
values (``cuda_bmm_fA_qB_outer``) plus the window's part. These two kernels are that, for every
block layout of quant/kvcache.py (tensor, token, headrow, KIVI's channel groups for keys and token
groups for values): the history is read as packed codes with their scales and zeros, and no float
copy of it is ever made; only the scores (one float per cached token and query head) are.

A block layout is its block size along (heads, tokens, channels), ``(bh, bt, bd)``: element
``[b, h, t, d]`` uses ``scale[b, h // bh, t // bt, d // bd]``. GQA: a program dequantizes a tile of one KV head once
and uses it for all of that head's query heads.
"""

from __future__ import annotations

import functools
import itertools

import torch
import triton
import triton.language as tl

from ..affine import QParams
from ..packing import PackedCodes, packed_row_bytes
from .triton_common import FLOAT_DTYPES, POINTER_TYPES, Specialisation, load_codes, sum_over

BLOCK_T = 32
KERNEL_BITS = (2, 3, 4, 8)
MIN_BLOCK_D = 16  # smaller head dims run masked 16-wide tiles: fewer variants to compile
MAX_BLOCK_D = 256  # head_dim up to 256 (the largest of today's models, e.g. Gemma's)
MAX_BLOCK_G = 16  # query heads per KV head up to 16 (GQA ratios are 1 to 8 in today's models)
# A program holds a [BLOCK_G, BLOCK_T, BLOCK_D] float32 product in registers: up to 32K elements
# (256 per thread at 4 warps; GQA 8 at head_dim 128, GQA 2 at 256). Beyond, it spills so far that
# ptxas takes minutes per variant and the kernel crawls, so those shapes are refused.
MAX_BLOCK_GD = 1024


@triton.jit
def _dequantized_tile(codes_ptr, scale_ptr, zero_ptr, b, h, t, d, mask, T, row_bytes,
                      s_cb, s_ch, s_ct, s_sb, s_sh, s_st, s_sd, bh, bt, bd,
                      BITS: tl.constexpr, HAS_ZERO: tl.constexpr):
    """float32 values of the packed tile at tokens ``t[:, None]`` and channels ``d[None, :]``."""
    rows = codes_ptr + b * s_cb + h * s_ch + t[:, None] * s_ct
    code = load_codes(rows, d[None, :], row_bytes, mask, BITS).to(tl.float32)
    params = b * s_sb + (h // bh) * s_sh + (t[:, None] // bt) * s_st + (d[None, :] // bd) * s_sd
    scale = tl.load(scale_ptr + params, mask=mask, other=0.0).to(tl.float32)
    if HAS_ZERO:
        zero = tl.load(zero_ptr + params, mask=mask, other=0.0).to(tl.float32)
        return code * scale + zero
    # as quant.affine.dequantize into a float32 cache slice: q·scale − 2^(b−1)·scale
    return code * scale - scale * (1 << (BITS - 1))


@triton.jit
def _packed_scores_kernel(q_ptr, codes_ptr, scale_ptr, zero_ptr, out_ptr, T, D, groups, row_bytes,
                          s_qb, s_qh, s_cb, s_ch, s_ct, s_sb, s_sh, s_st, s_sd, s_ob, s_oh, bh, bt, bd,
                          BITS: tl.constexpr, HAS_ZERO: tl.constexpr, BLOCK_G: tl.constexpr, BLOCK_T: tl.constexpr,
                          BLOCK_D: tl.constexpr):
    """One program: a tile of tokens of one KV head, dequantized once, for all its query heads."""
    b, h, tile = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    t = tile * BLOCK_T + tl.arange(0, BLOCK_T)
    d = tl.arange(0, BLOCK_D)
    g = tl.arange(0, BLOCK_G)
    mask = (t[:, None] < T) & (d[None, :] < D)
    k = _dequantized_tile(codes_ptr, scale_ptr, zero_ptr, b, h, t, d, mask, T, row_bytes,
                          s_cb, s_ch, s_ct, s_sb, s_sh, s_st, s_sd, bh, bt, bd, BITS, HAS_ZERO)
    hq = h * groups + g
    q = tl.load(q_ptr + b * s_qb + hq[:, None] * s_qh + d[None, :], mask=(g[:, None] < groups) & (d[None, :] < D),
                other=0.0).to(tl.float32)
    scores = sum_over(q[:, None, :] * k[None, :, :], 2)  # [BLOCK_G, BLOCK_T]
    tl.store(out_ptr + b * s_ob + hq[:, None] * s_oh + t[None, :], scores,
             mask=(g[:, None] < groups) & (t[None, :] < T))


@triton.jit
def _packed_weighted_sum_kernel(p_ptr, codes_ptr, scale_ptr, zero_ptr, out_ptr, T, D, groups, row_bytes,
                                tiles_per_split, s_pb, s_ph, s_cb, s_ch, s_ct, s_sb, s_sh, s_st, s_sd,
                                s_os, s_ob, s_oh, bh, bt, bd, BITS: tl.constexpr, HAS_ZERO: tl.constexpr,
                                BLOCK_G: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr):
    """One program: a range of token tiles of one KV head, each dequantized once for all its query heads."""
    b, h, split = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    d = tl.arange(0, BLOCK_D)
    g = tl.arange(0, BLOCK_G)
    hq = h * groups + g
    acc = tl.full((BLOCK_G, BLOCK_D), 0.0, tl.float32)
    for i in range(tiles_per_split):
        t = (split * tiles_per_split + i) * BLOCK_T + tl.arange(0, BLOCK_T)
        mask = (t[:, None] < T) & (d[None, :] < D)
        v = _dequantized_tile(codes_ptr, scale_ptr, zero_ptr, b, h, t, d, mask, T, row_bytes,
                              s_cb, s_ch, s_ct, s_sb, s_sh, s_st, s_sd, bh, bt, bd, BITS, HAS_ZERO)
        p = tl.load(p_ptr + b * s_pb + hq[:, None] * s_ph + t[None, :], mask=(g[:, None] < groups) & (t[None, :] < T),
                    other=0.0).to(tl.float32)
        acc += sum_over(p[:, :, None] * v[None, :, :], 1)  # [BLOCK_G, BLOCK_D]
    tl.store(out_ptr + split * s_os + b * s_ob + hq[:, None] * s_oh + d[None, :], acc,
             mask=(g[:, None] < groups) & (d[None, :] < D))


def specialisation(kernel: triton.runtime.JITFunction, query_dtype: torch.dtype, param_dtype: torch.dtype,
                   bits: int, has_zero: bool, block_g: int, block_d: int) -> Specialisation:
    """The variant of ``kernel`` (scores or weighted sum) launched for a ``query_dtype`` query (or
    weights), parameters in ``param_dtype``, ``block_g``/``block_d``: powers of two covering the
    query heads per KV head and head_dim."""
    p = POINTER_TYPES[param_dtype]
    return Specialisation(
        kernel,
        ((kernel.arg_names[0], POINTER_TYPES[query_dtype]), ("codes_ptr", "u8"), ("scale_ptr", p), ("zero_ptr", p),
         ("out_ptr", "fp32")),
        (("BITS", bits), ("HAS_ZERO", has_zero), ("BLOCK_G", block_g), ("BLOCK_T", BLOCK_T), ("BLOCK_D", block_d)))


def _powers_of_two(low: int, high: int) -> tuple[int, ...]:
    """The powers of two from ``low`` to ``high`` (both powers of two)."""
    return tuple(1 << i for i in range(low.bit_length() - 1, high.bit_length()))


@functools.cache
def specialisations() -> tuple[Specialisation, ...]:
    """Every variant :func:`packed_scores` and :func:`packed_weighted_sum` can launch (GEAR's sparse
    and low-rank corrections are added in torch by quant/packed_attention.py: no kernel variant)."""
    choices = itertools.product((_packed_scores_kernel, _packed_weighted_sum_kernel), FLOAT_DTYPES, FLOAT_DTYPES,
                                KERNEL_BITS, (False, True), _powers_of_two(1, MAX_BLOCK_G),
                                _powers_of_two(MIN_BLOCK_D, MAX_BLOCK_D))
    return tuple(specialisation(*choice) for choice in choices if choice[-2] * choice[-1] <= MAX_BLOCK_GD)


@functools.cache
def _table() -> frozenset[Specialisation]:
    """specialisations() as a set: what a launch is checked against."""
    return frozenset(specialisations())


def _launch(kernel: triton.runtime.JITFunction, grid: tuple[int, ...], query: torch.Tensor, codes: PackedCodes,
            qparams: QParams, groups: int, *args: object) -> None:
    """Run ``kernel`` with ``args`` after the query (or weights) pointer, in its specialisation for these inputs."""
    block_g, block_d = triton.next_power_of_2(groups), max(MIN_BLOCK_D, triton.next_power_of_2(codes.shape[3]))
    if block_g > MAX_BLOCK_G or block_d > MAX_BLOCK_D or block_g * block_d > MAX_BLOCK_GD:
        raise ValueError(f"invalid packed attention shape: {groups} query heads per KV head and head_dim="
                         f"{codes.shape[3]}; the kernels take up to {MAX_BLOCK_G} and {MAX_BLOCK_D}, padded to "
                         f"powers of two of product <= {MAX_BLOCK_GD}")
    for name, t in (("query", query), ("qparams.scale", qparams.scale)):
        if t.dtype not in FLOAT_DTYPES:
            raise ValueError(f"invalid {name} dtype={t.dtype}: the packed attention kernels take {FLOAT_DTYPES}")
    spec = specialisation(kernel, query.dtype, qparams.scale.dtype, codes.bits, qparams.zero is not None,
                          block_g, block_d)
    spec.launch(_table(), grid, query, *args)


def _layout(codes: PackedCodes, qparams: QParams) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...], tuple[int, ...]]:
    """Parameters expanded to 4-D views (no copy) with their strides, and the block sizes (bh, bt, bd)."""
    if codes.data.dim() != 4 or len(qparams.block_size) != 4 or qparams.block_size[0] != 1:
        raise ValueError(f"invalid packed cache block: codes of shape {tuple(codes.shape)} with block size "
                         f"{qparams.block_size}; expected [batch, heads, tokens, head_dim] with one block per sequence")
    if codes.bits != qparams.bits:
        raise ValueError(f"invalid packed cache block: codes have bits={codes.bits}, parameters bits={qparams.bits}")
    scale = qparams.scale
    zero = scale if qparams.zero is None else qparams.zero
    if zero.dtype != scale.dtype:
        raise ValueError(f"invalid qparams.zero dtype={zero.dtype}: must be scale's dtype {scale.dtype}")
    if zero.stride() != scale.stride():
        zero = zero.contiguous()
        scale = scale.contiguous()
    return scale, zero, tuple(scale.stride()), tuple(qparams.block_size[1:])


def _per_query_head(name: str, t: torch.Tensor, batch: int, heads: int, last_name: str, last: int) -> torch.Tensor:
    """``t`` checked to be ``[batch, a multiple of heads, last]``, with a unit stride on its last dim."""
    if t.dim() != 3 or t.shape[0] != batch or t.shape[2] != last or t.shape[1] % heads:
        raise ValueError(f"invalid {name} shape={tuple(t.shape)}: expected [batch={batch}, a multiple of "
                         f"heads={heads}, {last_name}={last}]")
    return t if t.stride(-1) == 1 else t.contiguous()


def packed_scores(query: torch.Tensor, codes: PackedCodes, qparams: QParams) -> torch.Tensor:
    """``query [B, Hq, D] · K̂ᵀ`` for packed keys ``[B, H, T, D]``: float32 scores ``[B, Hq, T]``
    (unscaled), equal to ``einsum('bhd,bhtd->bht', q, dequantize(unpack(codes), qparams))`` with
    key heads repeated for GQA."""
    batch, heads, tokens, dim = codes.shape
    query = _per_query_head("query", query, batch, heads, "head_dim", dim)
    scale, zero, s_s, (bh, bt, bd) = _layout(codes, qparams)
    out = torch.empty(batch, query.shape[1], tokens, dtype=torch.float32, device=query.device)
    if tokens == 0:
        return out
    data = codes.data
    groups = query.shape[1] // heads
    grid = (batch, heads, triton.cdiv(tokens, BLOCK_T))
    _launch(_packed_scores_kernel, grid, query, codes, qparams, groups,
            data, scale, zero, out, tokens, dim, groups, packed_row_bytes(dim, codes.bits),
            query.stride(0), query.stride(1), data.stride(0), data.stride(1), data.stride(2), *s_s,
            out.stride(0), out.stride(1), bh, bt, bd)
    return out


def packed_weighted_sum(weights: torch.Tensor, codes: PackedCodes, qparams: QParams, splits: int | None = None
                        ) -> torch.Tensor:
    """``weights [B, Hq, T] · V̂`` for packed values ``[B, H, T, D]``: float32 ``[B, Hq, D]``. The
    tokens are cut into ``splits`` ranges summed by separate programs (enough of them to fill a
    GPU at batch 1), then added."""
    batch, heads, tokens, dim = codes.shape
    weights = _per_query_head("weights", weights, batch, heads, "tokens", tokens)
    scale, zero, s_s, (bh, bt, bd) = _layout(codes, qparams)
    tiles = triton.cdiv(tokens, BLOCK_T)
    if splits is None:
        splits = max(1, min(tiles, 128 // (batch * heads)))
    tiles_per_split = triton.cdiv(tiles, splits) if tiles else 0
    splits = triton.cdiv(tiles, tiles_per_split) if tiles else 1
    partial = torch.zeros(splits, batch, weights.shape[1], dim, dtype=torch.float32, device=weights.device)
    if tokens:
        data = codes.data
        groups = weights.shape[1] // heads
        _launch(_packed_weighted_sum_kernel, (batch, heads, splits), weights, codes, qparams, groups,
                data, scale, zero, partial, tokens, dim, groups,
                packed_row_bytes(dim, codes.bits), tiles_per_split, weights.stride(0), weights.stride(1),
                data.stride(0), data.stride(1), data.stride(2), *s_s,
                partial.stride(0), partial.stride(1), partial.stride(2), bh, bt, bd)
    return partial.sum(dim=0)


__all__ = ["MAX_BLOCK_D", "MAX_BLOCK_G", "MAX_BLOCK_GD", "MIN_BLOCK_D", "packed_scores", "packed_weighted_sum",
           "specialisation", "specialisations"]
