"""Triton kernels for the quantized KV cache's block codec: fused quantize+pack and unpack+dequantize.

Both are bit-identical to the torch path they replace (the reference in quant/affine.py and
quant/packing.py) for every 4-D block layout the cache uses, and any other whose block dims are
1 or divide the dim (``KVCodec.block_size``: tensor, token, headrow, channel_group, token_group):

- :func:`quantize_pack` equals ``pack(quantize(x.float(), qparams), bits)`` byte for byte. The
  parameters are still chosen in torch (``choose_qparams``, a reduction); the kernel fuses the
  elementwise quantization with the packing, so the uint8 codes tensor is never written. Each
  program writes packed bytes and, for each byte, computes the (up to 4) codes overlapping it.
- :func:`unpack_dequantize` equals ``dequantize(unpack(codes), qparams, dtype)`` (``out=`` too).

Arithmetic, matched to torch's: x in float32, scale/zero read in their stored dtype and widened
to float32, ``safe = scale or 1``, ``q = round((x - zero) / safe)`` with IEEE division
(``div_rn``: plain ``/`` is approximate on GPU) and ties to even, clamped to ``[0, 2^b - 1]``
(symmetric: ``round(x / safe)`` clamped to ``[-2^(b-1), 2^(b-1) - 1]``, plus ``2^(b-1)``).
Dequantization is ``fma(q, scale, zero)``: torch's ``addcmul`` rounds once on CPU (and on CUDA);
symmetric ``(q - 2^(b-1)) * scale``, or ``q * scale - 2^(b-1) * scale`` when ``out`` is float32,
as affine.dequantize does there. Kernels launch with ``enable_fp_fusion=False`` so the GPU
compiler cannot contract that mul/sub into an fma.

bfloat16 is read and written through int16 views with bit arithmetic (widening is a 16-bit
shift; narrowing rounds to nearest even): Triton's interpreter converts float32<->bfloat16
wrongly (truncates, mishandles subnormals), and the bit form is exact on GPU as well.
"""

from __future__ import annotations

import functools
import itertools

import torch
import triton
import triton.language as tl

from ..affine import NonFiniteError, QParams, _check_qparams, _check_tensor, describe_non_finite
from ..packing import PackedCodes, packed_row_bytes
from .triton_common import FLOAT_DTYPES, POINTER_TYPES, Specialisation, load_codes, round_half_even

_MAX_TILE = 2048  # elements (bytes or codes) per program: few programs for the interpreter, full tiles on GPU
_MIN_BLOCK_C, _MAX_BLOCK_C = 16, 128  # bytes or codes of a row per program
KERNEL_BITS = (2, 3, 4, 8)


