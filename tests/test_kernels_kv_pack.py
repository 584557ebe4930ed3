"""quant/kernels/kv_pack.py against the torch path: bit-identical packed bytes and dequantized values.

Runs in Triton's interpreter without a GPU (tests/conftest.py sets TRITON_INTERPRET=1 first).
Shapes are small and odd on purpose: T = 17 (24 where channel groups of 8 need T % 8 == 0),
D = 12 for 2/3 bits (3-bit rows end in a padded group), 24 for 4/8 bits.
"""

import pytest
import torch

pytest.importorskip("triton")

from quant.affine import NonFiniteError, QParams, choose_qparams, dequantize, quantize  # noqa: E402
from quant.kernels.kv_pack import quantize_pack, unpack_dequantize  # noqa: E402
from quant.kvcache import KVCodec, compress  # noqa: E402
from quant.packing import PackedCodes, pack, unpack  # noqa: E402

pytestmark = pytest.mark.triton

LAYOUTS = ("tensor", "token", "headrow", "channel_group", "token_group")
BITS = (2, 3, 4, 8)
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
B, H = 3, 2


def shape_for(layout: str, bits: int) -> tuple[int, int, int, int]:
    return B, H, 24 if layout == "channel_group" else 17, 12 if bits in (2, 3) else 24


def codec_for(layout: str, bits: int, shape, symmetric: bool = False, clip_ratio: float = 1.0) -> KVCodec:
    group = 8 if layout == "channel_group" else (4 if shape[3] == 12 else 8)
    return KVCodec(bits=bits, block=layout, group_size=group, symmetric=symmetric, clip_ratio=clip_ratio)


def block_for(layout: str, bits: int, shape) -> tuple[int, int, int, int]:
    return codec_for(layout, bits, shape).block_size(shape)


def data(shape, dtype, seed=0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=gen) * 2 + 0.3).to(dtype)


def assert_codec_matches(x: torch.Tensor, qp: QParams) -> PackedCodes:
    """Packed bytes, dequantized values (dtype and float32 out=) equal the torch path's."""
    ref = pack(quantize(x.float(), qp), qp.bits)
    got = quantize_pack(x, qp)
    assert got.bits == ref.bits and got.length == ref.length
    assert got.data.shape == ref.data.shape and got.data.is_contiguous()
    assert torch.equal(got.data, ref.data)
    codes = unpack(ref)
    for dtype in dict.fromkeys((None, torch.float32, x.dtype)):  # None: the parameters' dtype
        expected = dequantize(codes, qp, dtype)
        actual = unpack_dequantize(ref, qp, dtype)
        assert actual.dtype == expected.dtype
        assert torch.equal(actual, expected), dtype
    expected = dequantize(codes, qp, out=torch.empty(x.shape))
    actual = unpack_dequantize(ref, qp, out=torch.empty(x.shape))
    assert torch.equal(actual, expected)
    return got


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("symmetric", (False, True), ids=("asym", "sym"))
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_matches_torch(layout, bits, symmetric, dtype):
    shape = shape_for(layout, bits)
    x = data(shape, dtype, seed=bits)
    qp = choose_qparams(x.float(), bits, block_for(layout, bits, shape), symmetric=symmetric, param_dtype=x.dtype)
    assert_codec_matches(x, qp)


@pytest.mark.parametrize("symmetric", (False, True), ids=("asym", "sym"))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_matches_kvcache_compress(layout, symmetric):
    """The bytes and parameters a cache segment stores (quant.kvcache.compress) are reproduced."""
    shape = shape_for(layout, 3)
    x = data(shape, torch.float16, seed=5)
    segment = compress(x, codec_for(layout, 3, shape, symmetric))
    assert torch.equal(quantize_pack(x, segment.qparams).data, segment.codes.data)
    out = torch.empty(shape, dtype=torch.float16)
    segment.dequantize_into(out)
    assert torch.equal(unpack_dequantize(segment.codes, segment.qparams), out)


@pytest.mark.parametrize("symmetric", (False, True), ids=("asym", "sym"))
@pytest.mark.parametrize("bits", (3, 4))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_constant_blocks(layout, bits, symmetric):
    """scale 0 (max == min; symmetric: all zero) quantizes with safe = 1 and dequantizes exactly."""
    shape = shape_for(layout, bits)
    x = data(shape, torch.float16, seed=1)
    x[1] = 0.0 if symmetric else 0.75  # whole batch element: constant in every layout (blocks have batch 1)
    qp = choose_qparams(x.float(), bits, block_for(layout, bits, shape), symmetric=symmetric, param_dtype=x.dtype)
    assert bool((qp.scale[1] == 0).all())
    got = assert_codec_matches(x, qp)
    assert torch.equal(unpack_dequantize(got, qp)[1], x[1])


