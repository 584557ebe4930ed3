"""Weight quantization: RTN, group-wise, AWQ, dense+sparse outlier and GPTQ into packed QuantizedLinear.

- ``rtn``: round-to-nearest with one scale/zero per output channel (block ``(1, in)``).
- ``group``: one scale/zero per ``group_size`` consecutive input channels of a row
  (block ``(1, g)``), the layout GPTQ/AWQ checkpoints ship with g = 128.
- ``awq``: AWQ (Lin et al., arXiv 2306.00978, github mit-han-lab/llm-awq ``auto_scale``):
  salient input channels are those with large mean |activation|. Per-input-channel scales
  ``s = mean|x|^α`` (normalised by ``sqrt(max(s) * min(s))``) multiply the weight before group
  quantization and divide the input, so the float output is unchanged; α is searched on
  the grid {0, 1/20, …, 19/20} to minimise the layer's output MSE on calibration inputs.
  α = 0 is plain group quantization, so the search can only improve on it (on calibration
  data). llm-awq folds ``1/s`` into the preceding norm or linear; we keep it as a per-layer
  input scale, which works for any module layout. AWQ's weight-clipping search is not done.
- ``outlier``: dense + sparse, as SpQR (Dettmers et al., arXiv 2306.03078; github
  Vahe1994/SpQR ``spqr_engine.py`` ``SPQRUtil.quantize``) and GEAR's dense+sparse split
  (opengear-project/GEAR ``fake_dense_sparse_uniformquantization``, mirrored for the KV cache
  in quant/kvcache.py). The ``outlier_ratio`` largest-|w| entries of each output row (or of the
  whole matrix, scope ``matrix``) are kept exactly (original dtype) in a CSR sparse part:
  values, int16 column indices (int32 when in_features > 32768) and int32 row pointers, all
  buffers, so ``nbytes`` counts them. Outliers are MASKED out of the group ranges, not zeroed:
  like SpQR's ``group_weight_without_outliers`` each outlier is replaced, before group
  quantization, by the mean of the non-outlier weights of its (row, group) (0 if the whole
  group is outliers), a value inside the remaining range, so the group's min/max are exactly
  those of the non-outliers. The dense codes at outlier positions are overwritten by the
  sparse values on dequantization. Unlike SpQR, outliers are chosen by magnitude, not by
  GPTQ-error sensitivity, and the dense part is plain round-to-nearest group quantization.
- ``gptq``: GPTQ (Frantar et al., arXiv 2210.17323; github IST-DASLab/gptq ``gptq.py``
  ``GPTQ.add_batch`` and ``GPTQ.fasterquant``), restated in :func:`gptq_quantize`: see there
  for what follows the reference and what differs (our affine grid; inputs from the float model).

NaN/inf weights (or AWQ calibration activations) raise :class:`~quant.affine.NonFiniteError`
naming the module, before any layer is replaced: quantizing them would silently give NaN rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .affine import NonFiniteError, QParams, choose_qparams, describe_non_finite, dequantize, quantize
from .kernels import use_triton
from .layers import LayerSelection, layer_index
from .memory import nbytes
from .packing import PackedCodes, pack, packed_row_bytes, unpack
from .spec import WeightQuantSpec

AWQ_GRID = 20
CALIBRATION_ROWS = 4096  # activation rows kept per layer for the AWQ search and the GPTQ Hessian
GPTQ_BLOCKSIZE = 128  # reference fasterquant(blocksize=128): columns per lazy batch update
GPTQ_PERCDAMP = 0.01  # reference fasterquant(percdamp=.01): damping, fraction of the mean Hessian diagonal


def weight_block_size(spec: WeightQuantSpec, in_features: int) -> tuple[int, int]:
    """(1, in) per output channel for RTN, (1, g) for group and AWQ."""
    if spec.group_size is None:
        return (1, in_features)
    if in_features % spec.group_size:
        raise ValueError(f"invalid group_size={spec.group_size}: must divide in_features={in_features}")
    return (1, spec.group_size)


def quantize_weight(weight: torch.Tensor, spec: WeightQuantSpec) -> tuple[PackedCodes, QParams]:
    """Packed codes and per-block parameters of a [out, in] weight (NaN/inf: NonFiniteError)."""
    _check_spec(spec)
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.is_floating_point():
        raise ValueError(f"invalid weight: expected a float [out, in] tensor, got "
                         f"{getattr(weight, 'dtype', type(weight).__name__)} of shape {tuple(getattr(weight, 'shape', ()))}")
    if spec.is_float:
        raise ValueError(f"invalid spec={spec.id!r}: 16 bits means no quantization; there is nothing to quantize")
    block = weight_block_size(spec, weight.shape[1])
    qparams = choose_qparams(weight, spec.bits, block, symmetric=spec.symmetric, clip_ratio=spec.clip_ratio)
    # choose_qparams has checked the weight is finite
    return pack(quantize(weight, qparams, check_finite=False), spec.bits, check_range=False), qparams


def _check_spec(spec: object) -> None:
    if not isinstance(spec, WeightQuantSpec):
        raise TypeError(f"invalid spec={spec!r}: expected a WeightQuantSpec (e.g. WeightQuantSpec.from_id('w4-group-g128'))")


def _check_finite(name: str, what: str, t: torch.Tensor) -> None:
    if not bool(torch.isfinite(t).all()):
        raise NonFiniteError(f"module {name!r}: {what} (shape {tuple(t.shape)}) has {describe_non_finite(t)}; "
                             "NaN/inf cannot be quantized (they would turn whole rows into NaN)")


def fake_quantize_weight(weight: torch.Tensor, spec: WeightQuantSpec) -> torch.Tensor:
    """Quantize then dequantize: what the stored weight will compute with.

    For ``outlier`` the sparse part is included. ``awq`` and ``gptq`` need calibration
    inputs, so here they give their grid's round-to-nearest (what AWQ applies to ``W * s``)."""
    if isinstance(spec, WeightQuantSpec) and spec.method == "outlier":
        codes, qparams, outliers = quantize_outlier_weight(weight, spec)
        return outliers.apply(dequantize(unpack(codes), qparams, weight.dtype))
    codes, qparams = quantize_weight(weight, spec)
    return dequantize(unpack(codes), qparams, weight.dtype)


