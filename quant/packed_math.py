"""The torch path of the packed decode attention: ``q·K̂ᵀ`` and ``p·V̂`` with the dequantization
folded into the small operand, so the history's scales and zeros are never broadcast over it.

KIVI's decode (jy-yuan/KIVI 876b4d2 ``quant/matmul.py``, ``cuda_bmm_fA_qB_outer`` and
``triton_bmm_fA_qB_outer``, as our Triton kernels in quant/kernels/decode_attention.py) multiplies
the query, or the attention weights, with the packed history tile by tile, dequantizing each
tile in registers. Torch has no such fused loop: dequantizing first is a full float pass over the
history with the parameters broadcast (the CPU cost that made our cache slower than
DynamicCache). So the products are taken with the float codes and the dequantization is folded
into the small operand; for every block layout ``(bh, bt, bd)`` of quant/kvcache.py, element
``x[t, d] = c[t, d]·s[t // bt, d // bd] + z[t // bt, d // bd]`` with ``d = j·bd + k``:

- scores ``Σ_d q_d x[t, d]``: either the scales go into the query (``q_d·s[n, j]``, one row per
  token block n: cheap when ``bd ≤ bt``, KIVI's per-channel key groups) or onto per-group partial
  sums (``s[n, j]·Σ_k q[j, k]·c[t, j, k]``: cheap when ``bd > bt``, per-token layouts); the zeros
  add ``Σ_j z[n, j]·Σ_k q[j, k]``.
- weighted sums ``Σ_t p_t x[t, d]``: the scales go into the weights (``p_t·s[n, j]``: cheap when
  ``bt ≤ bd``, KIVI's per-token value groups) or onto per-block partial sums over the tokens of
  a block (``bt > bd``); the zeros add ``Σ_n (Σ_{t∈n} p_t)·z[n, j]``.

The codes are converted to float once (``quant.packing.unpack_into``: the one pass over the
history besides the two products); no dequantized copy of it is made. On CPU a 4-bit decode step
then costs 1.0-1.17x DynamicCache's at 4k tokens and 0.34x at 16k, 0.69x and 0.11x transformers'
QuantizedCache (benchmarks/perf/kv_cache_speed.py, README). Results
equal attention over the dequantized history up to float rounding (the sums are reassociated),
as the Triton kernels do (tests/test_packed_math.py).
"""

from __future__ import annotations

import math
import threading

import torch

from .affine import QParams
from .packing import PackedCodes, unpack_into


_workspace = threading.local()
GROWTH = 1.25


def _float_codes(codes: PackedCodes) -> torch.Tensor:
    """The codes as float32, in a workspace kept per thread and device and grown to the largest
    request (one layer's keys or values, with a quarter to spare as the history grows). It never
    leaves this module: each call's products are new tensors. A fresh tensor at every call costs
    more than the conversion itself once its size passes the allocator's reuse threshold (page
    faults on every decode step at 16k tokens)."""
    device = codes.data.device
    needed = math.prod(codes.shape)
    buffers = _workspace.__dict__.setdefault("buffers", {})
    buffer = buffers.get(device)
    if buffer is None or buffer.numel() < needed:
        buffer = buffers[device] = torch.empty(int(needed * GROWTH), dtype=torch.float32, device=device)
    return unpack_into(codes, buffer[:needed].view(codes.shape))


def _params(codes: PackedCodes, qparams: QParams) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Scale and zero as float32 ``[B, H, T/bt, D/bd]`` (head blocks repeated), with ``(bt, bd)``.
    A symmetric layout's zero is ``−2^(b−1)·scale`` (codes are stored offset by ``2^(b−1)``)."""
    if len(qparams.block_size) != 4 or qparams.block_size[0] != 1 or codes.bits != qparams.bits:
        raise ValueError(f"invalid packed cache block: codes of shape {codes.shape} and bits={codes.bits} with "
                         f"block size {qparams.block_size} and bits={qparams.bits}; expected one block per sequence")
    _, bh, bt, bd = qparams.block_size
    scale = repeat_blocks(qparams.scale.float(), bh, 1)
    zero = -scale * 2 ** (qparams.bits - 1) if qparams.zero is None else repeat_blocks(qparams.zero.float(), bh, 1)
    return scale, zero, bt, bd


