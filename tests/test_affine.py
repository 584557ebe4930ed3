"""The affine primitive against an independent float64 reference."""

import itertools

import pytest
import torch

from quant import QParams, block_size_for, choose_qparams, dequantize, quantize


def reference_round_trip(x: torch.Tensor, bits: int, block: tuple[int, ...], symmetric: bool):
    """Min-max affine quantization written directly in float64, loop over blocks."""
    x64 = x.double()
    out = torch.empty_like(x64)
    scales = torch.empty_like(x64)
    index_ranges = [range(0, n, b) for n, b in zip(x.shape, block)]
    for starts in itertools.product(*index_ranges):
        sl = tuple(slice(s, s + b) for s, b in zip(starts, block))
        blk = x64[sl]
        if symmetric:
            scale = blk.abs().max() / ((2 ** bits - 1) / 2)
            q = torch.round(blk / scale).clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if scale > 0 else blk * 0
            out[sl] = q * scale
        else:
            lo, hi = blk.min(), blk.max()
            scale = (hi - lo) / (2 ** bits - 1)
            q = torch.round((blk - lo) / scale) if scale > 0 else blk * 0
            out[sl] = q * scale + lo
        scales[sl] = scale
    return out, scales


SHAPES_AND_BLOCKS = [
    ((16, 64), None, None),       # per-tensor
    ((16, 64), -1, None),         # per-token (row)
    ((16, 64), 0, None),          # per-channel (column)
    ((16, 64), -1, 16),           # group of 16 along channels
    ((2, 3, 32, 8), 2, 8),        # KIVI key layout: groups of tokens per channel
]


@pytest.mark.parametrize("shape, dim, group", SHAPES_AND_BLOCKS)
@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("symmetric", [False, True])
def test_matches_float64_reference_within_half_a_step(shape, dim, group, bits, symmetric):
    torch.manual_seed(bits)
    x = torch.randn(shape) * 3 + 0.5
    block = block_size_for(shape, dim, group)
    qp = choose_qparams(x, bits, block, symmetric=symmetric)
    y = dequantize(quantize(x, qp), qp)
    ref, ref_scale = reference_round_trip(x, bits, block, symmetric)
    eps = 4 * torch.finfo(torch.float32).eps * x.abs().max().item()
    assert ((y.double() - x.double()).abs() <= ref_scale / 2 + eps).all()
    # Same grid as the reference; a value may land on the other grid point only at a tie
    # (exactly half a step away from both), where float32 and float64 round differently.
    differs = (y.double() - ref).abs() > eps
    at_tie = ((x.double() - ref).abs() - ref_scale / 2).abs() <= eps
    assert not (differs & ~at_tie).any()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_returns_input_dtype_and_bounds_error_for_half_precision(dtype):
    x = (torch.randn(8, 128) * 2).to(dtype)
    qp = choose_qparams(x, 4, block_size_for(x.shape, -1, 32))
    y = dequantize(quantize(x, qp), qp)
    assert y.dtype == dtype and qp.scale.dtype == dtype
    ref, ref_scale = reference_round_trip(x.float(), 4, (1, 32), symmetric=False)
    slack = 16 * torch.finfo(dtype).eps * x.float().abs().max().item()  # parameters rounded to dtype
    assert ((y.double() - x.double()).abs() <= ref_scale / 2 + slack).all()


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_values_on_the_grid_round_trip_exactly(bits):
    levels = 2 ** bits - 1
    step = 2.0 ** -3
    codes = torch.randint(0, levels + 1, (4, 64))
    codes[:, 0], codes[:, 1] = 0, levels  # each row spans the full range
    x = codes.float() * step - 1.5
    qp = choose_qparams(x, bits, block_size_for(x.shape, -1))
    assert torch.equal(dequantize(quantize(x, qp), qp), x)
    assert torch.equal(quantize(x, qp), codes.to(torch.uint8))


@pytest.mark.parametrize("symmetric", [False, True])
def test_constant_blocks_have_zero_scale_and_no_nan(symmetric):
    x = torch.cat([torch.full((2, 32), 0.7), torch.zeros(2, 32), torch.randn(2, 32)])
    if symmetric:
        x[:2] = 0.0
    qp = choose_qparams(x, 2, block_size_for(x.shape, -1), symmetric=symmetric)
    y = dequantize(quantize(x, qp), qp)
    assert torch.isfinite(y).all()
    assert torch.equal(y[:4], x[:4])
    assert (qp.scale[:4] == 0).all()


