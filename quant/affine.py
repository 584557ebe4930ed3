"""One affine quantizer over a block shape; every method in quant/ is a composition of it.

``block_size`` has the input's rank; entry ``b`` for a dimension of size ``n`` means
``b`` consecutive elements share one (scale, zero). ``n`` reduces the whole dimension,
``1`` gives every index its own parameters, a divisor of ``n`` makes groups (the layout of
torchao's quant_primitives). For a ``[tokens, channels]`` matrix:

    per-tensor   (tokens, channels)       per-token (row)     (1, channels)
    per-channel  (tokens, 1)              group g on channels (1, g)

Asymmetric (default): ``scale = (max - min) / (2^b - 1)``, ``zero = min`` and
``x ≈ q * scale + zero`` with ``q`` in ``[0, 2^b - 1]`` — the float-offset form KIVI and
GEAR use, so a block's minimum and maximum are on the grid.
Symmetric: ``scale = max|x| / ((2^b - 1) / 2)``, no zero stored, ``x ≈ (q - 2^(b-1)) * scale``.
Either way every element inside the (clipped) range is within ``scale / 2`` of its
dequantized value. A constant block gets ``scale = 0`` and dequantizes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .spec import ALLOWED_BITS, FLOAT_BITS

QUANT_BITS = tuple(b for b in ALLOWED_BITS if b != FLOAT_BITS)


@dataclass(frozen=True)
class QParams:
    """Scale and zero of every block, shaped like the input with each dim divided by its block."""

    scale: torch.Tensor
    zero: torch.Tensor | None  # None for symmetric quantization
    bits: int
    block_size: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        tensors = [self.scale] if self.zero is None else [self.scale, self.zero]
        return sum(t.numel() * t.element_size() for t in tensors)


def _check_bits(bits: int) -> None:
    if bits not in QUANT_BITS:
        raise ValueError(f"invalid bits={bits!r}: allowed quantization bits are {QUANT_BITS}")


def block_size_for(shape: torch.Size | tuple[int, ...], dim: int | None = None,
                   group_size: int | None = None) -> tuple[int, ...]:
    """Block size for the common granularities.

    ``dim=None, group_size=None``: per-tensor. ``dim=d``: one block per index of every other
    dim, reducing all of ``d`` (``dim=-1`` on [tokens, channels] is per-token).
    ``group_size=g`` with ``dim=d``: groups of ``g`` along ``d``.
    """
    shape = tuple(shape)
    if dim is None:
        if group_size is not None:
            raise ValueError("group_size needs the dim it groups along")
        return shape
    dim = dim % len(shape)
    size = shape[dim] if group_size is None else group_size
    if group_size is not None and (group_size < 1 or shape[dim] % group_size):
        raise ValueError(f"invalid group_size={group_size!r}: must divide dim {dim} of size {shape[dim]}")
    return tuple(size if i == dim else 1 for i in range(len(shape)))


@dataclass(frozen=True)
class _BlockedView:
    """The input reshaped so each block is a set of dims: ``view`` for the data, ``param_view``
    for parameters broadcast against it, ``reduce_dims`` the within-block dims. Dims whose
    block is 1 or the whole dim are not split, keeping the view short (faster broadcasting)."""

    view: list[int]
    param_view: list[int]
    reduce_dims: list[int]


def _blocked_view(shape: tuple[int, ...], block_size: tuple[int, ...]) -> _BlockedView:
    if len(block_size) != len(shape):
        raise ValueError(f"invalid block_size={block_size!r}: needs one entry per dim of shape {shape}")
    view, param_view, reduce_dims = [], [], []
    for i, (n, b) in enumerate(zip(shape, block_size)):
        if b < 1 or n % b:
            raise ValueError(f"invalid block_size={block_size!r}: entry {b} must divide dim {i} of size {n}")
        if b == 1:
            view.append(n)
            param_view.append(n)
        elif b == n:
            reduce_dims.append(len(view))
            view.append(n)
            param_view.append(1)
        else:
            view += [n // b, b]
            param_view += [n // b, 1]
            reduce_dims.append(len(view) - 1)
    return _BlockedView(view, param_view, reduce_dims)


def choose_qparams(x: torch.Tensor, bits: int, block_size: tuple[int, ...], *,
                   symmetric: bool = False, clip_ratio: float = 1.0,
                   param_dtype: torch.dtype | None = None) -> QParams:
    """Min-max scale (and zero) per block; ``clip_ratio < 1`` scales min and max toward 0
    (values beyond are clamped), as OmniQuant/QuaRot's clip ratio does.

    Parameters are stored in ``param_dtype`` (default: the input's dtype), which is what
    ``nbytes`` counts; quantize with the stored values so codes match them.
    """
    _check_bits(bits)
    if not 0.0 < clip_ratio <= 1.0:
        raise ValueError(f"invalid clip_ratio={clip_ratio!r}: must be in (0, 1]")
    blocked = _blocked_view(tuple(x.shape), tuple(block_size))
    blocks = x.detach().reshape(blocked.view).float()
    reduce_dims = blocked.reduce_dims
    compact = [n // b for n, b in zip(x.shape, block_size)]
    dtype = param_dtype or x.dtype
    levels = 2 ** bits - 1
    if symmetric:
        amax = blocks.abs().amax(dim=reduce_dims) * clip_ratio
        scale = amax / (levels / 2)
        return QParams(scale.reshape(compact).to(dtype), None, bits, tuple(block_size))
    lo = blocks.amin(dim=reduce_dims) * clip_ratio
    hi = blocks.amax(dim=reduce_dims) * clip_ratio
    scale = (hi - lo) / levels
    return QParams(scale.reshape(compact).to(dtype), lo.reshape(compact).to(dtype), bits, tuple(block_size))


def quantize(x: torch.Tensor, qparams: QParams) -> torch.Tensor:
    """Integer codes in ``[0, 2^bits - 1]`` as uint8, same shape as ``x``."""
    blocked = _blocked_view(tuple(x.shape), qparams.block_size)
    blocks = x.detach().reshape(blocked.view).float()
    scale = qparams.scale.float().reshape(blocked.param_view)
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)
    levels = 2 ** qparams.bits - 1
    if qparams.zero is None:
        half = 2 ** (qparams.bits - 1)
        q = torch.round(blocks / safe).clamp(-half, half - 1) + half
    else:
        q = torch.round((blocks - qparams.zero.float().reshape(blocked.param_view)) / safe).clamp(0, levels)
    return q.to(torch.uint8).reshape(x.shape)


def dequantize(codes: torch.Tensor, qparams: QParams, dtype: torch.dtype | None = None, *,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """Float values of ``codes`` (in ``dtype``, default the parameters' dtype).

    ``out`` (same shape as ``codes``; may be a slice of a larger tensor) receives the result
    without an intermediate copy when it is float32.
    """
    blocked = _blocked_view(tuple(codes.shape), qparams.block_size)
    q = codes.reshape(blocked.view)
    scale = qparams.scale.float().reshape(blocked.param_view)
    zero = None if qparams.zero is None else qparams.zero.float().reshape(blocked.param_view)
    if out is not None and out.dtype == torch.float32:
        # uint8 codes are read and promoted inside the kernel: no float temporary.
        target = out.view(blocked.view)
        if zero is None:
            torch.mul(q, scale, out=target).sub_(scale * 2 ** (qparams.bits - 1))
        else:
            torch.addcmul(zero, q, scale, out=target)
        return out
    if zero is None:
        x = (q.float() - 2 ** (qparams.bits - 1)) * scale
    else:
        x = torch.addcmul(zero, q.float(), scale)
    x = x.reshape(codes.shape)
    if out is None:
        return x.to(dtype or qparams.scale.dtype)
    return out.copy_(x)


__all__ = ["QParams", "QUANT_BITS", "block_size_for", "choose_qparams", "quantize", "dequantize"]
