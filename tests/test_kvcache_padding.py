"""Left padding enters no compression statistic (a sequence compresses as it would alone), and on
CUDA the finite checks of the quantized cache are recorded on the device instead of syncing at every
decode step (exercised here on CPU with ``defer_checks=True``)."""

import pytest
import torch

from quant import KVQuantSpec, NonFiniteError, QuantizedKVCache
from quant.kvcache import codecs_for, compress, fill_padding, split_outliers
from transformers import LlamaConfig

HEADS, DIM = 2, 16


def dequantized(segment) -> torch.Tensor:
    out = torch.empty(segment.shape[0], segment.shape[1], segment.tokens, segment.shape[3])
    segment.dequantize_into(out)
    return out


def padded_batch(alone: torch.Tensor, pad: int, mate_tokens: int) -> torch.Tensor:
    """``alone`` behind ``pad`` tokens of extreme junk, batched with a mate of ``mate_tokens`` real tokens."""
    torch.manual_seed(1)
    junk = 50 * torch.randn(1, HEADS, pad, DIM)
    mate = torch.randn(1, HEADS, mate_tokens, DIM) * 3
    return torch.cat([torch.cat([junk, alone], dim=2), mate], dim=0)


@pytest.mark.parametrize("spec_id", ["kv4-uniform", "kv2-uniform-token", "kv4-uniform-headrow", "kv2-outlier-s2",
                                     "kv4-outlier-s10-lr2", "kv2-outlier-s2-lrf0.2", "kv2-outlier-s2-lr3-exactoutliers"])
def test_a_padded_sequence_compresses_exactly_as_it_would_alone(spec_id):
    torch.manual_seed(0)
    alone = torch.randn(1, HEADS, 12, DIM)
    alone[0, 1, 3, 5] = 9.0   # an outlier of its own
    batch = padded_batch(alone, pad=5, mate_tokens=17)
    for codec in set(codecs_for(KVQuantSpec.from_id(spec_id))):
        by_itself = dequantized(compress(alone, codec))
        together = dequantized(compress(batch, codec, padding=[5, 0]))
        assert torch.equal(together[:1, :, 5:], by_itself), (spec_id, codec.block)
        # the mate has no padding: it compresses as it would alone too
        assert torch.equal(together[1:], dequantized(compress(batch[1:], codec)))


def test_without_the_padding_the_junk_leaks_into_the_real_tokens():
    """What the padding argument prevents: a per-sequence range stretched by padded positions."""
    torch.manual_seed(0)
    alone = torch.randn(1, HEADS, 12, DIM)
    codec = codecs_for(KVQuantSpec.from_id("kv4-uniform"))[0]
    leaked = dequantized(compress(padded_batch(alone, 5, 17), codec))[:1, :, 5:]
    assert not torch.equal(leaked, dequantized(compress(alone, codec)))


def test_outliers_are_chosen_among_real_entries_and_counted_on_them():
    x = torch.tensor([[100.0, -100.0, 1.0, 2.0, 3.0, 4.0, 5.0, -6.0],
                      [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, -7.5]])
    values, index, filled = split_outliers(x, 0.5, skip=[4, 0])   # row 0: 4 real entries -> k = 1; row 1: k = 2
    assert index[0].tolist() == [6, 0, 7, 0] and values[0].tolist() == [5.0, 100.0, -6.0, 100.0]   # spare slots: 0
    assert index[1].tolist() == [6, 5, 7, 0] and values[1].tolist() == [6.5, 5.5, -7.5, 0.5]
    assert filled[0, 4:].tolist() == [3.0, 4.0, 4.0, 4.0]   # the outliers take the largest remaining real value


def test_padding_is_filled_with_the_first_real_token():
    x = torch.arange(2 * 1 * 4 * 1, dtype=torch.float32).reshape(2, 1, 4, 1)
    assert fill_padding(x, [2, 0])[:, 0, :, 0].tolist() == [[2.0, 2.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]]
    assert fill_padding(x, [9, 0])[0, 0, :, 0].tolist() == [3.0, 3.0, 3.0, 3.0]   # a block of padding only


