"""The KV cache against float64 re-statements of the reference code's arithmetic.

GEAR: github opengear-project/GEAR, GEARLM/GEARLM/Simulated/compress_function.py at commit
4ca6495740fef09d360fa1f0bd97f6d04680bcee (fake_uniformquantization,
fake_dense_sparse_uniformquantization, fake_poweriteration, fake_outquant_with_lrap,
compress_insert_function's rank = int(min(seq_len, H·D) · rank)).
KIVI: github jy-yuan/KIVI at 876b4d2d08e3b1d5f70d0969c299d8c7c42ddfb6, quant/new_pack.py
(triton_quantize_and_pack_along_last_dim) and models/llama_kivi.py (LlamaAttention_KIVI.forward).

Scope is per sequence (our documented deviation: GEAR flattens the whole batch), so the
re-statements run per batch element. Shapes are odd and batches > 1 on purpose.
"""

import pytest
import torch

from quant import KVQuantSpec
from quant.kvcache import LOW_RANK_SEED, POWER_ITERATIONS, QuantizedKVLayer, codecs_for, compress
from quant.packing import unpack


def data(shape, seed):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    x[..., 1] *= 8.0  # an outlier channel, as in real keys
    return x


# ---------------------------------------------------------------- float64 re-statements
def gear_uniform(x, bits):
    """fake_uniformquantization over one flat block (float64)."""
    x = x.double()
    lo, hi = x.min(), x.max()
    step = (hi - lo) / (2 ** bits - 1)
    return torch.round((x - lo) / step) * step + lo


def gear_dense_sparse(flat, bits, left):
    """fake_dense_sparse_uniformquantization on a flat vector: sort, quantize the middle."""
    out = flat.double().clone()
    order = torch.argsort(flat)
    k = int(flat.numel() * left / 2)
    middle = order[k:flat.numel() - k]
    out[middle] = gear_uniform(out[middle], bits)
    return out


def gear_power_iteration(matrix, rank, loop=POWER_ITERATIONS):
    """fake_poweriteration on a [rows, H·D] matrix, float64, from our fixed-seed start."""
    n = matrix.shape[1]
    rank = min(rank, *matrix.shape)
    p = torch.rand(n, rank, generator=torch.Generator().manual_seed(LOW_RANK_SEED)).double()
    for i in range(loop):
        if i == loop - 1:
            p = torch.linalg.qr(p).Q
        q = matrix @ p
        if i == loop - 1:
            q = torch.linalg.qr(q).Q
        p = matrix.T @ q
    return q @ p.T


def gear_outquant_with_lrap(x, bits, left, rank=None, rank_fraction=None):
    """fake_outquant_with_lrap per sequence: quantized + L, L added at EVERY position."""
    b, h, t, d = x.shape
    out = torch.empty(b, t, h * d, dtype=torch.float64)
    for i in range(b):
        rows = x[i].transpose(0, 1).reshape(t, h * d).double()
        quantized = gear_dense_sparse(rows.reshape(-1), bits, left).reshape(t, h * d)
        r = rank if rank is not None else int(min(t, h * d) * rank_fraction)
        error = rows - quantized  # zero at outlier positions
        out[i] = quantized + (gear_power_iteration(error, r) if r else 0)
    return out.reshape(b, t, h, d).transpose(1, 2)


def kivi_keys(x, bits, group):  # per channel, groups of G tokens (quant_and_pack_kcache)
    b, h, t, d = x.shape
    rows = x.double().permute(0, 1, 3, 2).reshape(-1, group)
    return _minmax_rows(rows, bits).reshape(b, h, d, t).permute(0, 1, 3, 2)


def kivi_values(x, bits, group):  # per token, groups of G channels (quant_and_pack_vcache)
    return _minmax_rows(x.double().reshape(-1, group), bits).reshape(x.shape)


def _minmax_rows(rows, bits):
    mn, mx = rows.min(1, keepdim=True).values, rows.max(1, keepdim=True).values
    scale = (mx - mn) / (2 ** bits - 1)
    return ((rows - mn) / scale).clamp(0, 2 ** bits - 1).round() * scale + mn


def close(got, ref, x, bits, frac=0.999):
    """Equal up to float32 rounding; a rare element may land on the neighbouring grid point
    where float32 and float64 disagree about a rounding tie."""
    step = (x.max() - x.min()).item() / (2 ** bits - 1)
    diff = (got.double() - ref).abs()
    assert diff.max().item() <= step * 1.01 + 1e-4
    assert (diff <= 1e-3).float().mean().item() >= frac