def repeat_blocks(t: torch.Tensor, times: int, dim: int) -> torch.Tensor:
    """``repeat_interleave``, which copies even once: a decode step's many small tensors make it count."""
    return t if times == 1 else t.repeat_interleave(times, dim=dim)


def _grouped(t: torch.Tensor, name: str, batch: int, heads: int, last_name: str, last: int) -> torch.Tensor:
    """``[B, Hq, last]`` float32 as ``[B, H, groups, last]`` (a KV head's query heads together)."""
    if t.dim() != 3 or t.shape[0] != batch or t.shape[2] != last or t.shape[1] % heads:
        raise ValueError(f"invalid {name} shape={tuple(t.shape)}: expected [batch={batch}, a multiple of "
                         f"heads={heads}, {last_name}={last}]")
    return t.float().reshape(t.shape[0], heads, t.shape[1] // heads, last)


def packed_scores(query: torch.Tensor, codes: PackedCodes, qparams: QParams) -> torch.Tensor:
    """``query [B, Hq, D] · K̂ᵀ`` for packed keys ``[B, H, T, D]``: float32 scores ``[B, Hq, T]``
    (unscaled), ``einsum('bhd,bhtd->bht', q, dequantize(unpack(codes), qparams))`` with key heads
    repeated for GQA, up to rounding."""
    batch, heads, tokens, dim = codes.shape
    q = _grouped(query, "query", batch, heads, "head_dim", dim)   # [B, H, g, D]
    scale, zero, bt, bd = _params(codes, qparams)            # [B, H, n, J]
    blocks, parts = tokens // bt, dim // bd
    c = _float_codes(codes)
    if bd <= bt:   # scales into the query: one scaled query per token block, a batched matmul per block
        scaled = q.unsqueeze(2) * repeat_blocks(scale, bd, -1).unsqueeze(3)                   # [B, H, n, g, D]
        scores = (scaled @ c.view(batch, heads, blocks, bt, dim).transpose(-1, -2)).transpose(2, 3)
    else:          # scales onto per-group partial sums
        partial = torch.einsum("bhgjk,bhtjk->bhgtj", q.view(batch, heads, -1, parts, bd),
                               c.view(batch, heads, tokens, parts, bd))
        scores = (partial.view(batch, heads, -1, blocks, bt, parts) * scale[:, :, None, :, None, :]).sum(-1)
    offset = q.view(batch, heads, -1, parts, bd).sum(-1) @ zero.transpose(-1, -2)          # [B, H, g, n]
    return (scores + offset.unsqueeze(-1)).reshape(batch, query.shape[1], tokens)


def packed_weighted_sum(weights: torch.Tensor, codes: PackedCodes, qparams: QParams) -> torch.Tensor:
    """``weights [B, Hq, T] · V̂`` for packed values ``[B, H, T, D]``: float32 ``[B, Hq, D]``,
    ``einsum('bht,bhtd->bhd', w, dequantize(unpack(codes), qparams))`` up to rounding."""
    batch, heads, tokens, dim = codes.shape
    p = _grouped(weights, "weights", batch, heads, "tokens", tokens)  # [B, H, g, T]
    scale, zero, bt, bd = _params(codes, qparams)
    blocks, parts = tokens // bt, dim // bd
    c = _float_codes(codes)
    by_block = p.view(batch, heads, -1, blocks, bt)
    if bt <= bd:   # scales into the weights: one weight per token and channel group
        scaled = (by_block.unsqueeze(-1) * scale[:, :, None, :, None, :]).view(batch, heads, -1, tokens, parts)
        if parts == 1:   # KIVI's values with a group of head_dim channels: one batched matmul, no copy
            out = (scaled.squeeze(-1) @ c).unsqueeze(3)
        else:
            out = torch.einsum("bhgtj,bhtjk->bhgjk", scaled, c.view(batch, heads, tokens, parts, bd))
    else:          # scales onto per-block partial sums
        partial = torch.einsum("bhgnt,bhntd->bhgnd", by_block, c.view(batch, heads, blocks, bt, dim))
        out = (partial.view(batch, heads, -1, blocks, parts, bd) * scale[:, :, None, :, :, None]).sum(3)
    out = out + (by_block.sum(-1) @ zero).unsqueeze(-1)                                       # [B, H, g, J, bd]
    return out.reshape(batch, weights.shape[1], dim)


__all__ = ["packed_scores", "packed_weighted_sum", "repeat_blocks"]
