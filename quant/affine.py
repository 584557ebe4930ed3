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

Misuse fails with a ValueError naming the argument: bits outside {2, 3, 4, 8}, a block
size that does not divide the shape, parameters shaped for another tensor, non-float
input or non-uint8 codes. NaN or inf in the input cannot be quantized (one of them turns a
whole block's range, and so every value of it, into NaN): ``choose_qparams`` and
``quantize`` raise :class:`NonFiniteError` instead (``check_finite=False`` skips the check
for callers that have already done it).
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


class NonFiniteError(ValueError):
    """NaN or inf where a finite tensor is quantized. Quantizing it would not fail: it would
    silently turn the whole block (a sequence's keys, a weight row) into NaN or garbage codes.
    The message says where the bad values are (layer, keys/values, step; or module name)."""


def describe_non_finite(x: torch.Tensor) -> str:
    """'3 NaN/inf values of 2048 (first at index (0, 1, 5, 2): nan)' — the slow path of an error."""
    bad = ~torch.isfinite(x)
    count = int(bad.sum())
    if not count:
        return "no NaN/inf values"
    first = tuple(int(i) for i in bad.nonzero()[0])
    return f"{count} NaN/inf value{'s' if count > 1 else ''} of {x.numel()} (first at index {first}: {x[first].item()})"


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in QUANT_BITS:
        raise ValueError(f"invalid bits={bits!r}: allowed quantization bits are {QUANT_BITS}")


def _check_tensor(name: str, x: object, *, floating: bool = False, dtype: torch.dtype | None = None) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"invalid {name}: expected a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise ValueError(f"invalid {name} dtype={x.dtype}: must be a floating-point tensor")
    if dtype is not None and x.dtype != dtype:
        raise ValueError(f"invalid {name} dtype={x.dtype}: must be {dtype}")


def _check_qparams(name: str, x: torch.Tensor, qparams: QParams) -> None:
    """``qparams`` must have been chosen for a tensor of ``x``'s shape."""
    if not isinstance(qparams, QParams):
        raise TypeError(f"invalid qparams: expected QParams (from choose_qparams), got {type(qparams).__name__}")
    _check_bits(qparams.bits)
    _blocked_view(tuple(x.shape), tuple(qparams.block_size))  # validates the block against x
    expected = tuple(n // b for n, b in zip(x.shape, qparams.block_size))
    for part, t in (("scale", qparams.scale), ("zero", qparams.zero)):
        if t is not None and tuple(t.shape) != expected:
            raise ValueError(f"invalid qparams.{part} shape={tuple(t.shape)}: {name} of shape {tuple(x.shape)} "
                             f"with block_size={tuple(qparams.block_size)} needs {expected}")


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
            raise ValueError(f"invalid group_size={group_size!r} with dim=None: group_size needs the dim it "
                             "groups along")
        return shape
    if isinstance(dim, bool) or not isinstance(dim, int) or not -len(shape) <= dim < len(shape):
        raise ValueError(f"invalid dim={dim!r}: must be an integer in [{-len(shape)}, {len(shape)}) "
                         f"for shape {shape}")
    dim = dim % len(shape)
    size = shape[dim] if group_size is None else group_size
    if group_size is not None and (isinstance(group_size, bool) or not isinstance(group_size, int)
                                   or group_size < 1 or shape[dim] % group_size):
        raise ValueError(f"invalid group_size={group_size!r}: must be a positive integer dividing dim {dim} "
                         f"of size {shape[dim]}")
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
    if not isinstance(block_size, tuple):
        raise ValueError(f"invalid block_size={block_size!r}: must be a tuple with one entry per dim of shape {shape}")
    if len(block_size) != len(shape):
        raise ValueError(f"invalid block_size={block_size!r}: needs one entry per dim of shape {shape}")
    view, param_view, reduce_dims = [], [], []
    for i, (n, b) in enumerate(zip(shape, block_size)):
        if isinstance(b, bool) or not isinstance(b, int) or b < 1 or n % b:
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
                   param_dtype: torch.dtype | None = None, check_finite: bool = True) -> QParams:
    """Min-max scale (and zero) per block; ``clip_ratio < 1`` scales min and max toward 0
    (values beyond are clamped), as OmniQuant/QuaRot's clip ratio does.

    Parameters are stored in ``param_dtype`` (default: the input's dtype), which is what
    ``nbytes`` counts; quantize with the stored values so codes match them.
    Raises :class:`NonFiniteError` when ``x`` holds NaN/inf, or its range overflows
    ``param_dtype`` (checked on the per-block parameters, so cheap; ``check_finite=False`` skips).
    """
    _check_tensor("x", x, floating=True)
    _check_bits(bits)
    if isinstance(clip_ratio, bool) or not isinstance(clip_ratio, (int, float)) or not 0.0 < clip_ratio <= 1.0:
        raise ValueError(f"invalid clip_ratio={clip_ratio!r}: must be in (0, 1]")
    if param_dtype is not None and not (isinstance(param_dtype, torch.dtype) and param_dtype.is_floating_point):
        raise ValueError(f"invalid param_dtype={param_dtype!r}: must be a floating-point torch.dtype")
    if isinstance(block_size, list):
        block_size = tuple(block_size)
    blocked = _blocked_view(tuple(x.shape), block_size)
    blocks = x.detach().reshape(blocked.view).float()
    reduce_dims = blocked.reduce_dims
    compact = [n // b for n, b in zip(x.shape, block_size)]
    dtype = param_dtype or x.dtype
    levels = 2 ** bits - 1
    if symmetric:
        amax = _clipped(blocks.abs().amax(dim=reduce_dims), clip_ratio)
        scale = amax / (levels / 2)
        qparams = QParams(scale.reshape(compact).to(dtype), None, bits, tuple(block_size))
    else:
        lo = _clipped(blocks.amin(dim=reduce_dims), clip_ratio)
        hi = _clipped(blocks.amax(dim=reduce_dims), clip_ratio)
        scale = (hi - lo) / levels
        qparams = QParams(scale.reshape(compact).to(dtype), lo.reshape(compact).to(dtype), bits, tuple(block_size))
    if check_finite:
        _check_finite_params(x, qparams)
    return qparams


def _clipped(bound: torch.Tensor, clip_ratio: float) -> torch.Tensor:
    """``bound · clip_ratio``; no op at 1 (the KV cache's per-token compressions are many and small)."""
    return bound if clip_ratio == 1.0 else bound * clip_ratio


def _check_finite_params(x: torch.Tensor, qparams: QParams) -> None:
    """NaN/inf in x reach every block statistic (min/max propagate NaN), so checking the small
    parameter tensors finds them; parameters that overflow their dtype are caught too."""
    finite = torch.isfinite(qparams.scale).all()
    if qparams.zero is not None:
        finite &= torch.isfinite(qparams.zero).all()
    if bool(finite):
        return
    if torch.isfinite(x).all():
        raise NonFiniteError(f"x (shape {tuple(x.shape)}) has a range that overflows the parameter dtype "
                             f"{qparams.scale.dtype}: cannot quantize")
    raise NonFiniteError(f"x (shape {tuple(x.shape)}) has {describe_non_finite(x)}: cannot quantize NaN/inf")


def quantize(x: torch.Tensor, qparams: QParams, *, check_finite: bool = True) -> torch.Tensor:
    """Integer codes in ``[0, 2^bits - 1]`` as uint8, same shape as ``x``.

    Raises :class:`NonFiniteError` if ``x`` holds NaN/inf (``check_finite=False`` skips the check)."""
    _check_tensor("x", x, floating=True)
    _check_qparams("x", x, qparams)
    if check_finite and not bool(torch.isfinite(x).all()):
        raise NonFiniteError(f"x (shape {tuple(x.shape)}) has {describe_non_finite(x)}: cannot quantize NaN/inf")
    blocked = _blocked_view(tuple(x.shape), qparams.block_size)
    blocks = x.detach().reshape(blocked.view).float()
    scale = qparams.scale.float().reshape(blocked.param_view)
    safe = scale.masked_fill(scale == 0, 1.0)
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
    _check_tensor("codes", codes, dtype=torch.uint8)
    _check_qparams("codes", codes, qparams)
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"invalid dtype={dtype!r}: must be a floating-point torch.dtype")
    if out is not None:
        _check_tensor("out", out, floating=True)
        if out.shape != codes.shape:
            raise ValueError(f"invalid out shape={tuple(out.shape)}: must equal codes shape {tuple(codes.shape)}")
    if out is not None and out.dtype == torch.float32:
        return dequantize_in_place(out.copy_(codes), qparams)
    blocked = _blocked_view(tuple(codes.shape), qparams.block_size)
    q = codes.reshape(blocked.view).float()
    scale = qparams.scale.float().reshape(blocked.param_view)
    if qparams.zero is None:
        x = (q - 2 ** (qparams.bits - 1)) * scale
    else:
        x = torch.addcmul(qparams.zero.float().reshape(blocked.param_view), q, scale)
    x = x.reshape(codes.shape)
    if out is None:
        return x.to(dtype or qparams.scale.dtype)
    return out.copy_(x)


ADDCMUL_CHUNK = 1 << 18  # elements per expanded-zero buffer: 1 MiB of float32, a core's L2


def dequantize_in_place(x: torch.Tensor, qparams: QParams) -> torch.Tensor:
    """``x`` (float32) holds codes as numbers (``quant.packing.unpack_into``); overwritten with their
    values, bit for bit what ``dequantize(codes, qparams, out=x)`` writes (asymmetric: ``addcmul``,
    one rounding, as the Triton kernels' ``fma``; symmetric: ``q·scale − 2^(b−1)·scale``). The
    codes are promoted before the broadcast arithmetic: promoting uint8 inside one broadcast
    ``addcmul`` takes torch's slow mixed-dtype loop on CPU (2x to 17x slower at 2M-8M codes)."""
    _check_tensor("x", x, dtype=torch.float32)
    _check_qparams("x", x, qparams)
    if not x.numel():
        return x
    blocked = _blocked_view(tuple(x.shape), qparams.block_size)
    target = x.view(blocked.view)
    scale = qparams.scale.float().reshape(blocked.param_view)
    if qparams.zero is None:
        target.mul_(scale).sub_(scale * 2 ** (qparams.bits - 1))
        return x
    zero = qparams.zero.float().reshape(blocked.param_view)
    if blocked.param_view[-1] != 1:   # parameters vary along the innermost dim: one vectorized addcmul
        torch.addcmul(zero, target, scale, out=target)
        return x
    # Parameters constant along the innermost dim (one per row, KIVI's value groups): addcmul with
    # two broadcast operands runs torch's scalar loop, so zero is expanded into a small buffer,
    # a slice of rows at a time, which leaves one broadcast operand and the vectorized loop.
    dim = max(range(target.dim() - 1), key=lambda d: target.shape[d])
    step = max(1, target.shape[dim] * ADDCMUL_CHUNK // target.numel())
    buffer = torch.empty(target.narrow(dim, 0, min(step, target.shape[dim])).shape, device=x.device)

    def rows(t: torch.Tensor, start: int, length: int) -> torch.Tensor:
        return t if t.shape[dim] == 1 else t.narrow(dim, start, length)   # parameters may broadcast along dim

    for start in range(0, target.shape[dim], step):
        length = min(step, target.shape[dim] - start)
        part = target.narrow(dim, start, length)
        expanded = buffer.narrow(dim, 0, length)
        expanded.copy_(rows(zero, start, length).expand(part.shape))
        torch.addcmul(expanded, part, rows(scale, start, length), out=part)
    return x


__all__ = ["NonFiniteError", "QParams", "QUANT_BITS", "block_size_for", "choose_qparams", "quantize", "dequantize",
           "dequantize_in_place"]