# ---------------------------------------------------------------- outlier (dense + sparse)


def outlier_index_dtype(in_features: int) -> torch.dtype:
    """Column indices fit int16 up to 32768 columns (every LLaVA linear); int32 beyond."""
    return torch.int16 if in_features <= 2 ** 15 else torch.int32


@dataclass(frozen=True)
class SparseOutliers:
    """The sparse part of an ``outlier`` weight, in CSR: row ``r`` holds ``values[p:q]`` at
    columns ``columns[p:q]`` with ``p, q = row_ptr[r], row_ptr[r + 1]``; columns ascend in a row."""

    values: torch.Tensor   # [nnz], the weight's dtype: the exact original values
    columns: torch.Tensor  # [nnz], int16 (int32 for in_features > 32768)
    row_ptr: torch.Tensor  # [out + 1], int32

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.values, self.columns, self.row_ptr))

    def rows(self) -> torch.Tensor:
        """The row of every stored value (int64)."""
        counts = (self.row_ptr[1:] - self.row_ptr[:-1]).long()
        return torch.repeat_interleave(torch.arange(counts.numel(), device=counts.device), counts)

    def apply(self, dense: torch.Tensor) -> torch.Tensor:
        """``dense`` with the outlier positions overwritten by the exact values (in place)."""
        if self.values.numel():
            dense[self.rows(), self.columns.long()] = self.values.to(dense.dtype)
        return dense


def outlier_count(spec: WeightQuantSpec, shape: tuple[int, int]) -> int:
    """Outliers per row (scope ``row``) or in the whole matrix (``matrix``): floor(ratio * n),
    as quant/kvcache.py ``split_outliers`` counts (``int(n * ratio / 2)`` per side)."""
    n = shape[1] if spec.outlier_scope == "row" else shape[0] * shape[1]
    return int(n * spec.outlier_ratio)


