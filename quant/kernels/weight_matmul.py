"""Fused dequantize-matmul for packed 4- and 8-bit group-quantized weights (QuantizedLinear on CUDA).

``packed_linear(x, codes, scale, zero, bits, group_size, in_features, bias)`` computes
``F.linear(x, dequantize(unpack(codes), qparams, x.dtype), bias)`` (quant/weights.py
``QuantizedLinear.forward``, the torch path and reference) without materialising the float
weight: every program reads a tile of packed codes, dequantizes it in float32 exactly as
quant/affine.py ``dequantize`` does (asymmetric ``code * scale + zero``, symmetric
``(code - 2^(b-1)) * scale``), rounds it to ``x``'s dtype (as ``stored_weight(x.dtype)`` does)
and feeds it to ``tl.dot`` with a float32 accumulator; the output is cast to ``x``'s dtype.

The structure is the standard Triton tiled matmul (triton-lang tutorial 03-matrix-multiplication)
with the weight operand dequantized in registers, the pattern of GPTQ-triton / AutoGPTQ's
``triton_utils/kernels.py`` ``quant_matmul_248_kernel`` (there with a per-column ``g_idx``, here
``k // group_size`` since act-order columns are stored permuted): one program per
``[BLOCK_M, BLOCK_N]`` output tile, a loop over K in ``BLOCK_K`` steps. Parameters of group
``k // group_size`` are read per element, or once per K step (a ``[1, BLOCK_N]`` row) when ``BLOCK_K`` divides the
group size, the common case (g = 32/64/128, RTN's g = in_features).

Tiles depend only on M (no autotuning): decode (M <= 16) runs a GEMV-like config (one
``BLOCK_M = 16`` row tile, the minimum ``tl.dot`` takes, wide N and K tiles so that few
programs stream the whole weight once); prefill runs a square GEMM tile that reuses each
dequantized weight tile for 64 rows. 2- and 3-bit codes stay on the torch path (:func:`supports`).

Under Triton's interpreter (triton 3.9 ``interpreter.py`` ``create_dot``) a bfloat16 ``tl.dot``
multiplies the raw uint16 storage as integers, so there (only) bf16 tiles are widened to float32
before the dot: the same products (bf16 x bf16 is exact in float32), the same float32 sum.
"""

from __future__ import annotations

import functools
import itertools

import torch
import triton
import triton.language as tl

from ..packing import packed_row_bytes
from . import interpreting
from .triton_common import FLOAT_DTYPES, POINTER_TYPES, Specialisation, load_codes

KERNEL_BITS = (4, 8)
X_DTYPES = FLOAT_DTYPES
DECODE_MAX_ROWS = 16  # rows up to which the GEMV-like config runs (one BLOCK_M = 16 tile)

# (BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages): decode streams the weight with few,
# wide programs; prefill reuses each dequantized weight tile over 64 rows.
DECODE_CONFIG = (16, 64, 128, 4, 3)
PREFILL_CONFIG = (64, 64, 64, 4, 3)
MIN_DOT = 16  # tl.dot needs every tile dim >= 16


def supports(bits: int, symmetric: bool = False) -> bool:
    """Whether :func:`packed_linear` runs a layer of ``bits`` (symmetric or not): 4 and 8 bits,
    whose codes never straddle a byte; 2/3-bit layers stay on the torch path."""
    del symmetric  # both grids are handled
    return not isinstance(bits, bool) and bits in KERNEL_BITS


def tile_config(m: int, group_size: int) -> tuple[int, int, int, int, int, bool]:
    """``(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages, GROUP_ALIGNED)`` for ``m`` input rows.

    ``BLOCK_K`` shrinks (not below 16) to a power of two dividing ``group_size`` when it can, so a
    K step stays inside one group and its parameters are one row load (``GROUP_ALIGNED``)."""
    block_m, block_n, block_k, warps, stages = DECODE_CONFIG if m <= DECODE_MAX_ROWS else PREFILL_CONFIG
    k = block_k
    while k >= MIN_DOT and group_size % k:
        k //= 2
    if k >= MIN_DOT:
        return block_m, block_n, k, warps, stages, True
    return block_m, block_n, block_k, warps, stages, False


def specialisation(x_dtype: torch.dtype, param_dtype: torch.dtype, bits: int, has_zero: bool, has_bias: bool,
                   tile: tuple[int, int, int, int, int, bool], interpreter: bool) -> Specialisation:
    """The kernel variant :func:`packed_linear` launches: ``x`` (and the output) in ``x_dtype``,
    scale/zero/bias in ``param_dtype``, ``tile`` from :func:`tile_config`; ``interpreter``: under
    Triton's interpreter (bf16 dots widened, see the module doc)."""
    block_m, block_n, block_k, warps, stages, aligned = tile
    x, p = POINTER_TYPES[x_dtype], POINTER_TYPES[param_dtype]
    return Specialisation(
        _packed_linear_kernel,
        (("x_ptr", x), ("codes_ptr", "u8"), ("scale_ptr", p), ("zero_ptr", p), ("bias_ptr", p), ("out_ptr", x)),
        (("BITS", bits), ("HAS_ZERO", has_zero), ("HAS_BIAS", has_bias), ("GROUP_ALIGNED", aligned),
         ("DOT_IN_FP32", x_dtype == torch.bfloat16 and interpreter),
         ("BLOCK_M", block_m), ("BLOCK_N", block_n), ("BLOCK_K", block_k)),
        (("num_warps", warps), ("num_stages", stages)))