@triton.jit
def _load_f32(ptr, mask, IS_BF16: tl.constexpr):
    """float32 values at ``ptr``; bfloat16 tensors come as int16 views (exact widening by shift)."""
    if IS_BF16:
        raw = tl.load(ptr, mask=mask, other=0)
        return (raw.to(tl.int32) << 16).to(tl.float32, bitcast=True)
    else:
        return tl.load(ptr, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _bf16_bits(v):
    """float32 -> bfloat16 bit pattern (int16), rounding to nearest even (finite values)."""
    bits = v.to(tl.uint32, bitcast=True)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return (rounded >> 16).to(tl.uint16).to(tl.int16, bitcast=True)


@triton.jit
def _quantize_pack_kernel(x_ptr, scale_ptr, zero_ptr, out_ptr,
                          R, H, T, D, row_bytes,
                          sxb, sxh, sxt, sxd,
                          BB, BH, BT, BD, PH, PT, PD,
                          BITS: tl.constexpr, NCODES: tl.constexpr, SYMMETRIC: tl.constexpr,
                          X_BF16: tl.constexpr, S_BF16: tl.constexpr, Z_BF16: tl.constexpr,
                          BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)  # flattened (b, h, t)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)  # output byte within the packed row
    row_ok = rows < R
    t = rows % T
    h = (rows // T) % H
    b = rows // (T * H)
    x_row = b.to(tl.int64) * sxb + h.to(tl.int64) * sxh + t.to(tl.int64) * sxt
    p_row = (((b // BB) * PH + h // BH) * PT + t // BT).to(tl.int64) * PD
    first = (cols * 8) // BITS  # first code with a bit in this byte
    # int32 zeros without tl.zeros: a @jit helper of triton.language, which the interpreter cannot call
    # when triton was imported before TRITON_INTERPRET was set (only this kernel's own helpers are then
    # interpreted); builtins work either way.
    acc = rows[:, None] * 0 + cols[None, :] * 0
    # before the loop: a constexpr assigned inside tl.static_range is reassigned per unrolled step,
    # which the compiler rejects (the interpreter does not)
    half: tl.constexpr = 1 << (BITS - 1)
    for k in tl.static_range(NCODES):
        d = first + k
        start = d * BITS - cols * 8  # code's first bit relative to the byte's: in (-BITS, 8) when it overlaps
        ok = row_ok[:, None] & ((d < D) & (start < 8))[None, :]
        x = _load_f32(x_ptr + x_row[:, None] + d.to(tl.int64)[None, :] * sxd, ok, X_BF16)
        p = p_row[:, None] + (d // BD)[None, :]
        scale = _load_f32(scale_ptr + p, ok, S_BF16)
        safe = tl.where(scale == 0.0, 1.0, scale)
        if SYMMETRIC:
            q = round_half_even(tl.math.div_rn(x, safe))
            q = tl.minimum(tl.maximum(q, -half), half - 1) + half
        else:
            zero = _load_f32(zero_ptr + p, ok, Z_BF16)
            q = round_half_even(tl.math.div_rn(x - zero, safe))
            q = tl.minimum(tl.maximum(q, 0.0), (1 << BITS) - 1)
        code = tl.where(ok, q.to(tl.int32), 0)
        shift = start[None, :]
        acc = acc | ((code << tl.maximum(shift, 0)) >> tl.maximum(-shift, 0))
    out_ok = row_ok[:, None] & (cols < row_bytes)[None, :]
    tl.store(out_ptr + rows.to(tl.int64)[:, None] * row_bytes + cols[None, :], (acc & 0xFF).to(tl.uint8),
             mask=out_ok)


@triton.jit
def _unpack_dequantize_kernel(codes_ptr, scale_ptr, zero_ptr, out_ptr,
                              R, H, T, D, row_bytes,
                              scb, sch, sct,
                              sob, soh, sot, sod,
                              BB, BH, BT, BD, PH, PT, PD,
                              BITS: tl.constexpr, SYMMETRIC: tl.constexpr, SYM_SPLIT: tl.constexpr,
                              S_BF16: tl.constexpr, Z_BF16: tl.constexpr, OUT_BF16: tl.constexpr,
                              BLOCK_R: tl.constexpr, BLOCK_C: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    d = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    row_ok = rows < R
    t = rows % T
    h = (rows // T) % H
    b = rows // (T * H)
    ok = row_ok[:, None] & (d < D)[None, :]
    c_row = b.to(tl.int64) * scb + h.to(tl.int64) * sch + t.to(tl.int64) * sct
    code = load_codes(codes_ptr + c_row[:, None], d[None, :], row_bytes, ok, BITS).to(tl.float32)
    p = (((b // BB) * PH + h // BH) * PT + t // BT).to(tl.int64)[:, None] * PD + (d // BD)[None, :]
    scale = _load_f32(scale_ptr + p, ok, S_BF16)
    if SYMMETRIC:
        half: tl.constexpr = 1 << (BITS - 1)
        if SYM_SPLIT:  # affine.dequantize's float32 out: mul(q, scale).sub_(scale * half)
            val = code * scale - scale * half
        else:
            val = (code - half) * scale
    else:
        val = tl.fma(code, scale, _load_f32(zero_ptr + p, ok, Z_BF16))  # torch.addcmul rounds once
    o = (b.to(tl.int64) * sob + h.to(tl.int64) * soh + t.to(tl.int64) * sot)[:, None] + d.to(tl.int64)[None, :] * sod
    if OUT_BF16:
        tl.store(out_ptr + o, _bf16_bits(val), mask=ok)
    else:
        tl.store(out_ptr + o, val.to(out_ptr.dtype.element_ty), mask=ok)


def _check_4d(name: str, shape: tuple[int, ...], fn: str) -> None:
    if len(shape) != 4:
        raise ValueError(f"invalid {name} shape={tuple(shape)}: {fn} takes a 4-D "
                         "[batch, heads, tokens, head_dim] tensor")


def _check_dtype(name: str, t: torch.Tensor) -> None:
    """The kernels run float16, bfloat16 and float32 tensors (their ``specialisations()``)."""
    if t.dtype not in FLOAT_DTYPES:
        raise ValueError(f"invalid {name} dtype={t.dtype}: the Triton KV kernels take {FLOAT_DTYPES}")


def _kernel_view(t: torch.Tensor) -> torch.Tensor:
    """The tensor to hand the kernel: bfloat16 travels as int16 bits (see module doc)."""
    return t.view(torch.int16) if t.dtype == torch.bfloat16 else t


def _pointer(dtype: torch.dtype) -> str:
    """Triton's element type of :func:`_kernel_view` of a ``dtype`` tensor."""
    return POINTER_TYPES[torch.int16 if dtype == torch.bfloat16 else dtype]


def _param_args(qparams: QParams, shape: tuple[int, ...], device: torch.device) -> tuple:
    """Contiguous scale/zero (kernel views; zero is scale when symmetric), block dims and parameter dims."""
    for part, t in (("scale", qparams.scale), ("zero", qparams.zero)):
        if t is not None:
            _check_tensor(f"qparams.{part}", t, floating=True)
            _check_dtype(f"qparams.{part}", t)
            if t.device != device:
                raise ValueError(f"invalid qparams.{part} device={t.device}: must be on {device} like the data")
    if qparams.zero is not None and qparams.zero.dtype != qparams.scale.dtype:
        raise ValueError(f"invalid qparams.zero dtype={qparams.zero.dtype}: must be scale's dtype "
                         f"{qparams.scale.dtype}")
    scale = _kernel_view(qparams.scale.contiguous())
    zero = scale if qparams.zero is None else _kernel_view(qparams.zero.contiguous())  # never read when symmetric
    block = tuple(qparams.block_size)
    pdims = tuple(n // bs for n, bs in zip(shape, block))
    return scale, zero, block, pdims[1:]


def _tiles(cols: int) -> tuple[int, int]:
    """(BLOCK_R, BLOCK_C) for rows of ``cols`` bytes or codes: BLOCK_C the power of two covering
    the row, within [_MIN_BLOCK_C, _MAX_BLOCK_C], BLOCK_R the rows filling ``_MAX_TILE`` (surplus
    rows and columns are masked). Tiles depend on nothing else, so the table of specialisations
    (each compiled by tests/test_kernels_compiled.py) stays small."""
    block_c = min(max(triton.next_power_of_2(cols), _MIN_BLOCK_C), _MAX_BLOCK_C)
    return _MAX_TILE // block_c, block_c


def quantize_specialisation(x_dtype: torch.dtype, param_dtype: torch.dtype, bits: int, symmetric: bool,
                            block_c: int) -> Specialisation:
    """The variant :func:`quantize_pack` launches for ``x``/parameters of these dtypes, rows of
    ``block_c`` (from :func:`_tiles`) bytes per program."""
    block_r, block_c = _tiles(block_c)
    p = _pointer(param_dtype)
    return Specialisation(
        _quantize_pack_kernel,
        (("x_ptr", _pointer(x_dtype)), ("scale_ptr", p), ("zero_ptr", p), ("out_ptr", "u8")),
        (("BITS", bits), ("NCODES", 4 if bits == 3 else 8 // bits), ("SYMMETRIC", symmetric),
         ("X_BF16", x_dtype == torch.bfloat16), ("S_BF16", param_dtype == torch.bfloat16),
         ("Z_BF16", param_dtype == torch.bfloat16 and not symmetric), ("BLOCK_R", block_r), ("BLOCK_C", block_c)),
        (("enable_fp_fusion", False),))


def unpack_specialisation(param_dtype: torch.dtype, out_dtype: torch.dtype, bits: int, symmetric: bool,
                          split: bool, block_c: int) -> Specialisation:
    """The variant :func:`unpack_dequantize` launches: parameters in ``param_dtype``, output in
    ``out_dtype``, ``split``: the float32 ``out=`` form of symmetric dequantization."""
    block_r, block_c = _tiles(block_c)
    p = _pointer(param_dtype)
    return Specialisation(
        _unpack_dequantize_kernel,
        (("codes_ptr", "u8"), ("scale_ptr", p), ("zero_ptr", p), ("out_ptr", _pointer(out_dtype))),
        (("BITS", bits), ("SYMMETRIC", symmetric), ("SYM_SPLIT", symmetric and split),
         ("S_BF16", param_dtype == torch.bfloat16), ("Z_BF16", param_dtype == torch.bfloat16 and not symmetric),
         ("OUT_BF16", out_dtype == torch.bfloat16), ("BLOCK_R", block_r), ("BLOCK_C", block_c)),
        (("enable_fp_fusion", False),))


_BLOCK_CS = tuple(1 << i for i in range(_MIN_BLOCK_C.bit_length() - 1, _MAX_BLOCK_C.bit_length()))  # _tiles' BLOCK_Cs


@functools.cache
def specialisations() -> tuple[Specialisation, ...]:
    """Every variant :func:`quantize_pack` and :func:`unpack_dequantize` can launch."""
    quantize = (quantize_specialisation(x, p, bits, sym, c) for x, p, bits, sym, c
                in itertools.product(FLOAT_DTYPES, FLOAT_DTYPES, KERNEL_BITS, (False, True), _BLOCK_CS))
    unpack = (unpack_specialisation(p, o, bits, sym, split, c) for p, o, bits, sym, split, c
              in itertools.product(FLOAT_DTYPES, FLOAT_DTYPES, KERNEL_BITS, (False, True), (False, True), _BLOCK_CS)
              if not split or (sym and o == torch.float32))
    return tuple(itertools.chain(quantize, unpack))


@functools.cache
def _table() -> frozenset[Specialisation]:
    """specialisations() as a set: what a launch is checked against."""
    return frozenset(specialisations())


def quantize_pack(x: torch.Tensor, qparams: QParams, *, check_finite: bool = True) -> PackedCodes:
    """``pack(quantize(x.float(), qparams), qparams.bits)`` in one kernel, byte for byte.

    ``x``: float ``[batch, heads, tokens, head_dim]``, may be non-contiguous (a slice of the cache
    window); ``qparams`` from ``choose_qparams`` on it (any 4-D block whose dims are 1 or divide
    the dim). Skipping the uint8 codes tensor saves a write and a read of it per compression.
    Raises ValueError for non-4-D or non-float ``x``, bad bits or mismatched parameters, and
    :class:`~quant.affine.NonFiniteError` for NaN/inf in ``x`` (``check_finite=False`` skips).
    """
    _check_tensor("x", x, floating=True)
    _check_dtype("x", x)
    _check_4d("x", tuple(x.shape), "quantize_pack")
    _check_qparams("x", x, qparams)
    if check_finite and not bool(torch.isfinite(x).all()):
        raise NonFiniteError(f"x (shape {tuple(x.shape)}) has {describe_non_finite(x)}: cannot quantize NaN/inf")
    bits = qparams.bits
    batch, heads, tokens, dim = x.shape
    row_bytes = packed_row_bytes(dim, bits)
    out = torch.empty(batch, heads, tokens, row_bytes, dtype=torch.uint8, device=x.device)
    rows = batch * heads * tokens
    if rows == 0 or row_bytes == 0:
        return PackedCodes(out, bits, dim)
    scale, zero, block, (ph, pt, pd) = _param_args(qparams, tuple(x.shape), x.device)
    block_r, block_c = _tiles(row_bytes)
    grid = (triton.cdiv(rows, block_r), triton.cdiv(row_bytes, block_c))
    spec = quantize_specialisation(x.dtype, qparams.scale.dtype, bits, qparams.zero is None, block_c)
    spec.launch(_table(), grid,
                _kernel_view(x), scale, zero, out, rows, heads, tokens, dim, row_bytes, *x.stride(), *block, ph, pt, pd)
    return PackedCodes(out, bits, dim)


def unpack_dequantize(codes: PackedCodes, qparams: QParams, dtype: torch.dtype | None = None, *,
                      out: torch.Tensor | None = None) -> torch.Tensor:
    """``dequantize(unpack(codes), qparams, dtype, out=out)`` in one kernel, bit for bit.

    Reads the packed bytes directly (no uint8 codes tensor, no float32 temporary): the cache's
    read path runs this for every compressed segment at every decode step. ``dtype`` defaults to
    the parameters' dtype; ``out`` (``[batch, heads, tokens, head_dim]``, any float dtype, may be
    a slice of a larger tensor) receives the result instead, as in affine.dequantize.
    """
    if not isinstance(codes, PackedCodes):
        raise TypeError(f"invalid codes: expected PackedCodes (from pack/quantize_pack), got {type(codes).__name__}")
    data = codes.data
    _check_tensor("codes.data", data, dtype=torch.uint8)
    _check_4d("codes", tuple(data.shape), "unpack_dequantize")
    row_bytes = packed_row_bytes(codes.length, codes.bits)  # validates bits and length
    if data.shape[-1] != row_bytes:
        raise ValueError(f"invalid codes.data shape={tuple(data.shape)}: {codes.length} codes at bits={codes.bits} "
                         f"take {row_bytes} bytes per row, not {data.shape[-1]}")
    shape = codes.shape
    if qparams.bits != codes.bits:
        raise ValueError(f"invalid qparams.bits={qparams.bits}: codes were packed at bits={codes.bits}")
    _check_qparams("codes", torch.empty(shape, device="meta"), qparams)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"invalid dtype={dtype!r}: must be a floating-point torch.dtype")
    split = out is not None and out.dtype == torch.float32  # affine.dequantize's float32 ``out`` branch
    if out is None:
        out = torch.empty(shape, dtype=dtype or qparams.scale.dtype, device=data.device)
    else:
        _check_tensor("out", out, floating=True)
        _check_dtype("out", out)
        if tuple(out.shape) != tuple(shape):
            raise ValueError(f"invalid out shape={tuple(out.shape)}: must equal codes shape {tuple(shape)}")
        if out.device != data.device:
            raise ValueError(f"invalid out device={out.device}: must be on {data.device} like the codes")
    batch, heads, tokens, dim = shape
    rows = batch * heads * tokens
    if rows == 0 or dim == 0:
        return out
    if data.stride(-1) != 1:
        data = data.contiguous()
    scale, zero, block, (ph, pt, pd) = _param_args(qparams, tuple(shape), data.device)
    block_r, block_c = _tiles(dim)
    grid = (triton.cdiv(rows, block_r), triton.cdiv(dim, block_c))
    spec = unpack_specialisation(qparams.scale.dtype, out.dtype, codes.bits, qparams.zero is None, split, block_c)
    spec.launch(_table(), grid,
                data, scale, zero, _kernel_view(out), rows, heads, tokens, dim, row_bytes, *data.stride()[:3],
                *out.stride(), *block, ph, pt, pd)
    return out


__all__ = ["KERNEL_BITS", "quantize_pack", "quantize_specialisation", "specialisations", "unpack_dequantize",
           "unpack_specialisation"]
