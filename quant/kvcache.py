"""A quantized KV cache on transformers' cache API, with packed storage.

Tensors are ``[batch, heads, tokens, head_dim]``; keys and values are compressed separately.
Every method is a composition of ``quant.affine``'s one quantize/dequantize primitive.

References (read at the source; the defaults follow their arithmetic):

- GEAR: github opengear-project/GEAR, ``GEARLM/GEARLM/Simulated/compress_function.py`` at commit
  4ca6495740fef09d360fa1f0bd97f6d04680bcee (the last one that has the simulated functions;
  01d0a32 deleted the file): ``fake_uniformquantization``, ``fake_groupwise_token_asymmetric_quantization``,
  ``fake_dense_sparse_uniformquantization``, ``fake_poweriteration``, ``fake_outquant_with_lrap``,
  ``compress_insert_function``; its streaming in ``modeling_llama_new.py`` (the SDPA attention ``forward``: the past cache
  is compressed before the new token is appended, so that token is attended in full precision).
- KIVI: github jy-yuan/KIVI at commit 876b4d2d08e3b1d5f70d0969c299d8c7c42ddfb6, ``quant/new_pack.py``
  (``triton_quantize_and_pack_along_last_dim``, ``quant_and_pack_kcache``/``vcache``) and
  ``models/llama_kivi.py`` (``LlamaAttention_KIVI.forward``: prefill split and decode streaming).

Methods (see ``KVQuantSpec``):

- ``uniform`` — GEAR's uniform quantization: asymmetric min-max, ``scale = (max - min)/(2^b - 1)``,
  ``q = round((x - min)/scale)``, ``x̂ = q·scale + min``; one range per quantized block
  (granularity ``tensor``), per token over all heads' H·D channels (``-token``), or per head row of
  head_dim channels (``-headrow``).
- ``group`` — KIVI: keys per channel in groups of G tokens, values per token in groups of G
  channels (``(x - mn)/scale`` clamped to ``[0, 2^b - 1]`` and rounded: the same codes).
- ``outlier`` — GEAR's outlier-reduced quantization with optional low rank
  (``fake_outquant_with_lrap``): the largest and smallest ``s/2`` fraction of entries are the sparse
  part S, kept exactly; the rest is quantized with its own range; the residual
  ``X − dequant(Q(X − S)) − S`` (zero at outlier positions) is approximated at rank r by power
  iteration with QR on the last round (``fake_poweriteration``, 3 loops), and
  ``X ≈ dequant(Q(X − S)) + S + L`` with L added at EVERY position, outliers included. The rank is
  fixed (``-lr4``) or, as GEAR sets it, ``int(f · min(tokens, H·D))`` of each compressed block
  (``-lrf0.02``). ``s = 0`` keeps no outliers (GEAR's slicing ``[k:-k]`` with k = 0 would
  quantize nothing).

Streaming (KIVI ``LlamaAttention_KIVI.forward``): with residual length R, keys keep the newest
``l mod R`` tokens in full precision (whole blocks of R, so whole groups of G, are flushed); KIVI's
values (method ``group``) keep a sliding window of the newest R tokens and each token is
compressed as it leaves it. GEAR's methods flush keys and values together every R tokens (GEAR's
``streaming_gap``). With R = 0 every token is compressed (KIVI keys: whole groups of G; the < G
leftover waits). History is never re-quantized. A token produced at a decode step is attended
in full precision at that step and compressed afterwards, as in KIVI and GEAR's simulated mode.

Prefill: by default the prefill attention already sees the compressed prompt (the study's
semantics), so a one-token answer can change. ``quantize_prefill=False`` (id suffix
``-fpprefill``) is KIVI's deployment semantics: prefill attention uses the float prompt and only
later steps read the compressed cache — a one-token answer cannot change.

Deliberate differences from the references, each with the option that selects ours or theirs:

- ``-exactoutliers``: ours, the low-rank term is not added where an outlier is written back
  (outliers stay exact). Default: GEAR's, L added everywhere.
- ``-headrow``: one range per head row (head_dim values). ``-token`` is one range per token over
  all H·D values. GEAR's ``fake_groupwise_token_asymmetric_quantization`` itself hard-codes groups
  of 128 consecutive channels of the H·D row, which is ``-headrow`` when head_dim = 128 (LLaMA /
  LLaVA 7B-13B) and ``-token`` when H·D = 128.
- Scope, no option: ``tensor`` blocks, outliers and the low-rank term are taken per sequence
  (batch element); GEAR flattens the whole batch (``input.reshape(-1)``, power iteration over
  ``batch·seq_len`` rows). Ours keeps a sample's result independent of its batch mates.
- Left padding: told the batch's attention mask (:meth:`QuantizedKVCache.set_padding`, as the
  plugin's generation does), padded positions enter no statistic: ranges (padding is filled with
  the sequence's first real token before the ranges are taken), outliers (chosen among real
  entries, their count from real entries) and low rank (from the real rows alone). GEAR's and
  KIVI's code let padding into all three, so an answer depends on its batch mates' lengths. What
  remains: KIVI's key groups and every residual window count tokens from the start of the padded
  sequence, so which real tokens share a group (or are compressed yet) still depends on the
  padding; a sequence without padding is unaffected.
- Low-rank storage, no option: the rank-r factors are stored only where they are smaller than the
  values they correct (``r·(T + H·D) < T·H·D``); for a single token they would be an exact copy
  larger than the token itself. GEAR always adds them.
- Constant blocks, no option: a block with zero range (``max == min``) dequantizes exactly;
  GEAR's and KIVI's code divide by the zero step and return NaN there.
- Power-iteration start, no option: a fixed-seed ``torch.rand`` start (GEAR: unseeded), so
  results are reproducible.
- GEAR re-compresses the whole past cache at each streaming step; ours never re-quantizes
  history (KIVI's rule).

Storage: compressed tokens of one block layout form one segment; appending to it writes into
spare room behind its buffers (grown 1.25x at a time), so a decode step copies the new token only.
``nbytes`` counts the stored codes, parameters, outliers and low-rank factors, not that spare
room (at most a quarter of the segment; it is allocator memory, like any growth buffer).

Errors: ``update()`` checks its inputs (4-D float ``[batch, heads, tokens, head_dim]``, keys and
values with the same batch, heads and tokens, the same batch/heads/head_dim as the cached
ones) and raises a ValueError naming the layer and both shapes. NaN or inf in tokens about to
be compressed raise :class:`~quant.affine.NonFiniteError` (a ValueError) naming the layer,
keys or values, the update call (0 = prefill) and the first bad token's position, and the
cache is left as it was before that call. Quantizing them would not fail: one NaN makes a
block's range NaN, so every token of the block (a whole sequence's keys for ``tensor``
blocks) would come back NaN. Tokens still in the full-precision window, and the ``fp16``
spec, pass through unchecked, as in transformers' DynamicCache. On CPU the check runs at each
compression; on CUDA (``defer_checks``) it is recorded on the device, with no sync per decode
step, and :meth:`QuantizedKVCache.check_finite` raises the same named error once the generate
call is done (the bad tokens are then already stored: the cache is for that call's output only).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
from transformers.cache_utils import Cache, DynamicLayer, get_layer_types_and_kwargs

from .affine import (NonFiniteError, QParams, choose_qparams, describe_non_finite, dequantize, dequantize_in_place,
                     quantize)
from .kernels import use_triton
from .layers import LayerSelection
from .packed_attention import PACKED_ATTENTION, PackedKV, hand_off
from .packing import PackedCodes, pack, unpack, unpack_into
from .spec import KVQuantSpec
from .token_spec import EvictSpec
from .eviction import select_kept

POWER_ITERATIONS = 3  # GEAR's default `loop`
LOW_RANK_SEED = 0


@dataclass(frozen=True)
class KVCodec:
    """How one of keys/values is compressed: bits, block layout, outliers, low rank."""

    bits: int
    block: str  # "tensor" (per sequence), "token" (per token, all heads), "headrow", "channel_group", "token_group"
    group_size: int = 0
    symmetric: bool = False
    clip_ratio: float = 1.0
    outlier_ratio: float = 0.0
    rank: int = 0
    rank_fraction: float = 0.0  # GEAR: rank = int(rank_fraction * min(tokens, H·D)) of each block
    exact_outliers: bool = False  # ours: the low-rank term is not added at outlier positions

    def rank_for(self, tokens: int, width: int) -> int:
        """Low-rank rank for a block of ``tokens`` rows of ``width = H·D`` (GEAR's compress_insert_function)."""
        if self.rank_fraction:
            return int(min(tokens, width) * self.rank_fraction)
        return self.rank

    def block_size(self, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        _, heads, tokens, dim = shape
        if self.block == "tensor":
            return (1, heads, tokens, dim)
        if self.block == "token":  # GEAR's per-token: one range over all heads' channels
            return (1, heads, 1, dim)
        if self.block == "headrow":
            return (1, 1, 1, dim)
        if self.block == "channel_group":  # KIVI keys: per channel, G consecutive tokens
            return (1, 1, self.group_size, 1)
        return (1, 1, 1, self.group_size)  # KIVI values: per token, G consecutive channels

    @property
    def token_multiple(self) -> int:
        """Blocks handed to compress() must hold a multiple of this many tokens."""
        return self.group_size if self.block == "channel_group" else 1


def codecs_for(spec: KVQuantSpec) -> tuple[KVCodec, KVCodec]:
    """(key codec, value codec) of a quantizing spec."""
    common = dict(bits=spec.bits, symmetric=spec.symmetric, clip_ratio=spec.clip_ratio)
    if spec.method == "group":
        return (KVCodec(block="channel_group", group_size=spec.group_size, **common),
                KVCodec(block="token_group", group_size=spec.group_size, **common))
    if spec.method == "uniform":
        codec = KVCodec(block=spec.granularity, **common)
    else:
        codec = KVCodec(block="tensor", outlier_ratio=spec.outlier_ratio, rank=spec.rank,
                        rank_fraction=spec.rank_fraction or 0.0, exact_outliers=spec.exact_outliers, **common)
    return codec, codec


@dataclass
class Segment:
    """Compressed tokens: packed codes + per-block params, optional sparse outliers and low-rank factors.

    Outlier indices are flat positions in the token-major layout ``[tokens, heads, head_dim]`` of
    each sequence, so segments concatenate along tokens by offsetting them.
    """

    codes: PackedCodes
    qparams: QParams
    outlier_values: torch.Tensor | None = None   # [batch, n_outliers], storage dtype
    outlier_index: torch.Tensor | None = None    # [batch, n_outliers], int32
    low_rank: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (first token, Q, P)
    exact_outliers: bool = False  # True: outliers are written after the low-rank term (ours, -exactoutliers)
    # buffers with spare room behind the tensors above (which are prefix views of them), so that
    # appending a token does not copy the whole history; owned by the newest segment of a stream
    storage: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.codes.shape

    @property
    def tokens(self) -> int:
        return self.codes.shape[2]

    def can_merge(self, other: Segment) -> bool:
        """Same block layout along tokens: concatenating codes and params stays one valid tensor."""
        return self.qparams.block_size == other.qparams.block_size and self.shape[:2] == other.shape[:2]

    def merge(self, other: Segment) -> Segment:
        """This segment followed by ``other``. Appends into spare room behind this segment's tensors
        (grown geometrically), so a decode step copies only the new token, not the history (a
        ``torch.cat`` per step would copy all of it); the merged segment takes the buffers over."""
        qp, oq = self.qparams, other.qparams
        storage, self.storage = self.storage, {}
        offset = self.tokens * self.shape[1] * self.shape[3]
        parts = {"codes": (self.codes.data, other.codes.data, 2), "scale": (qp.scale, oq.scale, 2),
                 "zero": (qp.zero, oq.zero, 2), "outlier_values": (self.outlier_values, other.outlier_values, 1),
                 "outlier_index": (self.outlier_index, None if other.outlier_index is None
                                   else other.outlier_index + offset, 1)}
        merged = {name: None if old is None else _append(storage, name, old, new, dim)
                  for name, (old, new, dim) in parts.items()}
        return Segment(PackedCodes(merged["codes"], qp.bits, self.codes.length),
                       QParams(merged["scale"], merged["zero"], qp.bits, qp.block_size),
                       merged["outlier_values"], merged["outlier_index"],
                       self.low_rank + [(start + self.tokens, q, p) for start, q, p in other.low_rank],
                       self.exact_outliers, storage)

    def dequantize_into(self, out: torch.Tensor) -> None:
        """Write the reconstructed tokens into ``out`` ([batch, heads, tokens, head_dim], may be a slice)."""
        _, unpack_dequantize = pack_ops(out.device)
        if not self.low_rank and self.outlier_values is None:
            unpack_dequantize(self.codes, self.qparams, out=out)
            return
        x = unpack_dequantize(self.codes, self.qparams, torch.float32)
        batch, heads, tokens, dim = x.shape
        flat = x.transpose(1, 2).reshape(batch, tokens, heads * dim)
        if self.outlier_values is not None and not self.exact_outliers:
            # GEAR (fake_outquant_with_lrap): dequant(Q(X - S)) + S, then + L at every position.
            flat = flat.reshape(batch, -1).scatter(1, self.outlier_index.long(), self.outlier_values.float())
            flat = flat.reshape(batch, tokens, heads * dim)
        for start, q, p in self.low_rank:
            flat[:, start:start + q.shape[1]] += q.float() @ p.float().transpose(1, 2)
        if self.outlier_values is not None and self.exact_outliers:
            flat = flat.reshape(batch, -1).scatter(1, self.outlier_index.long(), self.outlier_values.float())
        out.copy_(flat.reshape(batch, tokens, heads, dim).transpose(1, 2))

    def nbytes_by_part(self) -> dict[str, int]:
        sparse = 0 if self.outlier_values is None else (
            _tensor_bytes(self.outlier_values) + _tensor_bytes(self.outlier_index))
        return {"codes": self.codes.nbytes, "scale_zero": self.qparams.nbytes, "sparse": sparse,
                "low_rank": sum(_tensor_bytes(q) + _tensor_bytes(p) for _, q, p in self.low_rank)}

    def select_batch(self, index: torch.Tensor) -> Segment:
        """Rows of the batch in ``index`` order (beam search reorder, contrastive search)."""
        qp = self.qparams

        def pick(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.index_select(0, index.to(t.device))

        return Segment(PackedCodes(pick(self.codes.data), qp.bits, self.codes.length),
                       QParams(pick(qp.scale), pick(qp.zero), qp.bits, qp.block_size),
                       pick(self.outlier_values), pick(self.outlier_index),
                       [(start, pick(q), pick(p)) for start, q, p in self.low_rank], self.exact_outliers)


GROWTH = 1.25  # spare room a merged segment's buffers get: amortised O(1) appends, at most 25% unused


def _append(storage: dict[str, torch.Tensor], name: str, old: torch.Tensor, new: torch.Tensor, dim: int
            ) -> torch.Tensor:
    """``torch.cat([old, new], dim)`` written into ``storage[name]`` when ``old`` is a prefix of it
    with room behind; otherwise into a fresh buffer with room for ``GROWTH`` times the result."""
    used, added = old.shape[dim], new.shape[dim]
    buffer = storage.get(name)
    if (buffer is None or buffer.data_ptr() != old.data_ptr() or buffer.shape[dim] < used + added
            or buffer.narrow(dim, 0, used).stride() != old.stride()):
        shape = list(old.shape)
        shape[dim] = max(int((used + added) * GROWTH), used + added + 1)
        buffer = torch.empty(shape, dtype=old.dtype, device=old.device)
        buffer.narrow(dim, 0, used).copy_(old)
        storage[name] = buffer
    buffer.narrow(dim, used, added).copy_(new)
    return buffer.narrow(dim, 0, used + added)


STORED_PARTS = ("codes", "scale_zero", "sparse", "low_rank")


def _sum_parts(breakdowns) -> dict[str, int]:
    """Add byte breakdowns part by part; the compressed parts are always listed, even at 0."""
    total = dict.fromkeys(STORED_PARTS, 0)
    for breakdown in breakdowns:
        for part, size in breakdown.items():
            total[part] = total.get(part, 0) + size
    return total


def _tensor_bytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def split_outliers(x: torch.Tensor, ratio: float, skip: list[int] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GEAR's sparse part, per sequence: the ``ratio/2`` largest and smallest entries.

    ``x`` is token-major ``[batch, n]``. Returns the outlier values, their int32 positions, and
    ``x`` with those positions set to the largest remaining value, so they neither widen the
    quantization range nor cost precision. ``skip``: per sequence, leading entries that are left
    padding; they are never chosen and do not count in ``n``, so a sequence gets the outliers it
    would get alone (a sequence with fewer entries than its batch mates fills its spare slots with
    position 0, one of its padding entries, which attention masks).
    """
    if not skip or not any(skip):   # every decode step: no per-sequence counts to copy to the device
        k = int(x.shape[1] * ratio / 2)
        top = torch.topk(x, k + 1, dim=1)
        bottom = torch.topk(x, k, dim=1, largest=False)
        index = torch.cat([top.indices[:, :k], bottom.indices], dim=1)
        values = torch.cat([top.values[:, :k], bottom.values], dim=1)
        filled = x.scatter(1, index, top.values[:, k:].expand(-1, index.shape[1]))
        return values, index.to(torch.int32), filled
    counts = [int((x.shape[1] - s) * ratio / 2) for s in skip]
    k = max(counts)
    padding = torch.arange(x.shape[1], device=x.device)[None, :] < torch.tensor(skip, device=x.device)[:, None]
    top = torch.topk(x.masked_fill(padding, float("-inf")), k + 1, dim=1)
    bottom = torch.topk(x.masked_fill(padding, float("inf")), k, dim=1, largest=False)
    kept = torch.arange(k, device=x.device)[None, :] < torch.tensor(counts, device=x.device)[:, None]
    index = torch.cat([top.indices[:, :k].where(kept, 0), bottom.indices.where(kept, 0)], dim=1)
    fill = top.values.gather(1, torch.tensor(counts, device=x.device)[:, None])   # each sequence's (k_b+1)-th largest
    values = x.gather(1, index)
    filled = x.scatter(1, index, fill.expand(-1, index.shape[1]))
    return values, index.to(torch.int32), filled


def fill_padding(x: torch.Tensor, skip: list[int]) -> torch.Tensor:
    """``x`` ``[batch, heads, tokens, head_dim]`` with each sequence's leading ``skip`` tokens (left
    padding) replaced by a copy of its first real token: every block that mixes padding and real
    tokens is contiguous along tokens and so holds that first real token, and its range becomes the
    range of its real tokens alone. A block of padding only keeps what it holds (attention masks it)."""
    tokens = x.shape[2]
    position = torch.arange(tokens, device=x.device)[None, :]
    first = torch.tensor([min(s, tokens - 1) for s in skip], device=x.device)[:, None]
    source = torch.maximum(position, first)   # [batch, tokens]: padding reads the first real token
    return x.gather(2, source[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[3]))


def low_rank_approximation(matrix: torch.Tensor, rank: int, iterations: int = POWER_ITERATIONS
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-r factors ``Q [batch, m, r]`` (orthonormal), ``P [batch, n, r]`` with ``matrix ≈ Q P^T``.

    Subspace power iteration with QR on the last round, as GEAR's ``fake_poweriteration``, from
    a fixed-seed start so the result is deterministic.
    """
    batch, m, n = matrix.shape
    rank = min(rank, m, n)
    gen = torch.Generator(device="cpu").manual_seed(LOW_RANK_SEED)
    p = torch.rand(n, rank, generator=gen).to(matrix).expand(batch, n, rank)
    for step in range(iterations):
        last = step == iterations - 1
        if last:
            p = torch.linalg.qr(p).Q
        q = matrix @ p
        if last:
            q = torch.linalg.qr(q).Q
        p = matrix.transpose(1, 2) @ q
    return q, p


def _torch_quantize_pack(x: torch.Tensor, qparams: QParams) -> PackedCodes:
    return pack(quantize(x, qparams, check_finite=False), qparams.bits, check_range=False)


def _torch_unpack_dequantize(codes: PackedCodes, qparams: QParams, dtype: torch.dtype | None = None, *,
                             out: torch.Tensor | None = None) -> torch.Tensor:
    if out is not None and out.dtype == torch.float32:   # the CPU decode step: no uint8 copy of the history
        return dequantize_in_place(unpack_into(codes, out), qparams)
    return dequantize(unpack(codes), qparams, dtype, out=out)


def pack_ops(device: torch.device) -> tuple:
    """(quantize+pack, unpack+dequantize) for tensors on ``device``: the Triton kernels
    (quant/kernels/kv_pack.py, bit-identical) where ``use_triton``, else the torch reference."""
    if use_triton(device):
        from .kernels.kv_pack import quantize_pack, unpack_dequantize  # imports triton

        return functools.partial(quantize_pack, check_finite=False), unpack_dequantize
    return _torch_quantize_pack, _torch_unpack_dequantize


def compress(x: torch.Tensor, codec: KVCodec, *, check_finite: bool = True, padding: list[int] | None = None
             ) -> Segment:
    """Compress a block of tokens ``[batch, heads, tokens, head_dim]`` into a Segment.

    NaN/inf in ``x`` raise NonFiniteError (``check_finite=False``: the caller has checked).
    ``padding``: per sequence, how many of the block's leading tokens are left padding. They enter no
    statistic (ranges, outliers, low rank), so a sequence compresses as it would alone; blocks that
    group tokens across the padding boundary (KIVI's key groups) still depend on where it falls."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"invalid x: compress takes a float [batch, heads, tokens, head_dim] tensor, got "
                         f"{getattr(x, 'dtype', type(x).__name__)} of shape {tuple(getattr(x, 'shape', ()))}")
    if check_finite and not bool(torch.isfinite(x).all()):
        raise NonFiniteError(f"x (shape {tuple(x.shape)}) has {describe_non_finite(x)}: cannot compress NaN/inf")
    batch, heads, tokens, dim = x.shape
    padding = padding if padding and any(padding) else None
    x32 = x.float()
    values = index = None
    if codec.outlier_ratio > 0:
        flat = x32.transpose(1, 2).reshape(batch, -1)
        skip = None if padding is None else [min(p, tokens) * heads * dim for p in padding]
        values, index, filled = split_outliers(flat, codec.outlier_ratio, skip)
        x32 = filled.reshape(batch, tokens, heads, dim).transpose(1, 2)
        values = values.to(x.dtype)
    if padding is not None:
        x32 = fill_padding(x32, padding)
    block = codec.block_size(x.shape)
    # A constant block (max == min) gets scale 0 and dequantizes exactly (quant.affine). GEAR's
    # fake_uniformquantization divides by that zero step and returns NaN there; KIVI's
    # quant_and_pack_* likewise divide by a zero scale. Ours stays exact on purpose.
    qparams = choose_qparams(x32, codec.bits, block, symmetric=codec.symmetric, clip_ratio=codec.clip_ratio,
                             param_dtype=x.dtype, check_finite=False)
    quantize_pack, unpack_dequantize = pack_ops(x.device)
    codes = quantize_pack(x32, qparams)
    low_rank = []
    rank = codec.rank_for(tokens, heads * dim)
    if (rank > 0 and rank * (tokens + heads * dim) < tokens * heads * dim) if padding is None \
            else (codec.rank or codec.rank_fraction):
        residual = (x32 - unpack_dequantize(codes, qparams, torch.float32)).transpose(1, 2).reshape(batch, tokens, -1)
        if index is not None:
            residual = residual.reshape(batch, -1).scatter(1, index.long(), 0.0).reshape(batch, tokens, -1)
        factors = _low_rank_factors(residual, codec, padding)
        if factors is not None:
            low_rank = [(0, factors[0].to(x.dtype), factors[1].to(x.dtype))]
    return Segment(codes, qparams, values, index, low_rank, codec.exact_outliers)


def _low_rank_factors(residual: torch.Tensor, codec: KVCodec, padding: list[int] | None
                      ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """GEAR's rank-r factors of the quantization residual ``[batch, tokens, H·D]``, stored only where
    smaller than the values they correct. With ``padding``, each sequence's factors come from its
    real tokens alone (its rank and the size rule too), zero on its padding rows and in columns
    beyond its own rank, so a sequence gets the factors it would get alone."""
    batch, tokens, width = residual.shape
    if padding is None:
        rank = codec.rank_for(tokens, width)
        if rank > 0 and rank * (tokens + width) < tokens * width:
            return low_rank_approximation(residual, rank)
        return None
    rows = []
    for b, skip in enumerate(padding):
        real = tokens - min(skip, tokens)
        rank = codec.rank_for(real, width)
        rows.append(low_rank_approximation(residual[b:b + 1, tokens - real:], rank)
                    if real and rank > 0 and rank * (real + width) < real * width else None)
    ranks = [0 if row is None else row[0].shape[2] for row in rows]
    if not any(ranks):
        return None
    q = residual.new_zeros(batch, tokens, max(ranks))
    p = residual.new_zeros(batch, width, max(ranks))
    for b, row in enumerate(rows):
        if row is not None:
            q[b, tokens - row[0].shape[1]:, :ranks[b]] = row[0][0]
            p[b, :, :ranks[b]] = row[1][0]
    return q, p


class QuantizedStream:
    """Compressed tokens of one of keys/values: segments that merge whenever their layouts match."""

    def __init__(self, codec: KVCodec) -> None:
        self.codec = codec
        self.segments: list[Segment] = []

    def append(self, x: torch.Tensor, *, check_finite: bool = True, padding: list[int] | None = None) -> None:
        segment = compress(x, self.codec, check_finite=check_finite, padding=padding)
        if self.segments and self.segments[-1].can_merge(segment):
            self.segments[-1] = self.segments[-1].merge(segment)
        else:
            self.segments.append(segment)

    def read(self, window: torch.Tensor) -> torch.Tensor:
        """All tokens: the reconstructed segments followed by the full-precision ``window``."""
        compressed = sum(segment.tokens for segment in self.segments)
        batch, heads, recent, dim = window.shape
        out = torch.empty(batch, heads, compressed + recent, dim, dtype=window.dtype, device=window.device)
        start = 0
        for segment in self.segments:
            segment.dequantize_into(out[:, :, start:start + segment.tokens])
            start += segment.tokens
        out[:, :, compressed:] = window
        return out

    def nbytes_by_part(self) -> dict[str, int]:
        return _sum_parts(segment.nbytes_by_part() for segment in self.segments)

    def select_batch(self, index: torch.Tensor) -> None:
        self.segments = [segment.select_batch(index) for segment in self.segments]


class QuantizedKVLayer(DynamicLayer):
    """One attention layer's cache: packed compressed history + a full-precision recent window.

    ``self.keys``/``self.values`` (DynamicLayer's tensors) hold only the full-precision window.
    """

    is_croppable = False

    def __init__(self, spec: KVQuantSpec, layer_idx: int | None = None) -> None:
        if not isinstance(spec, KVQuantSpec):
            raise TypeError(f"invalid spec={spec!r}: expected a KVQuantSpec (e.g. KVQuantSpec.from_id('kv4-uniform'))")
        super().__init__()
        self.spec = spec
        self.layer_idx = layer_idx  # only for error messages
        self.cumulative_length = 0
        self.update_calls = 0  # 0 while prefilling; n during the n-th decode step
        self.key_stream: QuantizedStream | None = None
        self.value_stream: QuantizedStream | None = None
        # set by QuantizedKVCache for a model that runs quant.packed_attention: decode steps then
        # hand the packed history to the attention kernels instead of dequantizing it
        self.packed_attention = False
        self.padding: list[int] | None = None   # left padding per sequence (QuantizedKVCache.set_padding)
        # finite checks: at each compression on CPU; on CUDA recorded on the device (no sync per step)
        # and raised by QuantizedKVCache.check_finite once the generate call is done
        self.defer_checks: bool | None = None   # None: defer on CUDA only, decided at the first update
        self._deferred: list[tuple[torch.Tensor, tuple]] = []
        # KV eviction (quant.eviction): the float prompt waits in the window until select_kept's
        # positions arrive from the prefill's attention (quant.scored_attention), then what is kept
        # is stored as this layer's prompt, compressed by its spec
        self.eviction: EvictSpec | None = None
        self.awaiting_selection = False
        self.key_valid: torch.Tensor | None = None   # AdaKV: [b, Hkv, slots] real prompt entries
        self.kept_positions: torch.Tensor | None = None   # [b, Hkv, slots] prompt positions kept (eviction; to inspect)
        self.seen = 0            # tokens this layer was given (a float cache would hold them all)
        self.prompt_tokens = 0   # prompt entries before eviction, and kept (mean over sequences and heads)
        self.kept_tokens = 0.0
        if not spec.is_float:
            key_codec, value_codec = codecs_for(spec)
            self.key_stream, self.value_stream = QuantizedStream(key_codec), QuantizedStream(value_codec)

    def _tokens_to_flush(self, key_window: int, value_window: int) -> tuple[int, int]:
        """(keys, values) to compress out of full-precision windows of these lengths.

        Keys (every method) and GEAR's values: whole multiples of R (of the codec's token block
        when R = 0), leaving ``l mod R``. KIVI's values (method ``group``): a sliding window of the
        newest R tokens; older ones are compressed as they leave it (jy-yuan/KIVI
        ``models/llama_kivi.py``, ``LlamaAttention_KIVI.forward``)."""
        if self.key_stream is None:
            return 0, 0
        residual = self.spec.residual_length
        unit = residual or self.key_stream.codec.token_multiple
        keys = key_window // unit * unit
        if self.spec.method == "group":
            return keys, max(value_window - residual, 0)
        return keys, value_window // unit * unit

    @property
    def _name(self) -> str:
        return f"layer {'?' if self.layer_idx is None else self.layer_idx} ({self.spec.id})"

    def _check_states(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Shapes and dtypes, before anything is stored; shape checks cost no device sync."""
        for name, t in (("key_states", key_states), ("value_states", value_states)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{self._name}: {name} must be a torch.Tensor, got {type(t).__name__}")
            if t.dim() != 4 or not t.is_floating_point():
                raise ValueError(f"{self._name}: {name} must be a float [batch, heads, tokens, head_dim] tensor, "
                                 f"got {t.dtype} of shape {tuple(t.shape)}")
        if key_states.shape[:3] != value_states.shape[:3]:
            raise ValueError(f"{self._name}: key_states shape {tuple(key_states.shape)} and value_states shape "
                             f"{tuple(value_states.shape)} differ in batch, heads or tokens; they must agree")
        if self.is_initialized:
            for name, new, cached in (("key_states", key_states, self.keys), ("value_states", value_states, self.values)):
                if new.shape[:2] != cached.shape[:2] or new.shape[3] != cached.shape[3]:
                    raise ValueError(f"{self._name}: {name} shape {tuple(new.shape)} does not continue the cached "
                                     f"shape {(*cached.shape[:2], self.cumulative_length, cached.shape[3])} "
                                     "(batch, heads and head_dim must stay the same)")
        elif self.spec.method == "group" and not self.spec.is_float and value_states.shape[3] % self.spec.group_size:
            raise ValueError(f"{self._name}: group_size={self.spec.group_size} must divide the value head_dim="
                             f"{value_states.shape[3]} (KIVI groups value channels)")

    def _non_finite_error(self, name: str, described: str, calls: int, cached: int, position: int, b: int,
                          h: int) -> NonFiniteError:
        step = "prefill" if calls == 0 else f"decode step {calls}"
        return NonFiniteError(
            f"{self._name}: {name} hold {described} at update call {calls} ({step}, {cached} tokens cached "
            f"before it); first at token position {position} (batch {b}, head {h}). Quantizing NaN/inf would "
            "corrupt every token of its block, so the cache refuses it; check the model's activations or dtype "
            "overflow")

    def _check_finite(self, keys: torch.Tensor, first_key: int, values: torch.Tensor, first_value: int) -> None:
        """Tokens about to be compressed must be finite; one sync for keys and values together.
        ``first_key``/``first_value``: sequence position of the first token of each. Deferred (see
        ``defer_checks``): the check is recorded on the device and raised by :meth:`raise_deferred`."""
        if self.defer_checks:
            bad = [~torch.isfinite(t) for t in (keys, values)]
            stats = torch.stack([x for flags in bad for x in (flags.sum(), flags.flatten().to(torch.uint8).argmax())])
            self._deferred.append((stats, (self.update_calls, self.cumulative_length, first_key, first_value,
                                           tuple(keys.shape), tuple(values.shape))))
            return
        if bool(torch.isfinite(keys).all() & torch.isfinite(values).all()):
            return
        for name, t, first_token in (("keys", keys, first_key), ("values", values, first_value)):
            bad = ~torch.isfinite(t)
            if bad.any():
                b, h, tok, _ = (int(i) for i in bad.nonzero()[0])
                raise self._non_finite_error(name, describe_non_finite(t), self.update_calls, self.cumulative_length,
                                             first_token + tok, b, h)

    def raise_deferred(self) -> None:
        """Raise the first deferred finite check that failed, as the immediate check would have named
        it (one device sync for the whole generate call); the record is cleared either way."""
        deferred, self._deferred = self._deferred, []
        if not deferred:
            return
        rows = torch.stack([stats for stats, _ in deferred]).tolist()
        for (k_count, k_first, v_count, v_first), (_, meta) in zip(rows, deferred):
            calls, cached, first_key, first_value, key_shape, value_shape = meta
            for name, count, first, shape, start in (("keys", k_count, k_first, key_shape, first_key),
                                                     ("values", v_count, v_first, value_shape, first_value)):
                if count:
                    b, h, tok, _ = (int(i) for i in torch.unravel_index(torch.tensor(first), shape))
                    numel = shape[0] * shape[1] * shape[2] * shape[3]
                    described = f"{count} NaN/inf value{'s' if count > 1 else ''} of {numel}"
                    raise self._non_finite_error(name, described, calls, cached, start + tok, b, h)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
               ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_states(key_states, value_states)
        if self.awaiting_selection:
            raise RuntimeError(f"{self._name}: KV eviction {self.eviction.id} never received the prefill's attention; "
                               "generate inside quant.scored_attention.observing_attention (the model's attention "
                               "must go through transformers' AttentionInterface)")
        self.seen += key_states.shape[-2]
        if not self.is_initialized:
            self.prompt_tokens = self.kept_tokens = key_states.shape[-2]
        if self.eviction is not None and not self.is_initialized and key_states.shape[-2] > 1:
            self.lazy_initialization(key_states, value_states)
            self.keys, self.values = key_states.clone(), value_states.clone()
            self.cumulative_length = key_states.shape[-2]
            self.awaiting_selection = True
            return self.keys, self.values
        return self._store(key_states, value_states)

    def keep(self, positions: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Keep the held prompt's entries at ``positions`` ``[b, Hkv, n]`` (``valid``: which of them are
        real, AdaKV's padding aside) and store them as the prompt, compressed by the layer's spec."""
        index = positions[..., None].expand(-1, -1, -1, self.keys.shape[-1])
        keys, values = self.keys.gather(2, index), self.values.gather(2, index)
        self.awaiting_selection, self.key_valid, self.kept_positions = False, valid, positions
        self.kept_tokens = positions.shape[-1] if valid is None else valid.sum().item() / valid[..., 0].numel()
        self.keys = self.values = None
        self.is_initialized, self.cumulative_length, self.update_calls = False, 0, 0
        self._store(keys, values)

    def key_bias(self, keys: torch.Tensor) -> torch.Tensor | None:
        """AdaKV's pad slots masked: ``[b, Hkv, keys]`` additive bias (0 / -inf), None without padding."""
        if self.key_valid is None:
            return None
        bias = torch.zeros(keys.shape[:3], dtype=torch.float32, device=keys.device)
        bias[..., :self.key_valid.shape[-1]].masked_fill_(~self.key_valid, float("-inf"))
        return bias

    def _store(self, key_states: torch.Tensor, value_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first_call = not self.is_initialized
        if first_call:
            keys, values = key_states.clone(), value_states.clone()  # as DynamicLayer, never alias the input
        else:
            keys = torch.cat([self.keys, key_states], dim=-2)
            values = torch.cat([self.values, value_states], dim=-2)
        flush_k, flush_v = self._tokens_to_flush(keys.shape[-2], values.shape[-2])
        before = 0 if first_call else self.cumulative_length
        first_key = before + key_states.shape[-2] - keys.shape[-2]       # sequence position of keys[:, :, 0]
        first_value = before + value_states.shape[-2] - values.shape[-2]
        if self.defer_checks is None:
            self.defer_checks = keys.device.type == "cuda"
        if flush_k or flush_v:  # check before anything is stored, so an error leaves the cache as it was
            self._check_finite(keys[:, :, :flush_k], first_key, values[:, :, :flush_v], first_value)
        if first_call:
            self.lazy_initialization(key_states, value_states)
        self.update_calls += 1
        self.cumulative_length += key_states.shape[-2]
        if self.key_stream is None:
            self.keys, self.values = keys, values
            return keys, values
        decode = not first_call
        if decode:
            # KIVI and GEAR's simulated mode: the new token is attended in full precision at its
            # own step and compressed afterwards (for the next steps).
            if self.packed_attention and key_states.shape[-2] == 1:
                hand_off(PackedKV(list(self.key_stream.segments), list(self.value_stream.segments), keys, values))
                out = (keys, values)
            else:
                out = (self.key_stream.read(keys), self.value_stream.read(values))
        if flush_k:
            self.key_stream.append(keys[:, :, :flush_k], check_finite=False, padding=self._padding_in(first_key, flush_k))
        if flush_v:
            self.value_stream.append(values[:, :, :flush_v], check_finite=False,
                                     padding=self._padding_in(first_value, flush_v))
        self.keys, self.values = keys[:, :, flush_k:], values[:, :, flush_v:]
        if decode:
            return out
        if not self.spec.quantize_prefill:
            return key_states, value_states
        return self.key_stream.read(self.keys), self.value_stream.read(self.values)

    def _padding_in(self, first: int, count: int) -> list[int] | None:
        """Per sequence, how many of the ``count`` tokens from sequence position ``first`` are padding."""
        if self.padding is None:
            return None
        return [min(max(pad - first, 0), count) for pad in self.padding]

    def get_seq_length(self) -> int:
        return self.cumulative_length

    def reset(self) -> None:
        super().reset()
        self.cumulative_length = 0
        self.update_calls = 0
        self._deferred = []
        self.seen, self.awaiting_selection, self.key_valid, self.kept_positions = 0, False, None, None
        self.prompt_tokens, self.kept_tokens = 0, 0.0
        for stream in (self.key_stream, self.value_stream):
            if stream is not None:
                stream.segments = []

    def _select_batch(self, index: torch.Tensor) -> None:
        if not self.is_initialized:
            return
        if self.padding is not None:
            self.padding = [self.padding[i] for i in index.tolist()]
        if self.key_valid is not None:
            self.key_valid = self.key_valid.index_select(0, index.to(self.key_valid.device))
        self.keys = self.keys.index_select(0, index.to(self.keys.device))
        self.values = self.values.index_select(0, index.to(self.values.device))
        for stream in (self.key_stream, self.value_stream):
            if stream is not None:
                stream.select_batch(index)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._select_batch(beam_idx)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._select_batch(torch.as_tensor(indices, device=self.device))

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.is_initialized:
            batch = self.keys.shape[0]
            self._select_batch(torch.arange(batch, device=self.device).repeat_interleave(repeats))

    def crop(self, tokens_to_remove: int) -> None:
        raise ValueError(f"the quantized KV cache ({self.spec.id}) cannot drop tokens; assisted and "
                         "speculative decoding are not supported with it")

    def nbytes_by_part(self) -> dict[str, int]:
        parts = _sum_parts(stream.nbytes_by_part() for stream in (self.key_stream, self.value_stream)
                           if stream is not None)
        window = 0 if not self.is_initialized else _tensor_bytes(self.keys) + _tensor_bytes(self.values)
        if self.key_valid is not None and window:   # AdaKV (float only): the real entries, not the pad slots
            pad = int((~self.key_valid).sum())
            window -= pad * (self.keys.shape[-1] * self.keys.element_size() + self.values.shape[-1] * self.values.element_size())
        return {**parts, "residual": window}


class QuantizedKVCache(Cache):
    """transformers ``Cache`` of QuantizedKVLayers, one per decoder layer of ``config``.

    ``model.generate(..., cache=QuantizedKVCache(spec, model.config))`` (``past_key_values=`` in
    older transformers). Invalid combinations fail here, not mid-generation.
    """

    def __init__(self, spec: KVQuantSpec, config, layers: LayerSelection | None = None,
                 rest: KVQuantSpec | None = None, *, defer_checks: bool | None = None,
                 eviction: EvictSpec | None = None) -> None:
        """``layers``: use ``spec`` on these decoder layers only (quant.layers); the others use
        ``rest`` (default: full precision, as DynamicCache keeps them) — mixed precision such as
        kv2 on layers 0-3 and kv4 elsewhere. ``defer_checks``: record the finite checks on the
        device and raise them at :meth:`check_finite` (default: on CUDA, where a check at every
        compression would sync the device at every decode step)."""
        # eviction (quant.eviction): every layer keeps part of its prompt, chosen from the prefill's
        # attention; generate inside observing_attention(model, [cache.select], [cache.key_bias])
        rest = KVQuantSpec() if rest is None else rest
        for given in (spec, rest):
            if not isinstance(given, KVQuantSpec):
                raise TypeError(f"invalid spec={given!r}: expected a KVQuantSpec (e.g. KVQuantSpec.from_id('kv4-uniform'))")
        text_config = config.get_text_config(decoder=True)
        layer_types, _ = get_layer_types_and_kwargs(text_config)
        unsupported = set(layer_types) - {"full_attention", "sliding_attention"}
        if unsupported:
            raise ValueError(f"QuantizedKVCache supports full-attention and sliding-window layers; this model has "
                             f"{sorted(unsupported)}")
        # windowed layers (Gemma 3's local layers) get their spec like any other and keep every token:
        # the model's sliding-window mask hides what falls outside the window, so answers are those of a
        # model whose windowed layers read compressed keys/values; bytes count every token kept
        head_dim = getattr(text_config, "head_dim", None) or text_config.hidden_size // text_config.num_attention_heads
        for given in (spec, rest):
            if given.method == "group" and head_dim % given.group_size:
                raise ValueError(f"invalid group_size={given.group_size} for {given.id}: must divide the model's "
                                 f"head_dim={head_dim} (KIVI groups value channels)")
        self.spec = spec
        count = text_config.num_hidden_layers
        chosen = range(count) if layers is None else layers.layers(count)
        super().__init__(layers=[QuantizedKVLayer(spec if i in chosen else rest, i) for i in range(count)])
        if eviction is not None and not isinstance(eviction, EvictSpec):
            raise TypeError(f"invalid eviction={eviction!r}: expected an EvictSpec (e.g. EvictSpec.from_id('evict-snapkv-b40'))")
        if eviction is not None and "sliding_attention" in layer_types:
            raise ValueError(f"{eviction.id}: this model has sliding-window layers, whose mask counts cache slots, not "
                             "positions; after eviction the two differ, so KV eviction is not supported for it")
        if eviction is not None and eviction.method == "adakv" and not (spec.is_float and rest.is_float):
            raise ValueError(f"{eviction.id} with {spec.id}: AdaKV's heads keep different numbers of entries, which "
                             "this cache holds padded to the widest head; its bytes are exact only for a float cache "
                             "(the pad slots are left out), so AdaKV does not compose with KV quantization here "
                             "(snapkv, pyramidkv, h2o and streaming do)")
        self.eviction = eviction
        for layer in self.layers:
            # an evicting layer decodes through the dequantized read (its AdaKV padding needs a key bias)
            layer.packed_attention = (eviction is None
                                      and getattr(text_config, "_attn_implementation", None) == PACKED_ATTENTION)
            layer.defer_checks = defer_checks
            layer.eviction = eviction

    def set_padding(self, attention_mask: torch.Tensor | None) -> None:
        """The batch's left padding, from the generate call's ``attention_mask`` ``[batch, tokens]``
        (0 = padding): padded positions then enter no compression statistic, so a sequence's cache
        does not depend on its batch mates (see :func:`compress`). Call before the prefill."""
        if attention_mask is None:
            padding = None
        else:
            lengths = attention_mask.sum(dim=1)
            padding = (attention_mask.shape[1] - lengths).tolist()   # one sync, before generation
            left = attention_mask[:, -1].all() if attention_mask.shape[1] else True
            if not bool(left):
                raise ValueError("set_padding: the attention mask is not left-padded (a sequence's last position "
                                 "is padding); the quantized cache needs left padding (padding_side='left')")
        for layer in self.layers:
            layer.padding = padding

    def select(self, layer_idx: int, query: torch.Tensor, key: torch.Tensor, scaling: float) -> None:
        """The prefill observer (quant.scored_attention): evict from layer ``layer_idx`` by its rule."""
        layer = self.layers[layer_idx]
        if layer.awaiting_selection and key.shape[2] == layer.prompt_tokens:
            layer.keep(*select_kept(self.eviction, query, key, scaling, layer_idx, len(self.layers)))

    def key_bias(self, layer_idx: int, keys: torch.Tensor) -> torch.Tensor | None:
        """The decode key bias (quant.scored_attention): AdaKV's pad slots masked."""
        layer = self.layers[layer_idx]
        return layer.key_bias(keys) if keys.shape[2] == layer.get_seq_length() else None

    def decoded_tokens(self) -> int:
        """Tokens cached after the prompt (one per decode step but the last)."""
        layer = self.layers[0]
        return layer.seen - layer.prompt_tokens

    def kept_by_layer(self) -> list[float]:
        """Per layer, the prompt entries it stores (mean over sequences and KV heads): all it was given
        (fewer than the prompt where visual tokens were pruned before it), less what eviction dropped."""
        return [float(layer.kept_tokens) for layer in self.layers]

    def check_finite(self) -> None:
        """Raise the first NaN/inf found in tokens compressed during deferred checks (on CUDA: every
        generate call ends with this, one sync; see QuantizedKVLayer.defer_checks)."""
        for layer in self.layers:
            layer.raise_deferred()

    def nbytes_by_part(self) -> dict[str, int]:
        return _sum_parts(layer.nbytes_by_part() for layer in self.layers)

    def nbytes(self) -> int:
        return sum(self.nbytes_by_part().values())