def test_clip_ratio_clamps_the_range():
    x = torch.linspace(-4, 4, 64).reshape(1, 64)
    qp = choose_qparams(x, 4, (1, 64), clip_ratio=0.5)
    y = dequantize(quantize(x, qp), qp)
    assert y.max().item() == pytest.approx(2.0) and y.min().item() == pytest.approx(-2.0)


@pytest.mark.parametrize("kind", ["gaussian", "heavy_tailed"])
@pytest.mark.parametrize("dim, group", [(None, None), (-1, None), (-1, 32)])
def test_error_falls_monotonically_with_bits(kind, dim, group):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 256, generator=gen)
    if kind == "heavy_tailed":
        with torch.random.fork_rng():  # StudentT draws from the global generator: seed it, or the test is flaky
            torch.manual_seed(0)
            x = torch.distributions.StudentT(2.0).sample((64, 256))
    block = block_size_for(x.shape, dim, group)
    errors = []
    for bits in (2, 3, 4, 8):
        qp = choose_qparams(x, bits, block)
        errors.append((dequantize(quantize(x, qp), qp) - x).pow(2).mean().item())
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


@pytest.mark.parametrize("call, message", [
    (lambda x: choose_qparams(x, 5, (1, 64)), r"bits=5.*allowed quantization bits are \(2, 3, 4, 8\)"),
    (lambda x: choose_qparams(x, 4, (1, 48)), r"block_size=\(1, 48\).*must divide dim 1 of size 64"),
    (lambda x: choose_qparams(x, 4, (64,)), r"block_size=\(64,\).*one entry per dim"),
    (lambda x: block_size_for(x.shape, -1, 0), r"group_size=0"),
    (lambda x: choose_qparams(x, 4, (1, 64), clip_ratio=1.5), r"clip_ratio=1.5"),
])
def test_bad_arguments_name_the_value(call, message):
    with pytest.raises(ValueError, match=message):
        call(torch.randn(4, 64))


@pytest.mark.parametrize("block", [(1, 1, 1, 16), (1, 1, 1, 8), (1, 1, 4, 1), (1, 3, 12, 16), (1, 3, 12 * 1024, 16)])
@pytest.mark.parametrize("symmetric", [False, True])
def test_dequantizing_in_place_equals_dequantize_into_a_float32_slice(block, symmetric):
    """Bit for bit, for parameters that vary along the innermost dim and for those that do not (the
    chunked path, with a chunk smaller than the tensor), into a slice of a larger tensor."""
    from quant.affine import ADDCMUL_CHUNK, dequantize_in_place

    x = torch.randn(2, 3, 12 * 1024, 16, generator=torch.Generator().manual_seed(0))
    assert x.numel() > 2 * ADDCMUL_CHUNK   # several chunks
    qparams = choose_qparams(x, 4, block, symmetric=symmetric)
    codes = quantize(x, qparams)
    scale = qparams.scale.float().repeat_interleave(block[1], 1).repeat_interleave(block[2], 2) \
        .repeat_interleave(block[3], 3)
    if symmetric:   # into float32: q·scale − 2^(b−1)·scale, as the Triton kernels
        expected = codes.float() * scale - scale * 8
    else:           # one rounding, as torch.addcmul and the Triton kernels' fma
        zero = qparams.zero.float().repeat_interleave(block[1], 1).repeat_interleave(block[2], 2) \
            .repeat_interleave(block[3], 3)
        expected = torch.addcmul(zero, codes.float(), scale)
        assert torch.equal(dequantize(codes, qparams, torch.float32), expected)
    target = torch.zeros(2, 3, 12 * 1024 + 5, 16)[:, :, 2:-3]
    sliced = torch.zeros_like(target)
    dequantize(codes, qparams, out=sliced)
    assert torch.equal(sliced, expected)
    assert torch.equal(dequantize_in_place(target.copy_(codes), qparams), expected)
    empty = torch.zeros(2, 3, 0, 16)   # a stream with no compressed token yet
    assert dequantize_in_place(empty, QParams(torch.zeros(2, 3, 0, 1), torch.zeros(2, 3, 0, 1), 4, (1, 1, 1, 16))) is empty