def config(layers: int = 2) -> LlamaConfig:
    return LlamaConfig(hidden_size=HEADS * DIM, num_attention_heads=HEADS, num_key_value_heads=HEADS,
                       num_hidden_layers=layers, intermediate_size=64, vocab_size=32)


@pytest.mark.parametrize("spec_id", ["kv4-uniform", "kv2-outlier-s2"])
def test_the_cache_told_the_attention_mask_reads_each_sequence_as_alone(spec_id):
    spec = KVQuantSpec.from_id(spec_id)
    torch.manual_seed(0)
    alone_keys, alone_values = torch.randn(1, HEADS, 9, DIM), torch.randn(1, HEADS, 9, DIM)
    keys = padded_batch(alone_keys, 4, 13)
    values = padded_batch(alone_values, 4, 13)
    mask = torch.ones(2, 13, dtype=torch.long)
    mask[0, :4] = 0
    batched, single = QuantizedKVCache(spec, config()), QuantizedKVCache(spec, config())
    batched.set_padding(mask)
    batched.update(keys, values, 0)
    single.update(alone_keys, alone_values, 0)
    for step in range(3):
        new_keys, new_values = torch.randn(2, HEADS, 1, DIM), torch.randn(2, HEADS, 1, DIM)
        read_keys, read_values = batched.update(new_keys, new_values, 0)
        one_keys, one_values = single.update(new_keys[:1], new_values[:1], 0)
        assert torch.equal(read_keys[:1, :, 4:], one_keys) and torch.equal(read_values[:1, :, 4:], one_values), step


def test_right_padding_is_refused():
    cache = QuantizedKVCache(KVQuantSpec.from_id("kv4-uniform"), config())
    with pytest.raises(ValueError, match="not left-padded"):
        cache.set_padding(torch.tensor([[1, 1, 0], [1, 1, 1]]))


def test_deferred_checks_name_layer_step_and_position_when_asked():
    cache = QuantizedKVCache(KVQuantSpec.from_id("kv4-uniform"), config(), defer_checks=True)
    cache.update(torch.randn(1, HEADS, 6, DIM), torch.randn(1, HEADS, 6, DIM), 1)
    for step in range(1, 4):
        values = torch.randn(1, HEADS, 1, DIM)
        if step == 2:
            values[0, 1, 0, 3] = float("nan")
        cache.update(torch.randn(1, HEADS, 1, DIM), values, 1)   # no error mid-generation
    with pytest.raises(NonFiniteError, match=r"layer 1 \(kv4-uniform\): values hold 1 NaN/inf value of 32 at update "
                                             r"call 2 \(decode step 2, 7 tokens cached before it\); first at token "
                                             r"position 7 \(batch 0, head 1\)"):
        cache.check_finite()
    cache.check_finite()   # reported once


def test_deferred_checks_never_sync_during_updates(monkeypatch):
    """Every host read of a tensor (bool, item, tolist, int, float) is counted while the cache
    compresses at every step: none in deferred mode, one per compression in the immediate mode."""
    reads = []
    for name in ("__bool__", "item", "tolist", "__int__", "__float__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name):
            reads.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, counted)
    for defer, expected in ((True, 0), (False, 6)):
        reads.clear()
        cache = QuantizedKVCache(KVQuantSpec.from_id("kv2-outlier-s2"), config(1), defer_checks=defer)
        cache.update(torch.randn(1, HEADS, 6, DIM), torch.randn(1, HEADS, 6, DIM), 0)
        for _ in range(5):
            cache.update(torch.randn(1, HEADS, 1, DIM), torch.randn(1, HEADS, 1, DIM), 0)
        assert len(reads) == expected, (defer, reads)
    cache.check_finite()
