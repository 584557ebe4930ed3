"""The torch packed decode attention (quant/packed_math.py): the same sums as attention over the
dequantized history, for every block layout, and generation through it on CPU."""


import pytest
import torch

from quant import KVQuantSpec, QuantizedKVCache
from quant.affine import QParams, dequantize
from quant.packed_math import packed_scores, packed_weighted_sum
from quant.packing import pack, unpack
from tiny_models import check_packed_decode_steps, greedy, packed_llama_pair

# every block layout the cache stores: (bh, bt, bd) over [B, H, T, D] = [2, 4, 24, 16]
LAYOUTS = {"tensor": (4, 24, 16), "token": (4, 1, 16), "headrow": (1, 1, 16), "channel_group": (1, 8, 1),
           "token_group": (1, 1, 8), "head_channel": (2, 1, 4), "mixed": (1, 4, 8)}


def packed_block(block, bits, symmetric, gen):
    codes = torch.randint(0, 2 ** bits, (2, 4, 24, 16), dtype=torch.uint8, generator=gen)
    params = (2, 4 // block[0], 24 // block[1], 16 // block[2])
    scale = torch.rand(params, generator=gen) + 0.1
    zero = None if symmetric else torch.randn(params, generator=gen)
    return pack(codes, bits), QParams(scale, zero, bits, (1, *block))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("bits,symmetric", [(4, False), (2, False), (3, True), (8, False)])
def test_scores_and_weighted_sums_equal_those_of_the_dequantized_history(layout, bits, symmetric):
    gen = torch.Generator().manual_seed(0)
    codes, qparams = packed_block(LAYOUTS[layout], bits, symmetric, gen)
    history = dequantize(unpack(codes), qparams, torch.float32).repeat_interleave(3, dim=1)  # GQA: 12 query heads
    query = torch.randn(2, 12, 16, generator=gen)
    weights = torch.rand(2, 12, 24, generator=gen)
    for got, expected, magnitude in (
            (packed_scores(query, codes, qparams), torch.einsum("bqd,bqtd->bqt", query, history),
             torch.einsum("bqd,bqtd->bqt", query.abs(), history.abs())),
            (packed_weighted_sum(weights, codes, qparams), torch.einsum("bqt,bqtd->bqd", weights, history),
             torch.einsum("bqt,bqtd->bqd", weights, history.abs()))):
        # float32 rounding of reassociated sums: relative to the sum of the terms' magnitudes
        torch.testing.assert_close(got, expected, rtol=0, atol=float(magnitude.max()) * 2e-6)


def test_a_wrong_scale_or_zero_changes_the_result():
    gen = torch.Generator().manual_seed(1)
    codes, qparams = packed_block(LAYOUTS["channel_group"], 4, False, gen)
    query, weights = torch.randn(2, 4, 16, generator=gen), torch.rand(2, 4, 24, generator=gen)
    for wrong in (QParams(qparams.scale * 1.01, qparams.zero, 4, qparams.block_size),
                  QParams(qparams.scale, qparams.zero + 0.01, 4, qparams.block_size)):
        assert not torch.allclose(packed_scores(query, codes, qparams), packed_scores(query, codes, wrong))
        assert not torch.allclose(packed_weighted_sum(weights, codes, qparams),
                                  packed_weighted_sum(weights, codes, wrong))


def test_shapes_that_do_not_match_the_cache_are_refused():
    codes, qparams = packed_block(LAYOUTS["token"], 4, False, torch.Generator().manual_seed(2))
    with pytest.raises(ValueError, match=r"invalid query shape=\(2, 6, 16\): expected \[batch=2, a multiple of heads=4"):
        packed_scores(torch.randn(2, 6, 16), codes, qparams)
    with pytest.raises(ValueError, match=r"invalid query shape=\(3, 4, 16\): expected \[batch=2"):
        packed_scores(torch.randn(3, 4, 16), codes, qparams)
    with pytest.raises(ValueError, match=r"invalid weights shape=\(2, 4, 23\).*tokens=24"):
        packed_weighted_sum(torch.rand(2, 4, 23), codes, qparams)


@pytest.mark.parametrize("spec_id", ["kv4-uniform", "kv3-uniform-token-r4", "kv2-uniform-headrow-sym",
                                     "kv2-group-g8-r0", "kv4-group-g8-r8-sym", "kv2-outlier-s4-r4",
                                     "kv3-outlier-s2-lrf0.25-exactoutliers"])
def test_a_decode_step_in_torch_equals_attention_over_the_dequantized_history(spec_id):
    check_packed_decode_steps(spec_id)


@pytest.mark.parametrize("spec_id", ["kv4-group-g8-r8", "kv2-outlier-s2-lr4"])
def test_generation_through_the_torch_packed_attention_matches_the_dequantizing_path(spec_id, monkeypatch):
    """A left-padded batch of 3 on a GQA Llama on CPU: same tokens, logits within float noise, and
    the packed sums really ran at every decode step of every layer."""
    import quant.packed_math as packed_math

    model, packed, ids, mask = packed_llama_pair()
    calls = []
    real = packed_math.packed_weighted_sum
    monkeypatch.setattr(packed_math, "packed_weighted_sum", lambda *a: calls.append(1) or real(*a))
    spec = KVQuantSpec.from_id(spec_id)
    expected = greedy(model, ids, mask, QuantizedKVCache(spec, model.config))
    assert not calls
    got = greedy(packed, ids, mask, QuantizedKVCache(spec, packed.config))
    assert torch.equal(got.sequences, expected.sequences)
    for a, b in zip(got.logits, expected.logits):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert len(calls) >= 5 * model.config.num_hidden_layers