# ---------------------------------------------------------------- bit-exact codes
def float32_codes(x, bits, block_view):
    """The references' codes in float32: round((x - min) / ((max - min) / (2^b - 1)))."""
    blocks = block_view(x.float())
    lo, hi = blocks.amin(-1, keepdim=True), blocks.amax(-1, keepdim=True)
    step = (hi - lo) / (2 ** bits - 1)
    return torch.round((blocks - lo) / step).clamp(0, 2 ** bits - 1)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("spec_id, view", [
    ("uniform", lambda x: x.reshape(x.shape[0], -1)),                                 # per sequence
    ("uniform-token", lambda x: x.transpose(1, 2).reshape(x.shape[0], x.shape[2], -1)),  # GEAR: H·D per token
    ("uniform-headrow", lambda x: x),                                                  # head_dim per head row
    ("group-g8-r0", None),
])
def test_codes_are_bit_exact_with_the_reference_arithmetic(bits, spec_id, view):
    x = data((3, 3, 24, 40), seed=bits)
    keys_codec, values_codec = codecs_for(KVQuantSpec.from_id(f"kv{bits}-{spec_id}"))
    for codec, which in ((keys_codec, "keys"), (values_codec, "values")):
        codes = unpack(compress(x, codec).codes).float()
        if view is not None:
            expected = float32_codes(x, bits, view).reshape(view(x).shape)
            assert torch.equal(view(codes), expected)
        elif which == "keys":  # KIVI keys: per channel over G tokens
            k = lambda t: t.permute(0, 1, 3, 2).reshape(3, 3, 40, 3, 8)
            assert torch.equal(k(codes), float32_codes(x, bits, k))
        else:  # KIVI values: per token over G channels
            v = lambda t: t.reshape(3, 3, 24, 5, 8)
            assert torch.equal(v(codes), float32_codes(x, bits, v))


# ---------------------------------------------------------------- GEAR outlier + low rank
@pytest.mark.parametrize("spec, kwargs", [
    (KVQuantSpec("outlier", 2, outlier_ratio=0.02, rank=3), dict(rank=3)),
    (KVQuantSpec("outlier", 4, outlier_ratio=0.05, rank_fraction=0.1), dict(rank_fraction=0.1)),
    (KVQuantSpec("outlier", 3, outlier_ratio=0.02), dict(rank=0)),
])
def test_outlier_low_rank_matches_gear_with_l_added_everywhere(spec, kwargs):
    x = data((3, 3, 37, 24), seed=7)  # T = 37, H·D = 72
    keys, _ = QuantizedKVLayer(spec).update(x, x)
    ref = gear_outquant_with_lrap(x, spec.bits, spec.outlier_ratio, **kwargs)
    close(keys, ref, x, spec.bits)
    if spec.rank or spec.rank_fraction:  # outlier positions carry L too: not exact
        flat = x.transpose(1, 2).reshape(3, -1)
        k = int(flat.shape[1] * spec.outlier_ratio / 2)
        top = torch.topk(flat, k, dim=1).indices
        got = keys.transpose(1, 2).reshape(3, -1).gather(1, top)
        assert not torch.equal(got, flat.gather(1, top))


def test_rank_fraction_follows_gears_rank_rule_per_compressed_block():
    spec = KVQuantSpec.from_id("kv2-outlier-s2-lrf0.1")
    x = data((2, 3, 37, 24), seed=8)
    segment = compress(x, codecs_for(spec)[0])
    assert segment.low_rank[0][1].shape[-1] == int(min(37, 72) * 0.1)
    wide = compress(data((2, 3, 100, 8), seed=9), codecs_for(spec)[0])  # H·D = 24 < T
    assert wide.low_rank[0][1].shape[-1] == int(24 * 0.1)


def test_exactoutliers_keeps_outliers_exact_and_differs_from_gear_only_there():
    x = data((2, 3, 37, 24), seed=10)
    gear, _ = QuantizedKVLayer(KVQuantSpec.from_id("kv2-outlier-s2-lr3")).update(x, x)
    ours, _ = QuantizedKVLayer(KVQuantSpec.from_id("kv2-outlier-s2-lr3-exactoutliers")).update(x, x)
    differs = (gear != ours).transpose(1, 2).reshape(2, -1)
    flat = x.transpose(1, 2).reshape(2, -1)
    k = int(flat.shape[1] * 0.01)
    outliers = torch.cat([torch.topk(flat, k, 1).indices, torch.topk(flat, k, 1, largest=False).indices], 1)
    mask = torch.zeros_like(differs).scatter(1, outliers, True)
    assert not (differs & ~mask).any()
    assert torch.equal(ours.transpose(1, 2).reshape(2, -1).gather(1, outliers), flat.gather(1, outliers))


def test_constant_blocks_stay_exact_where_the_references_return_nan():
    for spec_id in ("kv2-uniform-token", "kv2-uniform-headrow", "kv2-outlier-s2-lrf0.5", "kv2-group-g8-r0"):
        c = torch.full((2, 3, 16, 8), -0.5)
        keys, values = QuantizedKVLayer(KVQuantSpec.from_id(spec_id)).update(c, c)
        assert torch.equal(keys, c) and torch.equal(values, c), spec_id


