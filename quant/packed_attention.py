"""Decode attention that reads the quantized KV cache packed, through transformers' attention API.

``enable_packed_attention(model)`` registers the ``"lvlmbench_packed"`` attention implementation
(transformers' ``AttentionInterface``, with SDPA's mask) and selects it for the model; no model
code is patched. A :class:`~quant.kvcache.QuantizedKVCache` built for such a model hands each
decode step's packed history to the attention function instead of dequantizing it: the cache's
``update`` returns the full-precision window (the tensors the attention function receives) and
leaves the compressed segments in a hand-off slot that the attention function takes when its
``key`` is that very window tensor. Everything else (prefill, the vision tower, a cache without
compression, other caches) goes to SDPA unchanged.

The step follows KIVI's decode (jy-yuan/KIVI 876b4d2 ``models/llama_kivi.py``): scores from the
packed keys (the Triton kernels of quant/kernels/decode_attention.py on CUDA, the same sums in torch,
quant/packed_math.py, on CPU) and from the window, one softmax, the weighted sum
of the packed values plus the window's part. GEAR's sparse outliers and low-rank factors enter as
exact corrections of those sums, computed from the stored parts alone:

- low rank ``L = Q Pᵀ``: scores gain ``Q (P_hᵀ q)``; outputs gain ``(pᵀ Q) P_hᵀ``;
- outliers at ``(t, h, d)`` with value S: the dense code there dequantizes to ``D``; scores gain
  ``q_d · (S − D)`` and outputs ``p_t · (S − D)`` (with ``-exactoutliers`` also ``− L`` there, since
  the outlier overwrites the low-rank term).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

from .kernels import use_triton
from .packed_math import repeat_blocks

PACKED_ATTENTION = "lvlmbench_packed"


@dataclass(frozen=True)
class PackedKV:
    """One layer's decode-step view of the cache: compressed segments then full-precision windows
    (``[B, H, tokens, D]``; the key and value windows may differ in length, as in KIVI)."""

    key_segments: list
    value_segments: list
    key_window: torch.Tensor
    value_window: torch.Tensor


_pending: ContextVar[PackedKV | None] = ContextVar("lvlmbench_packed_kv", default=None)


def hand_off(packed: PackedKV) -> None:
    """Called by the cache's ``update``: the attention call that receives ``packed.key_window`` takes it."""
    _pending.set(packed)


def register_packed_attention() -> None:
    AttentionInterface.register(PACKED_ATTENTION, packed_attention)
    AttentionMaskInterface.register(PACKED_ATTENTION, sdpa_mask)


def enable_packed_attention(model) -> None:
    """Select the packed decode attention for ``model`` (SDPA wherever it does not apply)."""
    register_packed_attention()
    model.set_attn_implementation(PACKED_ATTENTION)


def packed_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs):
    pending = _pending.get()
    if pending is None or pending.key_window is not key:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    _pending.set(None)
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    return decode_attention(query, pending, attention_mask, scaling), None


def decode_attention(query: torch.Tensor, packed: PackedKV, attention_mask: torch.Tensor | None,
                     scaling: float) -> torch.Tensor:
    """One decode step: ``query [B, Hq, 1, D]`` over the packed history; returns ``[B, 1, Hq, D]``
    as transformers' attention functions do."""
    if use_triton(query.device):
        from .kernels.decode_attention import packed_scores, packed_weighted_sum
    else:   # CPU, or LVLMBENCH_KERNELS=torch: the same sums in torch (quant/packed_math.py)
        from .packed_math import packed_scores, packed_weighted_sum

    if query.shape[2] != 1:
        raise ValueError(f"packed decode attention takes one query token per sequence, got {query.shape[2]}")
    q = query[:, :, 0].float()
    groups = q.shape[1] // packed.key_window.shape[1]
    parts = []
    for segment in packed.key_segments:
        scores = packed_scores(q, segment.codes, segment.qparams)
        _add_key_corrections(scores, q, segment, groups)
        parts.append(scores)
    window_keys = repeat_blocks(packed.key_window.float(), groups, 1)
    parts.append((window_keys @ q.unsqueeze(-1)).squeeze(-1))
    scores = torch.cat(parts, dim=-1) * scaling
    if attention_mask is not None:
        mask = attention_mask[:, :, -1, :scores.shape[-1]]  # [B, 1, L]
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask.float()
    weights = torch.softmax(scores, dim=-1)
    out = torch.zeros_like(q)
    start = 0
    for segment in packed.value_segments:
        w = weights[:, :, start:start + segment.tokens]
        out += packed_weighted_sum(w, segment.codes, segment.qparams)
        _add_value_corrections(out, w, segment, groups)
        start += segment.tokens
    window_values = repeat_blocks(packed.value_window.float(), groups, 1)
    out += (weights[:, :, start:].unsqueeze(2) @ window_values).squeeze(2)
    return out.to(query.dtype).unsqueeze(1)