@functools.cache
def specialisations(interpreter: bool = False) -> tuple[Specialisation, ...]:
    """Every variant :func:`packed_linear` can launch (on a GPU, or under the interpreter). The group
    sizes 1, 16, 32, 64, 128 reach every tile :func:`tile_config` returns: ``BLOCK_K`` is the largest
    power of two in [16, the config's BLOCK_K] dividing the group size, or the config's when none does."""
    tiles = dict.fromkeys(tile_config(m, g) for m in (1, DECODE_MAX_ROWS + 1) for g in (1, 16, 32, 64, 128))
    return tuple(specialisation(x, p, bits, zero, bias, tile, interpreter) for x, p, bits, zero, bias, tile
                 in itertools.product(X_DTYPES, X_DTYPES, KERNEL_BITS, (False, True), (False, True), tiles))


@functools.cache
def _table(interpreter: bool) -> frozenset[Specialisation]:
    """specialisations(interpreter) as a set: what a launch is checked against."""
    return frozenset(specialisations(interpreter))


@triton.jit
def _packed_linear_kernel(
    x_ptr, codes_ptr, scale_ptr, zero_ptr, bias_ptr, out_ptr,
    M, N, K, row_bytes, group_size,
    stride_xm, stride_xk, stride_cn, stride_sn, stride_sg, stride_zn, stride_zg, stride_om, stride_on,
    BITS: tl.constexpr, HAS_ZERO: tl.constexpr, HAS_BIAS: tl.constexpr, GROUP_ALIGNED: tl.constexpr,
    DOT_IN_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """out[m, n] = sum_k x[m, k] * W[n, k] (+ bias[n]), W dequantized from packed row n of codes."""
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < N
    row_ptrs = codes_ptr + offs_n[None, :].to(tl.int64) * stride_cn  # [1, BLOCK_N]: packed row of output n
    # tl.full, not tl.zeros: tl.zeros is itself @triton.jit, which the interpreter cannot run when
    # triton.language was imported before TRITON_INTERPRET was set (e.g. via torch._dynamo)
    acc = tl.full((BLOCK_M, BLOCK_N), 0.0, tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < K
        a = tl.load(x_ptr + offs_m[:, None].to(tl.int64) * stride_xm + offs_k[None, :] * stride_xk,
                    mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        w_mask = mask_k[:, None] & mask_n[None, :]
        q = load_codes(row_ptrs, offs_k[:, None], row_bytes, w_mask, BITS).to(tl.float32)  # [BLOCK_K, BLOCK_N]
        if GROUP_ALIGNED:  # the whole K step lies in group k0 // group_size: one row of parameters
            g = k0 // group_size
            s = tl.load(scale_ptr + offs_n[None, :] * stride_sn + g * stride_sg, mask=mask_n[None, :],
                        other=0.0).to(tl.float32)
            if HAS_ZERO:
                z = tl.load(zero_ptr + offs_n[None, :] * stride_zn + g * stride_zg, mask=mask_n[None, :],
                            other=0.0).to(tl.float32)
        else:
            g = offs_k[:, None] // group_size
            s = tl.load(scale_ptr + offs_n[None, :] * stride_sn + g * stride_sg, mask=w_mask,
                        other=0.0).to(tl.float32)
            if HAS_ZERO:
                z = tl.load(zero_ptr + offs_n[None, :] * stride_zn + g * stride_zg, mask=w_mask,
                            other=0.0).to(tl.float32)
        if HAS_ZERO:
            w = q * s + z  # quant/affine.py dequantize: addcmul(zero, q, scale) in float32
        else:
            w = (q - (1 << (BITS - 1))) * s
        # masked K lanes: a is 0 there (w may be the zero point), so they add nothing
        w = w.to(a.dtype)  # stored_weight(x.dtype): the weight rounded to x's dtype
        if DOT_IN_FP32:  # bf16 under the interpreter: same products, exact in float32
            acc = tl.dot(a.to(tl.float32), w.to(tl.float32), acc, input_precision="ieee")
        else:  # fp32 x: "ieee", not TF32, as torch's matmul (allow_tf32 False by default)
            acc = tl.dot(a, w, acc, input_precision="ieee")
    if HAS_BIAS:
        # F.linear adds bias.to(x.dtype): round it to the output dtype first
        bias = tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(out_ptr.dtype.element_ty)
        acc += bias.to(tl.float32)[None, :]
    out_ptrs = out_ptr + offs_m[:, None].to(tl.int64) * stride_om + offs_n[None, :] * stride_on
    tl.store(out_ptrs, acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])


def _check_param(name: str, t: torch.Tensor, shape: tuple[int, int], device: torch.device,
                 dtype: torch.dtype | None = None) -> None:
    """``t`` is a float tensor (of ``dtype``, scale's, when given) of ``shape`` on ``device``."""
    if not isinstance(t, torch.Tensor) or t.dtype not in X_DTYPES:
        raise ValueError(f"invalid {name}: expected a float tensor of a dtype in {X_DTYPES}, got "
                         f"{getattr(t, 'dtype', type(t).__name__)}")
    if dtype is not None and t.dtype != dtype:
        raise ValueError(f"invalid {name} dtype={t.dtype}: must be scale's dtype {dtype}")
    if tuple(t.shape) != shape:
        raise ValueError(f"invalid {name} shape={tuple(t.shape)}: expected {shape}")
    if t.device != device:
        raise ValueError(f"invalid {name} device={t.device}: x is on {device}")


def packed_linear(x: torch.Tensor, codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None,
                  bits: int, group_size: int, in_features: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, dequantize(unpack(codes), qparams, x.dtype), bias)`` in one Triton kernel.

    ``x``: ``[..., in_features]`` float32/float16/bfloat16; ``codes``: uint8 ``[out, row_bytes]``
    packed along in (quant/packing.py); ``scale``/``zero``: ``[out, in_features // group_size]``
    (``zero`` None for symmetric; RTN is ``group_size = in_features``); ``bias``: ``[out]`` or None.
    Returns ``[..., out]`` in ``x``'s dtype. Columns are in stored order: a GPTQ act-order caller
    permutes ``x`` by ``input_order`` first, an AWQ caller divides by ``input_scale`` first, and
    sparse outliers (method ``outlier``) are not included.
    """
    if not supports(bits):
        raise ValueError(f"invalid bits={bits!r}: packed_linear runs bits in {KERNEL_BITS}; "
                         "2- and 3-bit weights use the torch path (dequantize + F.linear)")
    if not isinstance(x, torch.Tensor) or x.dtype not in X_DTYPES:
        raise ValueError(f"invalid x dtype={getattr(x, 'dtype', type(x).__name__)}: allowed are {X_DTYPES}")
    if isinstance(in_features, bool) or not isinstance(in_features, int) or in_features < 1:
        raise ValueError(f"invalid in_features={in_features!r}: must be a positive integer")
    if x.dim() == 0 or x.shape[-1] != in_features:
        raise ValueError(f"invalid x shape={tuple(x.shape)}: the last dim must be in_features={in_features}")
    if (isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1
            or in_features % group_size):
        raise ValueError(f"invalid group_size={group_size!r}: must be a positive integer dividing "
                         f"in_features={in_features}")
    row_bytes = packed_row_bytes(in_features, bits)
    if not isinstance(codes, torch.Tensor) or codes.dtype != torch.uint8 or codes.dim() != 2:
        got = f"{getattr(codes, 'dtype', type(codes).__name__)} of shape {tuple(getattr(codes, 'shape', ()))}"
        raise ValueError(f"invalid codes: expected a uint8 [out, {row_bytes}] tensor, got {got}")
    out_features = codes.shape[0]
    if codes.shape[1] != row_bytes:
        raise ValueError(f"invalid codes shape={tuple(codes.shape)}: {in_features} codes at bits={bits} take "
                         f"{row_bytes} bytes per row")
    if codes.device != x.device:
        raise ValueError(f"invalid codes device={codes.device}: x is on {x.device}")
    n_groups = in_features // group_size
    _check_param("scale", scale, (out_features, n_groups), x.device)
    if zero is not None:
        _check_param("zero", zero, (out_features, n_groups), x.device, scale.dtype)
    if bias is not None:
        _check_param("bias", bias, (out_features,), x.device, scale.dtype)

    lead = x.shape[:-1]
    x2 = x.reshape(-1, in_features)
    m = x2.shape[0]
    out = torch.empty(m, out_features, dtype=x.dtype, device=x.device)
    if m == 0 or out_features == 0:
        return out.reshape(*lead, out_features)
    codes = codes if codes.stride(1) == 1 else codes.contiguous()  # load_codes reads bytes of a row
    tile = tile_config(m, group_size)
    grid = (triton.cdiv(m, tile[0]), triton.cdiv(out_features, tile[1]))
    z = scale if zero is None else zero  # a valid pointer; unread when HAS_ZERO is False
    b = scale if bias is None else bias
    interpreter = interpreting()
    spec = specialisation(x.dtype, scale.dtype, bits, zero is not None, bias is not None, tile, interpreter)
    spec.launch(
        _table(interpreter), grid,
        x2, codes, scale, z, b, out,
        m, out_features, in_features, row_bytes, group_size,
        x2.stride(0), x2.stride(1), codes.stride(0), scale.stride(0), scale.stride(1), z.stride(0), z.stride(1),
        out.stride(0), out.stride(1),
    )
    return out.reshape(*lead, out_features)


__all__ = ["DECODE_CONFIG", "DECODE_MAX_ROWS", "KERNEL_BITS", "PREFILL_CONFIG", "packed_linear", "specialisation",
           "specialisations", "supports", "tile_config"]
