"""quant/kernels/weight_matmul.py: the fused dequantize-matmul against QuantizedLinear's torch path.

Every kernel output is compared with ``F.linear(x, layer.stored_weight(x.dtype), bias)`` (or the
layer's own forward, for AWQ's input scale and GPTQ's act-order permutation), over both tile
configs (decode M <= 16, prefill M > 16), odd M/N/K, leading batch dims and the three x dtypes.
Without a GPU this runs in Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("triton")

from quant.affine import choose_qparams, quantize  # noqa: E402
from quant.kernels.weight_matmul import (  # noqa: E402
    DECODE_CONFIG, DECODE_MAX_ROWS, PREFILL_CONFIG, packed_linear, supports, tile_config)
from quant.packing import pack  # noqa: E402
from quant.spec import WeightQuantSpec  # noqa: E402
from quant.weights import QuantizedLinear  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}  # relative to max |output|


def make_layer(spec_id: str, in_features: int, out_features: int, *, bias: bool = True,
               dtype: torch.dtype = torch.float32, seed: int = 0) -> QuantizedLinear:
    torch.manual_seed(seed)
    linear = nn.Linear(in_features, out_features, bias=bias)
    spec = WeightQuantSpec.from_id(spec_id)
    calibration = torch.randn(64, in_features) if spec.needs_calibration else None
    return QuantizedLinear.from_linear(linear, spec, calibration).to(device=DEVICE, dtype=dtype)


def kernel(layer: QuantizedLinear, x: torch.Tensor, zero: torch.Tensor | None = None) -> torch.Tensor:
    """packed_linear on the layer's buffers (x already scaled/permuted as forward does)."""
    return packed_linear(x, layer.codes, layer.scale, layer.zero if zero is None else zero, layer.spec.bits,
                         layer.block_size[1], layer.in_features, layer.bias)


def reference(layer: QuantizedLinear, x: torch.Tensor) -> torch.Tensor:
    bias = None if layer.bias is None else layer.bias.to(x.dtype)
    return F.linear(x, layer.stored_weight(x.dtype), bias)


def assert_matches(out: torch.Tensor, ref: torch.Tensor) -> None:
    assert out.shape == ref.shape and out.dtype == ref.dtype
    tol = TOLERANCE[ref.dtype] * max(ref.float().abs().max().item(), 1.0)
    torch.testing.assert_close(out.float(), ref.float(), rtol=0, atol=tol)


@pytest.mark.triton
@pytest.mark.parametrize("spec_id, in_features, out_features, x_shape", [
    ("w4-group-g32", 96, 37, (1,)),          # decode, one row, K % BLOCK_K != 0
    ("w4-group-g32", 160, 37, (7,)),
    ("w4-group-g32", 96, 37, (2, 5)),        # leading batch dims
    ("w4-group-g32", 96, 37, (70,)),         # prefill, several M tiles
    ("w8-group-g64", 128, 37, (16,)),        # the largest decode M
    ("w8-group-g64", 128, 1, (33,)),         # one output channel, the smallest prefill M
    ("w4-rtn", 96, 37, (3,)),                # rtn: one group of in_features
    ("w8-rtn", 160, 3, (33,)),
    ("w4-group-g16-sym", 96, 37, (7,)),      # symmetric: no zero
    ("w8-rtn-sym", 96, 37, (70,)),
    ("w4-group-g24", 96, 37, (7,)),          # 24 is no multiple of 16: per-element group index
    ("w8-group-g8", 96, 37, (33,)),
])
def test_matches_torch_path_fp32(spec_id, in_features, out_features, x_shape):
    layer = make_layer(spec_id, in_features, out_features)
    x = torch.randn(*x_shape, in_features, device=DEVICE)
    out = kernel(layer, x)
    assert out.shape == (*x_shape, out_features)
    assert_matches(out, reference(layer, x))
    assert_matches(out, layer(x))


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("m", [1, 33])
def test_matches_torch_path_half(dtype, m):
    layer = make_layer("w4-group-g32", 96, 37, dtype=dtype)
    x = torch.randn(m, 96, device=DEVICE, dtype=dtype)
    assert_matches(kernel(layer, x), reference(layer, x))


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_x_with_float32_parameters(dtype):
    """Parameters in float32, x in half: the weight is dequantized in float32 then rounded to x's dtype."""
    layer = make_layer("w8-group-g32", 96, 37)
    x = torch.randn(2, 5, 96, device=DEVICE).to(dtype)
    assert_matches(kernel(layer, x), reference(layer, x))


@pytest.mark.triton
def test_no_bias():
    layer = make_layer("w4-group-g32", 96, 37, bias=False)
    x = torch.randn(7, 96, device=DEVICE)
    assert_matches(kernel(layer, x), reference(layer, x))