def _per_query_head(p: torch.Tensor, heads: int, dim: int, groups: int) -> torch.Tensor:
    """Low-rank ``P [B, H·D, r]`` as ``[B, Hq, D, r]`` (key/value head repeated for its query heads)."""
    return repeat_blocks(p.float().reshape(p.shape[0], heads, dim, -1), groups, 1)


def _add_key_corrections(scores: torch.Tensor, q: torch.Tensor, segment, groups: int) -> None:
    _, heads, _, dim = segment.shape
    for start, lq, lp in segment.low_rank:
        u = torch.einsum("bqd,bqdr->bqr", q, _per_query_head(lp, heads, dim, groups))
        scores[:, :, start:start + lq.shape[1]] += torch.einsum("btr,bqr->bqt", lq.float(), u)
    if segment.outlier_values is not None:
        hq, t, d, delta = _outliers_per_query_head(segment, groups)
        contribution = q.reshape(q.shape[0], -1).gather(1, hq * dim + d) * delta
        scores.view(scores.shape[0], -1).scatter_add_(1, hq * scores.shape[2] + t, contribution)


def _add_value_corrections(out: torch.Tensor, weights: torch.Tensor, segment, groups: int) -> None:
    _, heads, _, dim = segment.shape
    for start, lq, lp in segment.low_rank:
        w = torch.einsum("bqt,btr->bqr", weights[:, :, start:start + lq.shape[1]], lq.float())
        out += torch.einsum("bqr,bqdr->bqd", w, _per_query_head(lp, heads, dim, groups))
    if segment.outlier_values is not None:
        hq, t, d, delta = _outliers_per_query_head(segment, groups)
        w = weights.reshape(weights.shape[0], -1).gather(1, hq * weights.shape[2] + t)
        out.view(out.shape[0], -1).scatter_add_(1, hq * dim + d, w * delta)


def _outliers_per_query_head(segment, groups: int) -> tuple[torch.Tensor, ...]:
    """(query head, token, channel, delta) of every outlier, once per query head of its KV head:
    ``[B, n·groups]`` each."""
    t, h, d, delta = _outlier_deltas(segment)
    hq = (h.unsqueeze(-1) * groups + torch.arange(groups, device=h.device)).flatten(1)
    return hq, *(x.repeat_interleave(groups, dim=1) for x in (t, d, delta))


def _outlier_deltas(segment) -> tuple[torch.Tensor, ...]:
    """Token, head and channel of each outlier ([B, n] int64) and how far the stored outlier is from
    what the dense part (plus, with -exactoutliers, the low-rank term) gives there."""
    from .packing import packed_row_bytes

    _, heads, tokens, dim = segment.shape
    index = segment.outlier_index.long()
    t, h, d = index // (heads * dim), (index // dim) % heads, index % dim
    data, bits = segment.codes.data, segment.codes.bits
    b = torch.arange(index.shape[0], device=index.device).unsqueeze(1).expand_as(index)
    bit = d * bits
    word = data[b, h, t, bit // 8].long()
    if bits == 3:
        nxt = (bit // 8 + 1).clamp(max=packed_row_bytes(dim, bits) - 1)
        word = word | (data[b, h, t, nxt].long() << 8)
    code = ((word >> (bit % 8)) & (2 ** bits - 1)).float()
    qp = segment.qparams
    _, bh, bt, bd = qp.block_size
    scale = qp.scale[b, h // bh, t // bt, d // bd].float()
    dense = code * scale - scale * 2 ** (bits - 1) if qp.zero is None else torch.addcmul(
        qp.zero[b, h // bh, t // bt, d // bd].float(), code, scale)
    delta = segment.outlier_values.float() - dense
    if segment.exact_outliers:
        for start, lq, lp in segment.low_rank:
            inside = (t >= start) & (t < start + lq.shape[1])
            rows = lq.float()[b, (t - start).clamp(0, lq.shape[1] - 1)]
            cols = lp.float()[b, h * dim + d]
            delta = delta - torch.where(inside, (rows * cols).sum(-1), 0.0)
    return t, h, d, delta


__all__ = ["PACKED_ATTENTION", "PackedKV", "decode_attention", "enable_packed_attention", "hand_off",
           "packed_attention", "register_packed_attention"]