@pytest.mark.parametrize("param_dtype", (torch.float32, torch.float16), ids=str)
@pytest.mark.parametrize("symmetric", (False, True), ids=("asym", "sym"))
@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_rounding_ties(layout, bits, symmetric, param_dtype):
    """x = zero + (k + 0.5)·scale exactly: every division lands on a tie, rounded to even as torch.round
    does (a round-half-up or approximate-division kernel flips codes here); k runs one step past both
    ends of the range, so clamping is exercised too."""
    shape = shape_for(layout, bits)
    block = block_for(layout, bits, shape)
    compact = tuple(n // b for n, b in zip(shape, block))
    gen = torch.Generator().manual_seed(bits)
    scale = 2.0 ** torch.randint(-3, 2, compact, generator=gen).float()  # powers of two: exact quotients
    half = 2 ** (bits - 1)
    if symmetric:
        zero, lo, hi = None, -half - 1, half
    else:
        zero, lo, hi = torch.randint(-8, 8, compact, generator=gen).float() * scale, -1, 2 ** bits
    k = torch.randint(lo, hi + 1, shape, generator=gen).float()
    expand = [d for n, b in zip(compact, block) for d in (n, b)]

    def broadcast(p):
        return p.reshape([d if i % 2 == 0 else 1 for i, d in enumerate(expand)]).expand(expand).reshape(shape)

    x = (k + 0.5) * broadcast(scale) + (0.0 if zero is None else broadcast(zero))
    ratio = (x - (0.0 if zero is None else broadcast(zero))) / broadcast(scale)
    assert torch.equal(ratio - 0.5, k)  # every element is an exact tie
    qp = QParams(scale.to(param_dtype), None if zero is None else zero.to(param_dtype), bits, block)
    assert_codec_matches(x, qp)


@pytest.mark.parametrize("dtype", (torch.float32, torch.bfloat16), ids=str)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_non_contiguous(layout, dtype):
    """A slice of the cache window along tokens, and a [B, T, H, D] projection viewed as [B, H, T, D]."""
    bits = 3
    _, _, tokens, dim = shape_for(layout, bits)
    big = data((B, H, tokens + 6, dim), dtype, seed=2)
    window = big[:, :, 3:3 + tokens]
    projected = data((B, tokens, H, dim), dtype, seed=3).transpose(1, 2)
    for x in (window, projected):
        assert not x.is_contiguous()
        for symmetric in (False, True):
            qp = choose_qparams(x.float(), bits, block_for(layout, bits, x.shape), symmetric=symmetric,
                                param_dtype=x.dtype)
            assert_codec_matches(x, qp)


@pytest.mark.parametrize("symmetric", (False, True), ids=("asym", "sym"))
@pytest.mark.parametrize("bits", (2, 4))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_clip_ratio_clamps(layout, bits, symmetric):
    shape = shape_for(layout, bits)
    x = data(shape, torch.float16, seed=4)
    qp = choose_qparams(x.float(), bits, block_for(layout, bits, shape), symmetric=symmetric, clip_ratio=0.7,
                        param_dtype=x.dtype)
    got = assert_codec_matches(x, qp)
    codes = unpack(got)
    assert bool((codes == 2 ** bits - 1).any())  # values beyond the clipped range were clamped
    if not symmetric:
        assert bool((codes == 0).any())


@pytest.mark.parametrize("out_dtype", DTYPES, ids=str)
@pytest.mark.parametrize("symmetric", (False, True), ids=("asym", "sym"))
def test_out_slice(symmetric, out_dtype):
    """out= writes into a slice of a larger tensor (Segment.dequantize_into) and nothing else."""
    shape = shape_for("headrow", 3)
    x = data(shape, torch.float32, seed=6)
    qp = choose_qparams(x, 3, block_for("headrow", 3, shape), symmetric=symmetric)
    packed = pack(quantize(x, qp), 3)
    expected = torch.full((B, H, shape[2] + 5, shape[3]), -7.0, dtype=out_dtype)
    actual = expected.clone()
    dequantize(unpack(packed), qp, out=expected[:, :, 2:2 + shape[2]])
    result = unpack_dequantize(packed, qp, out=actual[:, :, 2:2 + shape[2]])
    assert result.data_ptr() == actual[:, :, 2:].data_ptr()
    assert torch.equal(actual, expected)


def test_errors():
    x = data((B, H, 8, 12), torch.float32)
    qp = choose_qparams(x, 4, (1, 1, 1, 12))
    packed = quantize_pack(x, qp)
    with pytest.raises(ValueError, match="4-D"):
        quantize_pack(x[0], QParams(qp.scale[0], qp.zero[0], 4, (1, 1, 12)))
    with pytest.raises(ValueError, match="bits=5"):
        quantize_pack(x, QParams(qp.scale, qp.zero, 5, qp.block_size))
    with pytest.raises(ValueError, match="floating-point"):
        quantize_pack(x.to(torch.int32), qp)
    with pytest.raises(ValueError, match="block_size"):
        quantize_pack(x, QParams(qp.scale, qp.zero, 4, (1, 1, 1, 5)))
    with pytest.raises(ValueError, match="qparams.scale shape"):
        quantize_pack(x[:, :, :4], qp)
    bad = x.clone()
    bad[1, 0, 2, 3] = float("nan")
    with pytest.raises(NonFiniteError, match="NaN"):
        quantize_pack(bad, qp)
    with pytest.raises(ValueError, match="4-D"):
        unpack_dequantize(PackedCodes(packed.data[0], 4, 12), QParams(qp.scale[0], qp.zero[0], 4, (1, 1, 12)))
    with pytest.raises(ValueError, match="bits=5"):
        unpack_dequantize(PackedCodes(packed.data, 5, 12), qp)
    with pytest.raises(ValueError, match="packed at bits=4"):
        unpack_dequantize(packed, QParams(qp.scale, qp.zero, 2, qp.block_size))
    with pytest.raises(ValueError, match="bytes per row"):
        unpack_dequantize(PackedCodes(packed.data[..., :5], 4, 12), qp)
    with pytest.raises(ValueError, match="out shape"):
        unpack_dequantize(packed, qp, out=torch.empty(B, H, 7, 12))
    with pytest.raises(ValueError, match="dtype"):
        unpack_dequantize(packed, qp, torch.int32)