@pytest.mark.triton
@pytest.mark.parametrize("m", [1, 33])
def test_awq_layer(m):
    """AWQ: the caller divides x by input_scale, as QuantizedLinear.forward does."""
    layer = make_layer("w4-awq-g32", 96, 37)
    assert layer.input_scale is not None
    x = torch.randn(m, 96, device=DEVICE)
    assert_matches(kernel(layer, x / layer.input_scale), layer(x))


@pytest.mark.triton
@pytest.mark.parametrize("m", [1, 33])
def test_gptq_act_order_layer(m):
    """GPTQ act-order: codes are in Hessian order; the caller permutes x by input_order first."""
    layer = make_layer("w4-gptq-g32-actorder", 96, 37)
    assert layer.input_order is not None
    x = torch.randn(m, 96, device=DEVICE)
    out = kernel(layer, x.index_select(-1, layer.input_order))
    assert_matches(out, layer(x))
    assert not torch.allclose(out, kernel(layer, x), atol=1e-3)  # without the permutation: wrong


@pytest.mark.triton
def test_wrong_zero_or_scale_is_caught():
    """The comparison can fail: a shifted zero (or scale) changes the output well beyond tolerance."""
    layer = make_layer("w4-group-g32", 96, 37)
    x = torch.randn(7, 96, device=DEVICE)
    ref = reference(layer, x)
    with pytest.raises(AssertionError):
        assert_matches(kernel(layer, x, zero=layer.zero + 1), ref)
    with pytest.raises(AssertionError):
        assert_matches(packed_linear(x, layer.codes, layer.scale * 1.01, layer.zero, 4, 32, 96, layer.bias), ref)
    wrong_group = packed_linear(x, layer.codes, layer.scale[:, :1].expand(-1, 3).contiguous(),
                                layer.zero[:, :1].expand(-1, 3).contiguous(), 4, 32, 96, layer.bias)
    with pytest.raises(AssertionError):
        assert_matches(wrong_group, ref)


@pytest.mark.triton
def test_tile_configs():
    assert tile_config(1, 32)[:2] == tile_config(DECODE_MAX_ROWS, 32)[:2] == DECODE_CONFIG[:2]
    assert tile_config(DECODE_MAX_ROWS + 1, 32)[:2] == PREFILL_CONFIG[:2]
    for m in (1, 70):
        for group in (8, 16, 24, 32, 96, 128, 4096):
            block_m, block_n, block_k, *_, aligned = tile_config(m, group)
            assert min(block_m, block_n, block_k) >= 16  # tl.dot's minimum
            assert aligned == (group % block_k == 0)
            assert aligned == (group % 16 == 0)


@pytest.mark.triton
@pytest.mark.parametrize("bits", [2, 3])
def test_low_bits_rejected(bits):
    assert not supports(bits) and not supports(bits, symmetric=True)
    weight = torch.randn(37, 96)
    qparams = choose_qparams(weight, bits, (1, 32))
    codes = pack(quantize(weight, qparams), bits).data.to(DEVICE)
    x = torch.randn(1, 96, device=DEVICE)
    with pytest.raises(ValueError, match=f"bits={bits}.*4, 8"):
        packed_linear(x, codes, qparams.scale.to(DEVICE), qparams.zero.to(DEVICE), bits, 32, 96, None)


@pytest.mark.triton
def test_supports():
    assert supports(4) and supports(8) and supports(4, symmetric=True) and supports(8, symmetric=True)
    assert not supports(16) and not supports(True)


@pytest.mark.triton
def test_misuse_rejected():
    layer = make_layer("w4-group-g32", 96, 37)
    x = torch.randn(1, 96, device=DEVICE)
    args = dict(codes=layer.codes, scale=layer.scale, zero=layer.zero, bits=4, group_size=32, in_features=96,
                bias=layer.bias)
    with pytest.raises(ValueError, match="last dim"):
        packed_linear(torch.randn(1, 95, device=DEVICE), **args)
    with pytest.raises(ValueError, match="group_size"):
        packed_linear(x, **{**args, "group_size": 40})
    with pytest.raises(ValueError, match="codes shape"):
        packed_linear(x, **{**args, "codes": layer.codes[:, :-1]})
    with pytest.raises(ValueError, match="scale shape"):
        packed_linear(x, **{**args, "scale": layer.scale[:, :2]})
    with pytest.raises(ValueError, match="x dtype"):
        packed_linear(x.double(), **args)


@pytest.mark.triton
def test_empty_batch():
    layer = make_layer("w4-group-g32", 96, 37)
    assert kernel(layer, torch.randn(0, 96, device=DEVICE)).shape == (0, 37)