# ---------------------------------------------------------------- KIVI streaming
def test_kivi_streaming_counts_and_full_precision_at_each_decode_step():
    """300-token prefill, then decode: after each step keys keep l mod R tokens in full
    precision and values min(l, R); at the step itself the new token (and the whole window
    KIVI's attention reads: (l-1) mod R + 1 keys, min(l, R + 1) values) is full precision."""
    R, G, bits = 128, 32, 2
    layer = QuantizedKVLayer(KVQuantSpec("group", bits, group_size=G, residual_length=R))
    raw_k, raw_v = data((2, 2, 300, 32), seed=1), data((2, 2, 300, 32), seed=2)
    layer.update(raw_k, raw_v)
    assert (layer.keys.shape[-2], layer.values.shape[-2]) == (300 % R, R)
    for step in range(140):  # crosses the key flush at l = 384
        new_k, new_v = data((2, 2, 1, 32), seed=1000 + step), data((2, 2, 1, 32), seed=5000 + step)
        raw_k, raw_v = torch.cat([raw_k, new_k], 2), torch.cat([raw_v, new_v], 2)
        keys, values = layer.update(new_k, new_v)
        length = raw_k.shape[2]
        window_k, window_v = (length - 1) % R + 1, min(length, R + 1)
        assert torch.equal(keys[:, :, -window_k:], raw_k[:, :, -window_k:]), step
        assert torch.equal(values[:, :, -window_v:], raw_v[:, :, -window_v:]), step
        assert not torch.equal(keys[:, :, -window_k - 1], raw_k[:, :, -window_k - 1])
        assert not torch.equal(values[:, :, -window_v - 1], raw_v[:, :, -window_v - 1])
        assert layer.keys.shape[-2] == length % R and layer.values.shape[-2] == min(length, R), step
    # everything compressed so far equals KIVI's arithmetic on the same blocks
    keys, values = layer.update(new_k, new_v)  # one more step reads the whole history
    raw_k, raw_v = torch.cat([raw_k, new_k], 2), torch.cat([raw_v, new_v], 2)
    qk, qv = 384, raw_v.shape[2] - 1 - R
    close(keys[:, :, :qk], kivi_keys(raw_k[:, :, :qk], bits, G), raw_k, bits)
    close(values[:, :, :qv], kivi_values(raw_v[:, :, :qv], bits, G), raw_v, bits)


@pytest.mark.parametrize("spec_id", ["kv4-group-g8-r0", "kv4-uniform", "kv4-outlier-s2-lrf0.2", "kv4-uniform-r8"])
def test_a_decode_token_is_attended_in_full_precision_and_compressed_afterwards(spec_id):
    layer = QuantizedKVLayer(KVQuantSpec.from_id(spec_id))
    history = data((3, 2, 13, 16), seed=3)
    layer.update(history, history)
    for step in range(20):
        compressed = history.shape[2] - layer.keys.shape[-2]  # after the previous step
        new = data((3, 2, 1, 16), seed=200 + step)
        keys, values = layer.update(new, new)
        history = torch.cat([history, new], 2)
        assert torch.equal(keys[:, :, compressed:], history[:, :, compressed:]), step  # window + new token
        assert torch.equal(values[:, :, -1:], new), step
        if compressed:
            assert not torch.equal(keys[:, :, compressed - 1], history[:, :, compressed - 1]), step
    assert layer.keys.shape[-2] == (33 % 8 if spec_id.endswith("r8") else 33 % 8 if "g8" in spec_id else 0)


def test_batch_elements_are_compressed_independently():
    """Per-sequence scope: a sample's result does not depend on its batch mates."""
    x = data((3, 2, 21, 16), seed=4)
    for spec_id in ("kv2-uniform", "kv2-uniform-token", "kv2-outlier-s2-lr2", "kv2-group-g8-r8"):
        together, _ = QuantizedKVLayer(KVQuantSpec.from_id(spec_id)).update(x, x)
        alone, _ = QuantizedKVLayer(KVQuantSpec.from_id(spec_id)).update(x[1:2], x[1:2])
        torch.testing.assert_close(together[1:2], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("text", ["kv2-outlier-s2-lrf0.02", "kv2-outlier-s2-lr4-exactoutliers",
                                  "kv2-outlier-s2-lrf0.25-exactoutliers-r16", "kv4-uniform-headrow",
                                  "kv4-uniform-token", "kv4-uniform-headrow-r8-sym"])
def test_new_ids_parse_back(text):
    spec = KVQuantSpec.from_id(text)
    assert spec.id == text and KVQuantSpec.from_id(spec.id) == spec


@pytest.mark.parametrize("text, match", [
    ("kv2-outlier-s2-lr4-lrf0.1", "not both"),
    ("kv2-outlier-s2-exactoutliers", "needs rank > 0"),
    ("kv4-uniform-lrf0.1", "does not use rank_fraction"),
    ("kv4-group-g32-r128-exactoutliers", "does not use exact_outliers"),
    ("kv2-outlier-lrf1.5", r"rank_fraction=1.5"),
])
def test_bad_new_ids_are_errors(text, match):
    with pytest.raises(ValueError, match=match):
        KVQuantSpec.from_id(text)