def split_weight_outliers(weight: torch.Tensor, spec: WeightQuantSpec) -> tuple[torch.Tensor, SparseOutliers]:
    """The dense input (outliers masked by their group's non-outlier mean, SpQR's
    ``group_weight_without_outliers``) in the weight's dtype, and the exact sparse part.

    Outliers are the ``outlier_count`` largest |w| of each row (scope ``row``) or of the matrix."""
    _check_spec(spec)
    if spec.method != "outlier":
        raise ValueError(f"invalid spec={spec.id!r}: split_weight_outliers needs method 'outlier'")
    _check_weight(weight)
    if not bool(torch.isfinite(weight).all()):  # topk would pick NaN as an outlier and hide it
        raise NonFiniteError(f"weight (shape {tuple(weight.shape)}) has {describe_non_finite(weight)}: "
                             "cannot quantize NaN/inf")
    rows, cols = weight.shape
    group = weight_block_size(spec, cols)[1]
    w = weight.detach().float()
    k = outlier_count(spec, (rows, cols))
    mask = torch.zeros(rows, cols, dtype=torch.bool, device=weight.device)
    if k:
        if spec.outlier_scope == "row":
            mask.scatter_(1, torch.topk(w.abs(), k, dim=1).indices, True)
        else:
            mask.view(-1)[torch.topk(w.abs().reshape(-1), k).indices] = True
    r, c = mask.nonzero(as_tuple=True)  # row-major: CSR order
    counts = torch.bincount(r, minlength=rows)
    row_ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).to(torch.int32)
    sparse = SparseOutliers(weight.detach()[r, c].clone(), c.to(outlier_index_dtype(cols)), row_ptr)
    grouped, keep = w.reshape(rows, cols // group, group), (~mask).reshape(rows, cols // group, group)
    mean = (grouped * keep).sum(-1, keepdim=True) / keep.sum(-1, keepdim=True).clamp_min(1)
    dense = torch.where(keep, grouped, mean).reshape(rows, cols).to(weight.dtype)
    return dense, sparse


def quantize_outlier_weight(weight: torch.Tensor, spec: WeightQuantSpec
                            ) -> tuple[PackedCodes, QParams, SparseOutliers]:
    """Dense codes/parameters (group quantization of the masked weight) and the sparse part."""
    dense, sparse = split_weight_outliers(weight, spec)
    codes, qparams = quantize_weight(dense, spec)
    return codes, qparams, sparse


# ---------------------------------------------------------------- GPTQ


def gptq_hessian(inputs: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``H = 2 X^T X / n`` over calibration rows ``X [n, in]`` (IST-DASLab/gptq ``gptq.py``
    ``GPTQ.add_batch``, which keeps this running mean of ``2 x x^T``)."""
    x = inputs.reshape(-1, inputs.shape[-1]).to(dtype)
    return 2.0 / x.shape[0] * (x.T @ x)


def gptq_quantize(weight: torch.Tensor, inputs: torch.Tensor, spec: WeightQuantSpec, *,
                  blocksize: int = GPTQ_BLOCKSIZE, percdamp: float = GPTQ_PERCDAMP,
                  dtype: torch.dtype = torch.float32) -> tuple[PackedCodes, QParams, torch.Tensor | None]:
    """GPTQ of a [out, in] weight from calibration inputs [rows, in], into our packed layout.

    Returns ``(codes, qparams, input_order)``. Follows IST-DASLab/gptq ``gptq.py``
    ``GPTQ.fasterquant`` step by step: ``H = 2 X^T X / n``; dead columns (``H_jj = 0``) get
    ``H_jj = 1`` and ``W[:, j] = 0``; with ``static_groups`` every group's parameters are chosen
    up front from the original ``W[:, group]``; with ``act_order`` columns are permuted by
    descending ``diag(H)`` (a stable sort, so ties keep their order); damping
    ``percdamp * mean(diag(H))``; ``Hinv = cholesky(cholesky_inverse(cholesky(H)), upper=True)``;
    columns quantized one by one, the error ``(w - q) / Hinv[i, i]`` propagated to the rest of the
    block through ``Hinv[i, i:]`` and to later blocks lazily (``W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]``)
    every ``blocksize`` columns. Without static groups a group's parameters are chosen when its
    first column is reached, from ``W[:, c:c + g]`` of the lazily-updated (and, with act-order,
    permuted) matrix, exactly as the reference does (so with ``g < blocksize`` they do not yet see
    this block's updates); a static group is used by the columns that were in it originally.

    Layout: with act-order and dynamic groups (the reference's default) a group is g consecutive
    columns *in Hessian order*, which the reference stores as a per-column group index
    (``g_idx``). We store the codes in that order, so groups stay contiguous ``(1, g)`` blocks, and
    return ``input_order`` (the permutation): the layer computes ``x[..., input_order] @ Ŵᵀ``, as
    ExLlama does with act-order checkpoints. Otherwise codes are in the original column order and
    ``input_order`` is None.

    Differences, on purpose: the grid is our affine primitive (quant/affine.py
    ``choose_qparams`` min-max with a float zero, parameters stored in the weight's dtype, the
    error measured against what the layer will compute), not the reference's ``Quantizer``
    (integer zero point, range forced to include 0); the layer's inputs come from the float
    model (``collect_linear_inputs``, as AWQ's), not from the already-quantized preceding
    layers as in the reference's ``opt_sequential``; the computation runs in ``dtype``
    (float32 by default, as the reference).
    """
    _check_spec(spec)
    if spec.method != "gptq":
        raise ValueError(f"invalid spec={spec.id!r}: gptq_quantize needs method 'gptq'")
    _check_weight(weight)
    rows, cols = weight.shape
    if not isinstance(inputs, torch.Tensor) or inputs.shape[-1] != cols:
        raise ValueError(f"invalid inputs shape={tuple(getattr(inputs, 'shape', ()))}: the last dim must be the "
                         f"weight's in_features={cols}")
    if isinstance(blocksize, bool) or not isinstance(blocksize, int) or blocksize < 1:
        raise ValueError(f"invalid blocksize={blocksize!r}: must be an integer >= 1")
    if not isinstance(percdamp, (int, float)) or isinstance(percdamp, bool) or not percdamp > 0:
        raise ValueError(f"invalid percdamp={percdamp!r}: must be a number > 0")
    group = weight_block_size(spec, cols)[1]
    device, param_dtype = weight.device, weight.dtype
    W = weight.detach().to(dtype).clone()
    _check_finite_tensor("weight", W)
    H = gptq_hessian(inputs.to(device), dtype)
    _check_finite_tensor("calibration inputs' Hessian", H)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0

    n_groups = cols // group
    scale = torch.empty(rows, n_groups, dtype=param_dtype, device=device)
    zero = None if spec.symmetric else torch.empty(rows, n_groups, dtype=param_dtype, device=device)

    def find_params(g: int, block: torch.Tensor) -> None:
        qp = choose_qparams(block, spec.bits, (1, block.shape[1]), symmetric=spec.symmetric,
                            clip_ratio=spec.clip_ratio, param_dtype=param_dtype, check_finite=False)
        scale[:, g:g + 1] = qp.scale
        if zero is not None:
            zero[:, g:g + 1] = qp.zero

    if spec.static_groups:  # from the weight before any update
        for g in range(n_groups):
            find_params(g, W[:, g * group:(g + 1) * group])
    perm = None
    if spec.act_order:
        perm = torch.argsort(torch.diag(H), descending=True, stable=True)
        W, H = W[:, perm], H[perm][:, perm]
    # the static group each (possibly permuted) column belongs to
    group_of = ((perm if perm is not None else torch.arange(cols)) // group).tolist()

    damp = percdamp * torch.mean(torch.diag(H))
    H[range(cols), range(cols)] += damp
    try:
        Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    except torch.linalg.LinAlgError as error:
        raise ValueError(f"GPTQ: the damped Hessian (percdamp={percdamp}) is not positive definite; "
                         f"use more calibration rows or a larger percdamp ({error})") from None

    codes = torch.empty(rows, cols, dtype=torch.uint8, device=device)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].clone()
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            column = i1 + i
            if spec.static_groups:
                g = group_of[column]
            else:
                g = column // group
                if column % group == 0:
                    find_params(g, W[:, column:column + group])
            qp = QParams(scale[:, g:g + 1], None if zero is None else zero[:, g:g + 1], spec.bits, (1, 1))
            w = W1[:, i:i + 1]
            code = quantize(w, qp, check_finite=False)
            q = dequantize(code, qp, dtype)
            codes[:, column:column + 1] = code
            err = (w - q) / Hinv1[i, i]
            W1[:, i:] -= err @ Hinv1[i:i + 1, i:]
            Err1[:, i:i + 1] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    input_order = None
    if perm is not None and spec.static_groups:
        codes = codes[:, torch.argsort(perm)]
    elif perm is not None:
        input_order = perm.to(device=device, dtype=torch.int32)
    return pack(codes, spec.bits, check_range=False), QParams(scale, zero, spec.bits, (1, group)), input_order


def _check_weight(weight: object) -> None:
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.is_floating_point():
        raise ValueError(f"invalid weight: expected a float [out, in] tensor, got "
                         f"{getattr(weight, 'dtype', type(weight).__name__)} of shape {tuple(getattr(weight, 'shape', ()))}")


def _check_finite_tensor(what: str, t: torch.Tensor) -> None:
    if not bool(torch.isfinite(t).all()):
        raise NonFiniteError(f"{what} (shape {tuple(t.shape)}) has {describe_non_finite(t)}: cannot quantize NaN/inf")


def awq_input_scale(weight: torch.Tensor, inputs: torch.Tensor, spec: WeightQuantSpec
                    ) -> tuple[torch.Tensor, float]:
    """AWQ's per-input-channel scale for one linear and the α that chose it.

    ``inputs`` are calibration activations [rows, in]. Returns ``s`` such that the layer
    stores ``Q(W * s)`` and computes ``(x / s) @ Q(W * s)^T``.
    """
    if inputs.shape[-1] != weight.shape[1]:
        raise ValueError(f"invalid inputs shape={tuple(inputs.shape)}: the last dim must be the weight's "
                         f"in_features={weight.shape[1]}")
    x = inputs.reshape(-1, inputs.shape[-1]).float()
    w = weight.float()
    reference = x @ w.T
    x_mean = x.abs().mean(dim=0)
    best = (float("inf"), torch.ones_like(x_mean), 0.0)
    for step in range(AWQ_GRID):
        alpha = step / AWQ_GRID
        s = x_mean.pow(alpha).clamp(min=1e-4)
        s = s / (s.max() * s.min()).sqrt()
        w_q = fake_quantize_weight((w * s).to(weight.dtype), spec).float() / s
        loss = (x @ w_q.T - reference).pow(2).mean().item()
        if loss < best[0]:
            best = (loss, s, alpha)
    return best[1], best[2]


class QuantizedLinear(nn.Module):
    """A linear layer that stores packed codes and scales/zeros, never a float weight.

    ``forward`` dequantizes and matmuls: the CPU path and the reference of the fused Triton
    dequantize-matmul (quant/kernels/weight_matmul.py) that runs instead for 4- and 8-bit layers
    without sparse outliers on CUDA (``quant.kernels.use_triton``).
    All state is in buffers, so ``state_dict`` round-trips and ``nbytes`` sees real storage,
    the sparse outliers of method ``outlier`` included (``outlier_values``, ``outlier_columns``,
    ``outlier_row_ptr``) and GPTQ act-order's input permutation (``input_order``).
    """

    def __init__(self, in_features: int, out_features: int, spec: WeightQuantSpec,
                 codes: PackedCodes, qparams: QParams, bias: torch.Tensor | None = None,
                 input_scale: torch.Tensor | None = None, outliers: SparseOutliers | None = None,
                 input_order: torch.Tensor | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features, self.spec = in_features, out_features, spec
        self.block_size = qparams.block_size
        self.register_buffer("codes", codes.data)
        self.register_buffer("scale", qparams.scale)
        self.register_buffer("zero", qparams.zero)
        self.register_buffer("bias", bias)
        self.register_buffer("input_scale", input_scale)
        self.register_buffer("outlier_values", None if outliers is None else outliers.values)
        self.register_buffer("outlier_columns", None if outliers is None else outliers.columns)
        self.register_buffer("outlier_row_ptr", None if outliers is None else outliers.row_ptr)
        self.register_buffer("input_order", input_order)  # GPTQ act-order: stored column j reads input input_order[j]

    @classmethod
    def from_linear(cls, linear: nn.Linear, spec: WeightQuantSpec,
                    calibration_inputs: torch.Tensor | None = None) -> QuantizedLinear:
        _check_spec(spec)
        weight = linear.weight.detach()
        input_scale = outliers = input_order = None
        if spec.needs_calibration and calibration_inputs is None:
            raise ValueError(f"method {spec.method!r} needs calibration inputs for every layer it quantizes")
        if spec.method == "awq":
            s, _ = awq_input_scale(weight, calibration_inputs, spec)
            input_scale = s.to(weight.dtype)
            weight = (weight.float() * s).to(weight.dtype)
        if spec.method == "gptq":
            codes, qparams, input_order = gptq_quantize(weight, calibration_inputs, spec)
        elif spec.method == "outlier":
            codes, qparams, outliers = quantize_outlier_weight(weight, spec)
        else:
            codes, qparams = quantize_weight(weight, spec)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(linear.in_features, linear.out_features, spec, codes, qparams, bias, input_scale, outliers,
                   input_order)

    @property
    def outliers(self) -> SparseOutliers | None:
        if self.outlier_values is None:
            return None
        return SparseOutliers(self.outlier_values, self.outlier_columns, self.outlier_row_ptr)

    def stored_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The float weight in stored column order (``input_order``'s, when set)."""
        codes = unpack(PackedCodes(self.codes, self.spec.bits, self.in_features))
        dense = dequantize(codes, QParams(self.scale, self.zero, self.spec.bits, self.block_size), dtype)
        outliers = self.outliers
        return dense if outliers is None else outliers.apply(dense)

    def dequantized_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The float weight this layer computes with, in input order (input scale not folded back)."""
        stored = self.stored_weight(dtype)
        if self.input_order is None:
            return stored
        weight = torch.empty_like(stored)
        weight[:, self.input_order.long()] = stored
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_scale is not None:
            x = x / self.input_scale
        if self.input_order is not None:
            x = x.index_select(-1, self.input_order)
        if self.outlier_values is None and use_triton(x.device):
            from .kernels.weight_matmul import packed_linear, supports  # imports triton

            if supports(self.spec.bits, self.spec.symmetric):  # 4 and 8 bits; 2/3 bits stay on torch
                return packed_linear(x, self.codes, self.scale, self.zero, self.spec.bits, self.block_size[1],
                                     self.in_features, self.bias)
        return F.linear(x, self.stored_weight(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, spec={self.spec.id}"


def expected_linear_bytes(spec: WeightQuantSpec, in_features: int, out_features: int, dtype: torch.dtype,
                          bias: bool) -> int:
    """Closed-form bytes of a QuantizedLinear, from the spec and shapes alone: packed codes, one
    scale (and zero) per block in the weight dtype, the CSR outliers (values, column indices, row
    pointers), AWQ's input scale, GPTQ act-order's int32 input order, and the bias. A layer whose
    measured ``nbytes`` differs kept something it should not have (a float weight) or lost a part."""
    size = dtype.itemsize
    groups = in_features // weight_block_size(spec, in_features)[1]
    total = out_features * packed_row_bytes(in_features, spec.bits)
    total += out_features * groups * size * (1 if spec.symmetric else 2)
    if spec.method == "outlier":
        count = outlier_count(spec, (out_features, in_features)) * (out_features if spec.outlier_scope == "row" else 1)
        total += count * (size + outlier_index_dtype(in_features).itemsize) + (out_features + 1) * 4
    if spec.method == "awq":
        total += in_features * size
    if spec.method == "gptq" and spec.act_order and not spec.static_groups:
        total += in_features * 4
    return total + (out_features * size if bias else 0)


@dataclass
class QuantizationSummary:
    """What quantize_model changed and what it saved; ``bytes_expected`` is the closed form
    (:func:`expected_linear_bytes`) that ``bytes_after`` must match."""

    spec_id: str
    layers: list[str] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0
    bytes_expected: int = 0
    bytes_by_part: dict[str, list[int]] = field(default_factory=dict)   # part -> [float bytes, stored bytes]

    @property
    def ratio(self) -> float:
        return self.bytes_after / self.bytes_before if self.bytes_before else 1.0


# Module names of the vision tower and projector in transformers' image-text families
VISION_MODULES = ("vision_tower", "visual", "vision_model")   # LLaVA(-NeXT/-OV), Gemma 3, InternVL; Qwen2-VL; Idefics3
PROJECTOR_MODULES = ("multi_modal_projector", "merger", "connector")   # ...; Qwen2-VL's visual.merger; Idefics3


def model_parts(model: nn.Module) -> dict[str, nn.Module | None]:
    """The parts ``WeightQuantSpec.targets`` names: the language model (``get_decoder()``; the whole
    model for one without it), the vision tower and the projector (the shallowest module named as in
    ``VISION_MODULES`` / ``PROJECTOR_MODULES``; None where the model has none)."""
    def shallowest(names: tuple[str, ...]) -> nn.Module | None:
        found = [(name.count("."), module) for name, module in model.named_modules()
                 if name and name.rpartition(".")[2] in names]
        return min(found, key=lambda pair: pair[0])[1] if found else None

    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    return {"language": decoder if isinstance(decoder, nn.Module) else model,
            "vision": shallowest(VISION_MODULES), "projector": shallowest(PROJECTOR_MODULES)}


def _target_linears(model: nn.Module, targets: tuple[str, ...], skip: tuple[str, ...]
                    ) -> dict[str, tuple[nn.Linear, str]]:
    """``name -> (linear, part)`` for the linears of the ``targets`` parts, minus names containing a
    skip word. A projector inside the vision tower (Qwen2-VL's merger) is the projector's."""
    parts = model_parts(model)
    missing = [t for t in targets if parts[t] is None]
    if missing:
        names = {"vision": VISION_MODULES, "projector": PROJECTOR_MODULES}
        detail = "; ".join(f"no {part} module (looked for modules named {', '.join(names[part])})" for part in missing)
        raise ValueError(f"{type(model).__name__}: {detail}; its weights can take targets "
                         f"{[part for part, module in parts.items() if module is not None]}")
    owner: dict[int, str] = {}
    for part in ("language", "vision", "projector"):   # later parts win: the projector inside the vision tower
        if parts[part] is not None:
            owner.update(dict.fromkeys((id(m) for m in parts[part].modules()), part))
    linears = {name: (module, owner[id(module)]) for name, module in model.named_modules()
               if isinstance(module, nn.Linear) and owner.get(id(module)) in targets}
    empty = [t for t in targets if t != "language" and all(part != t for _, part in linears.values())]
    if empty:   # a named part that would silently stay float (Gemma 3's projector multiplies a raw weight)
        raise ValueError(f"{type(model).__name__}: its {' and '.join(empty)} holds no nn.Linear to quantize "
                         f"(quantize_model replaces nn.Linear layers only); drop {empty} from the targets")
    return {name: pair for name, pair in linears.items() if not any(word in name.split(".") for word in skip)}


def _nothing_to_quantize(model: nn.Module, spec: WeightQuantSpec, skip: tuple[str, ...],
                         layers: LayerSelection | None) -> str:
    """Why quantize_model found no layer: a call that changes nothing must not pass for a quantized model."""
    text_only = spec.targets == ("language",) and hasattr(model, "get_decoder")
    looked = ["its language model (model.get_decoder())" if text_only else "the whole model"
              if spec.targets == ("language",) else f"its parts {list(spec.targets)}"]
    if skip:
        looked.append(f"skipping names containing {list(skip)}")
    if layers is not None:
        looked.append(f"in decoder layers {layers.text!r} (module names '...layers.N...')")
    done = sum(isinstance(m, QuantizedLinear) for m in model.modules())
    return (f"quantize_model({type(model).__name__}, {spec.id}): no nn.Linear layer to quantize (looked in "
            f"{', '.join(looked)}); it replaces nn.Linear layers only"
            + (f"; this model holds {done} QuantizedLinear already: it was quantized before" if done else "")
            + ("; a spec with targets vision/projector (id suffix -vision, -projector or -all) also takes the "
               "vision tower and projector" if text_only else ""))


def _run_calibration(model: nn.Module, calibration: Iterable[object]) -> None:
    with torch.no_grad():
        for batch in calibration:
            if isinstance(batch, Mapping):
                model(**batch)
            else:
                model(batch)


def collect_linear_inputs(model: nn.Module, linears: Mapping[str, nn.Linear],
                          calibration: Iterable[object], max_rows: int = CALIBRATION_ROWS
                          ) -> dict[str, torch.Tensor]:
    """Inputs each linear sees when the float model runs on ``calibration`` batches.

    A batch is a dict of model kwargs or an input-ids tensor. Keeps at most ``max_rows``
    evenly spaced rows per layer, thinned as each batch arrives, so the memory cost stays
    bounded (a 7B model's 224 layers would otherwise hold every calibration token in float32).
    """
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in linears}

    def keep(name: str, inputs: torch.Tensor) -> None:
        rows = inputs.detach().reshape(-1, inputs.shape[-1])
        if rows.shape[0] > max_rows:
            rows = rows[torch.linspace(0, rows.shape[0] - 1, max_rows, device=rows.device).long()]
        seen[name].append(rows.float().cpu())

    handles = [module.register_forward_pre_hook(lambda _m, args, name=name: keep(name, args[0]))
               for name, module in linears.items()]
    try:
        _run_calibration(model, calibration)
    finally:
        for handle in handles:
            handle.remove()
    inputs = {}
    for name, chunks in seen.items():
        if not chunks:
            raise ValueError(f"calibration batches never reached layer {name!r}; pass inputs that run the model")
        rows = torch.cat(chunks)
        if rows.shape[0] > max_rows:
            rows = rows[torch.linspace(0, rows.shape[0] - 1, max_rows).long()]
        inputs[name] = rows
    return inputs


def quantize_model(model: nn.Module, spec: WeightQuantSpec, calibration: Iterable[object] | None = None, *,
                   skip: tuple[str, ...] = ("lm_head",), layers: LayerSelection | None = None,
                   rest: WeightQuantSpec | None = None) -> QuantizationSummary:
    """Replace the nn.Linear layers of the parts ``spec.targets`` names by QuantizedLinear, in place.

    By default the language model alone (the vision tower and projector stay float); a spec with
    ``targets`` ``vision`` / ``projector`` takes those (:func:`model_parts` finds them), and the
    summary's ``bytes_by_part`` says what each part stored. Layers whose dotted name contains a
    word in ``skip`` (``lm_head`` by default) are kept. ``awq`` and
    ``gptq`` (``spec.needs_calibration``) need ``calibration``: an iterable of model kwargs
    dicts or input-ids tensors; every layer's inputs are collected from the float model.
    ``layers`` (quant.layers) limits ``spec`` to those decoder layers of the language model; ``rest``,
    a second spec, quantizes its other decoder layers (mixed precision, as
    :class:`~quant.kvcache.QuantizedKVCache` takes its ``rest``), both from one pass over the float
    model; a vision tower or projector in ``spec.targets`` takes ``spec`` whole. A call that finds no
    nn.Linear to replace is a ValueError saying where it looked, never a silently unquantized model.
    """
    _check_spec(spec)
    rest = rest if rest is not None and not rest.is_float else None
    if rest is not None:
        _check_spec(rest)
        if layers is None:
            raise ValueError(f"rest={rest.id}: a spec for the other decoder layers needs layers= to say which "
                             "layers take spec")
    summary = QuantizationSummary(spec.id + (f"@{layers.text}" if layers is not None and rest is not None else "")
                                  + (f"+{rest.id}" if rest is not None else ""))
    if spec.is_float and rest is None:
        return summary
    if layers is not None and "language" not in spec.targets:
        raise ValueError(f"layers={layers.text!r}: {spec.id} does not quantize the language model, whose decoder "
                         "layers a selection picks")
    targets = _target_linears(model, spec.targets, skip)
    part_of = {name: part for name, (_, part) in targets.items()}
    linears = {name: linear for name, (linear, _) in targets.items()}
    plan: dict[str, WeightQuantSpec] = {name: spec for name in linears}
    if layers is not None:   # the selected decoder layers' linears take spec, the others rest (or stay float)
        config = getattr(model, "config", None)
        text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
        if not hasattr(text, "num_hidden_layers"):
            raise ValueError(f"layers={layers.text!r}: {type(model).__name__} has no config.num_hidden_layers, so "
                             "its decoder layers cannot be selected; pass layers=None")
        chosen = layers.layers(text.num_hidden_layers)
        plan = {name: spec if part_of[name] != "language" or layer_index(name) in chosen else rest
                for name in linears if part_of[name] != "language" or layer_index(name) in chosen
                or (rest is not None and layer_index(name) is not None)}
    plan = {name: chosen_spec for name, chosen_spec in plan.items() if chosen_spec is not None and not chosen_spec.is_float}
    linears = {name: linears[name] for name in plan}
    if not linears:
        raise ValueError(_nothing_to_quantize(model, spec, skip, layers))
    for name, linear in linears.items():  # fail before touching any layer
        weight_block_size(plan[name], linear.in_features)
        _check_finite(name, "weight", linear.weight.detach())
    inputs: dict[str, torch.Tensor] = {}
    calibrated = {name: linear for name, linear in linears.items() if plan[name].needs_calibration}
    if calibrated:
        if calibration is None:
            method = next(plan[name].method for name in calibrated)
            raise ValueError(f"method {method!r} needs calibration data: pass calibration=[batch, ...]")
        inputs = collect_linear_inputs(model, calibrated, calibration)
        for name, rows in inputs.items():
            _check_finite(name, "calibration inputs", rows)
    for name, linear in linears.items():
        quantized = QuantizedLinear.from_linear(linear, plan[name], inputs.get(name))
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, quantized)
        summary.layers.append(name)
        before, after = nbytes(linear), nbytes(quantized)
        summary.bytes_before += before
        summary.bytes_after += after
        part = summary.bytes_by_part.setdefault(part_of[name], [0, 0])
        part[0] += before
        part[1] += after
        summary.bytes_expected += expected_linear_bytes(plan[name], linear.in_features, linear.out_features,
                                                        linear.weight.dtype, linear.bias is not None)
    return summary
