"""Weight quantization: RTN, group-wise and activation-aware (AWQ) into packed QuantizedLinear.

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
from .memory import nbytes
from .packing import PackedCodes, pack, unpack
from .spec import WeightQuantSpec

AWQ_GRID = 20
CALIBRATION_ROWS = 4096  # activation rows kept per layer for the AWQ search


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
    """Quantize then dequantize: what the stored weight will compute with."""
    codes, qparams = quantize_weight(weight, spec)
    return dequantize(unpack(codes), qparams, weight.dtype)


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

    ``forward`` dequantizes and matmuls (the CPU path and reference for fused kernels).
    All state is in buffers, so ``state_dict`` round-trips and ``nbytes`` sees real storage.
    """

    def __init__(self, in_features: int, out_features: int, spec: WeightQuantSpec,
                 codes: PackedCodes, qparams: QParams, bias: torch.Tensor | None = None,
                 input_scale: torch.Tensor | None = None) -> None:
        super().__init__()
        self.in_features, self.out_features, self.spec = in_features, out_features, spec
        self.block_size = qparams.block_size
        self.register_buffer("codes", codes.data)
        self.register_buffer("scale", qparams.scale)
        self.register_buffer("zero", qparams.zero)
        self.register_buffer("bias", bias)
        self.register_buffer("input_scale", input_scale)

    @classmethod
    def from_linear(cls, linear: nn.Linear, spec: WeightQuantSpec,
                    calibration_inputs: torch.Tensor | None = None) -> QuantizedLinear:
        weight = linear.weight.detach()
        input_scale = None
        if spec.method == "awq":
            if calibration_inputs is None:
                raise ValueError("method 'awq' needs calibration inputs for every layer it quantizes")
            s, _ = awq_input_scale(weight, calibration_inputs, spec)
            input_scale = s.to(weight.dtype)
            weight = (weight.float() * s).to(weight.dtype)
        codes, qparams = quantize_weight(weight, spec)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(linear.in_features, linear.out_features, spec, codes, qparams, bias, input_scale)

    def dequantized_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The float weight this layer computes with (input scale not folded back)."""
        codes = unpack(PackedCodes(self.codes, self.spec.bits, self.in_features))
        return dequantize(codes, QParams(self.scale, self.zero, self.spec.bits, self.block_size), dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_scale is not None:
            x = x / self.input_scale
        return F.linear(x, self.dequantized_weight(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, spec={self.spec.id}"


@dataclass
class QuantizationSummary:
    """What quantize_model changed and what it saved."""

    spec_id: str
    layers: list[str] = field(default_factory=list)
    bytes_before: int = 0
    bytes_after: int = 0

    @property
    def ratio(self) -> float:
        return self.bytes_after / self.bytes_before if self.bytes_before else 1.0


def _target_linears(model: nn.Module, include_vision: bool, skip: tuple[str, ...]) -> dict[str, nn.Linear]:
    """Linears of the language model (or of the whole model), minus names containing a skip word."""
    root = model
    if not include_vision and hasattr(model, "get_decoder"):
        decoder = model.get_decoder()
        root = decoder if isinstance(decoder, nn.Module) else model
    wanted = {id(m) for m in root.modules()}
    return {name: module for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and id(module) in wanted
            and not any(word in name.split(".") for word in skip)}


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
                   include_vision: bool = False, skip: tuple[str, ...] = ("lm_head",)) -> QuantizationSummary:
    """Replace the language model's nn.Linear layers by QuantizedLinear, in place.

    The vision tower and projector stay float unless ``include_vision``; layers whose
    dotted name contains a word in ``skip`` (``lm_head`` by default) are kept. ``awq`` needs
    ``calibration``: an iterable of model kwargs dicts or input-ids tensors.
    """
    _check_spec(spec)
    summary = QuantizationSummary(spec.id)
    if spec.is_float:
        return summary
    linears = _target_linears(model, include_vision, skip)
    for name, linear in linears.items():  # fail before touching any layer
        weight_block_size(spec, linear.in_features)
        _check_finite(name, "weight", linear.weight.detach())
    inputs: dict[str, torch.Tensor] = {}
    if spec.method == "awq":
        if calibration is None:
            raise ValueError("method 'awq' needs calibration data: pass calibration=[batch, ...]")
        inputs = collect_linear_inputs(model, linears, calibration)
        for name, rows in inputs.items():
            _check_finite(name, "calibration inputs", rows)
    for name, linear in linears.items():
        quantized = QuantizedLinear.from_linear(linear, spec, inputs.get(name))
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, quantized)
        summary.layers.append(name)
        summary.bytes_before += nbytes(linear)
        summary.bytes_after += nbytes(quantized)
    return summary
