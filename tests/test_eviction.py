"""KV eviction (quant/eviction.py) and its specs (quant/token_spec.py): each method's selection rule
pinned by worked examples derived from its reference code (docs/dev/eviction-references.md), scores
against a naive computation, and the cache keeping, quantizing and counting what stays."""

import math

import pytest
import torch
from transformers import LlamaConfig

from quant import KVQuantSpec, QuantizedKVCache
from quant.eviction import (adakv_budgets, h2o_scores, keep_from_scores, pool, pyramid_budget, select_kept,
                            stable_top, streaming_keep, window_vote)
from quant.token_spec import EvictSpec
from pytest_lvlmbench.core.settings import Setting
from tiny_models import closed_form_bytes


# ---------------------------------------------------------------- specs
@pytest.mark.parametrize("text", ["evict-streaming-b40", "evict-streaming-b20-s2", "evict-h2o-b40", "evict-h2o-b40-w4",
                                  "evict-snapkv-b40", "evict-snapkv-b40-w8-k3", "evict-pyramidkv-b30-w4-beta10",
                                  "evict-adakv-b40-w4-a50", "evict-adakv-b40-k5"])
def test_an_eviction_id_parses_back_to_an_equal_spec(text):
    spec = EvictSpec.from_id(text)
    assert spec.id == text and EvictSpec.from_id(spec.id) == spec


def test_defaults_follow_the_references_and_stay_out_of_the_id():
    assert EvictSpec.from_id("evict-snapkv-b40") == EvictSpec("snapkv", 40, window=32, kernel=5)
    assert EvictSpec.from_id("evict-adakv-b40").kernel == 7            # AdaKV's max-pool kernel
    assert EvictSpec("snapkv", 40, window=32, kernel=5).id == "evict-snapkv-b40"
    assert EvictSpec.from_id("evict-streaming-b40").sinks == 4         # kvpress n_sink


@pytest.mark.parametrize("text, message", [
    ("evict-snap-b40", r"invalid method='snap': allowed eviction methods are \('streaming', 'h2o'"),
    ("evict-snapkv-b0", r"invalid budget=0: must be an integer in 1..99"),
    ("evict-snapkv-b100", r"invalid budget=100"),
    ("evict-snapkv", r"expected 'evict-<method>-b<percent kept>"),
    ("evict-streaming-b40-w4", r"unknown option 'w4'; allowed options are s<sinks>"),
    ("evict-h2o-b40-k5", r"unknown option 'k5'; allowed options are w<window>"),
    ("evict-snapkv-b40-w4-w8", r"option 'w8' repeats window"),
    ("evict-snapkv-b40-k4", r"invalid kernel=4: must be odd"),
    ("evict-adakv-b40-a101", r"invalid alpha=101: must be an integer in 0..100"),
])
def test_a_bad_eviction_id_names_the_bad_part_and_what_is_allowed(text, message):
    with pytest.raises(ValueError, match=message):
        EvictSpec.from_id(text)


def test_a_field_the_method_does_not_use_is_refused():
    with pytest.raises(ValueError, match="method 'streaming' does not use window"):
        EvictSpec("streaming", 40, window=8)


def test_the_budget_is_counted_in_integers_not_kvpress_floats():
    """kvpress: int(10 * (1 - 0.9)) == 0 (0.09999...); ours keeps 1 of 10 at 10%."""
    assert int(10 * (1 - 0.9)) == 0
    assert EvictSpec("snapkv", 10).keep_count(10) == 1
    assert EvictSpec("snapkv", 40).keep_count(16) == 6 and EvictSpec("snapkv", 1).keep_count(5) == 1


# ---------------------------------------------------------------- selection rules (worked examples)
def test_ties_go_to_the_earlier_token_and_the_kept_are_in_positional_order():
    scores = torch.tensor([1., 1, 1, 1, 0, 0, 0, 0, 1, 1])
    assert stable_top(scores, 4).tolist() == [0, 1, 2, 3]
    assert stable_top(torch.tensor([0.2, 0.9, 0.5, 0.9]), 2).tolist() == [1, 3]   # by position, not by score


def test_streaming_llm_keeps_the_sinks_and_the_most_recent():
    """kvpress StreamingLLMPress.score: L=16 at 50% keeps 0-3 and 12-15; L=10 at 40% keeps the 4 sinks only."""
    assert streaming_keep(16, 8, 4).tolist() == [0, 1, 2, 3, 12, 13, 14, 15]
    assert streaming_keep(10, 4, 4).tolist() == [0, 1, 2, 3]
    assert streaming_keep(10, 3, 4).tolist() == [0, 1, 2]
    positions, valid = keep_from_scores(EvictSpec("streaming", 50), None, 16, batch=2, kv_heads=3)
    assert positions.shape == (2, 3, 8) and valid is None


def test_h2o_keeps_the_heavy_hitters_before_the_recent_window():
    """KVCache-Factory H2OKVCluster: column sums [2.10,.40,.90,.35,.80,.66 | .55,1.00], window 2, 4 kept:
    top-2 of the first six ({0, 2}) plus the window {6, 7}."""
    scores = torch.tensor([[[2.10, 0.40, 0.90, 0.35, 0.80, 0.66]]])
    positions, _ = keep_from_scores(EvictSpec("h2o", 50, window=2), scores, 8)
    assert positions.tolist() == [[[0, 2, 6, 7]]]


def test_snapkv_pools_the_window_vote_so_a_lone_spike_loses():
    """SnapKV avg_pool1d(kernel 3, padding counted): the vote [.30,.02,.05,.20,.01,.03,.15,.04] pools to
    [.1067,.1233,.09,.0867,.08,.0633,.0733,.0633]; 40% of 10 with window 2 keeps {0, 1} + {8, 9}.
    Without pooling the spike at 3 would win ({0, 3})."""
    vote = torch.tensor([[[0.30, 0.02, 0.05, 0.20, 0.01, 0.03, 0.15, 0.04]]])
    pooled = pool(vote, 3, "avg")
    assert torch.allclose(pooled, torch.tensor([[[0.32, 0.37, 0.27, 0.26, 0.24, 0.19, 0.22, 0.19]]]) / 3, atol=1e-6)
    spec = EvictSpec("snapkv", 40, window=2, kernel=3)
    assert keep_from_scores(spec, pooled, 10)[0].tolist() == [[[0, 1, 8, 9]]]
    assert keep_from_scores(spec, vote, 10)[0].tolist() == [[[0, 3, 8, 9]]]
    assert pool(vote, 3, "max")[0, 0, :2].tolist() == pytest.approx([0.30, 0.30])   # AdaKV: a plateau, a tie


def test_pyramidkv_spreads_the_budget_from_the_first_layer_down():
    """KVCache-Factory: 4 layers, L=100, 40 kept, window 8, beta 20: B=32, min 1, max 63, step 20."""
    budgets = [pyramid_budget(100, 40, 8, layer, 4, 20) for layer in range(4)]
    assert budgets == [63, 43, 23, 3]
    assert pyramid_budget(50, 40, 8, 0, 4, 20) == 32        # L < 2B: plain SnapKV everywhere
    assert [pyramid_budget(20, 6, 2, layer, 4, 20) for layer in range(4)] == [8, 6, 4, 2]   # tiny's shape


def test_adakv_lets_heads_compete_for_the_layer_budget_with_a_floor():
    """AdaKV update_kv_gqa: B=4, alpha 0.5 (floor 2): the top 8 of both heads fall 2 / 6, so budgets
    round(2*.5+2), round(6*.5+2) = 3, 5."""
    scores = torch.tensor([[[0.40, 0.30, 0.10, 0.08, 0.07, 0.05], [0.20, 0.18, 0.17, 0.16, 0.15, 0.14]]])
    assert adakv_budgets(scores, 4, 50) == [[3, 5]]
    positions, valid = keep_from_scores(EvictSpec("adakv", 75, window=2, alpha=50), scores, 8)
    assert valid.tolist() == [[[True, True, True, False, False, True, True], [True] * 7]]
    assert positions[0, 0, :3].tolist() == [0, 1, 2] and positions[0, 1, :5].tolist() == [0, 1, 2, 3, 4]
    assert positions[0, :, -2:].tolist() == [[6, 7], [6, 7]]


def test_a_window_longer_than_the_budget_is_cut_to_it():
    spec = EvictSpec("snapkv", 25, window=32)   # 16 tokens: 4 kept, all of them the most recent
    positions, _ = keep_from_scores(spec, torch.zeros(1, 1, 12), 16)
    assert positions.tolist() == [[[12, 13, 14, 15]]]


# ---------------------------------------------------------------- scores against naive loops
def naive_probs(query, key, scaling):
    """Causal softmax attention, one query row at a time, keys repeated over each group's query heads."""
    batch, heads, length, _ = query.shape
    group = heads // key.shape[1]
    out = torch.zeros(batch, heads, length, length)
    for b in range(batch):
        for h in range(heads):
            for i in range(length):
                logits = torch.stack([query[b, h, i] @ key[b, h // group, j] * scaling for j in range(i + 1)])
                out[b, h, i, :i + 1] = logits.softmax(dim=0)
    return out


@pytest.mark.parametrize("chunk", [256, 4])   # H2O's column sums over chunks of query rows: the same numbers
def test_the_window_vote_and_h2o_scores_match_a_naive_computation_under_gqa(chunk, monkeypatch):
    monkeypatch.setattr("quant.eviction.H2O_QUERY_CHUNK", chunk)
    torch.manual_seed(0)
    query, key = torch.randn(2, 4, 9, 8), torch.randn(2, 2, 9, 8)   # 4 query heads over 2 KV heads
    probs = naive_probs(query, key, 8 ** -0.5)
    window = 3
    vote = probs[:, :, -window:, :9 - window].sum(dim=2).reshape(2, 2, 2, 6).mean(dim=2)
    heavy = probs[:, :, :, :9 - window].sum(dim=2).reshape(2, 2, 2, 6).mean(dim=2)
    assert torch.allclose(window_vote(query, key, 8 ** -0.5, window, 2), vote, atol=1e-5)
    assert torch.allclose(h2o_scores(query, key, 8 ** -0.5, window, 2), heavy, atol=1e-5)


def test_select_kept_applies_each_rule_to_the_prefill_attention():
    torch.manual_seed(1)
    query, key = torch.randn(1, 4, 20, 8), torch.randn(1, 2, 20, 8)
    for text in ("evict-streaming-b40", "evict-h2o-b40-w4", "evict-snapkv-b40-w4", "evict-pyramidkv-b40-w4"):
        spec = EvictSpec.from_id(text)
        positions, valid = select_kept(spec, query, key, 8 ** -0.5, 1, 4)
        expected = 8 if spec.method != "pyramidkv" else 4 + pyramid_budget(20, 8, 4, 1, 4, 20)
        assert positions.shape == (1, 2, expected) and valid is None, text
        assert (positions.diff(dim=-1) > 0).all(), text          # positional order, no repeats
        if spec.method != "streaming":
            assert positions[..., -4:].tolist() == [[[16, 17, 18, 19]] * 2], text   # the window always stays


# ---------------------------------------------------------------- the cache
def config(layers=2, heads=4, kv_heads=2, head_dim=8):
    return LlamaConfig(num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
                       hidden_size=heads * head_dim, head_dim=head_dim, vocab_size=32)


def prefill(cache, query, key, value, layer=0):
    cache.update(key, value, layer)
    cache.select(layer, query, key, key.shape[-1] ** -0.5)


def test_the_cache_stores_the_kept_entries_quantized_and_counts_bytes_as_if_they_were_the_prompt():
    """Evict, then quantize what stays: the evicting cache's stored bytes and dequantized keys equal a
    plain quantized cache given only the kept entries (for every KV method and spec tested)."""
    torch.manual_seed(2)
    query, key, value = torch.randn(1, 4, 20, 8), torch.randn(1, 2, 20, 8), torch.randn(1, 2, 20, 8)
    for kv in ("fp16", "kv4-uniform", "kv2-uniform-token", "kv4-group-g4-r0", "kv2-outlier-s2-lr2"):
        spec, evict = KVQuantSpec.from_id(kv), EvictSpec.from_id("evict-snapkv-b40-w4")
        cache = QuantizedKVCache(spec, config(1), eviction=evict)
        prefill(cache, query, key, value)
        positions, _ = select_kept(evict, query, key, 8 ** -0.5, 0, 1)
        index = positions[..., None].expand(-1, -1, -1, 8)
        plain = QuantizedKVCache(spec, config(1))
        expected_keys, _ = plain.update(key.gather(2, index), value.gather(2, index), 0)
        assert cache.nbytes() == plain.nbytes(), kv
        new = torch.randn(1, 2, 1, 8)
        got, _ = cache.update(new, new, 0)
        want, _ = plain.update(new, new, 0)
        assert torch.equal(got, want), kv
        assert cache.get_seq_length() == 9 and cache.decoded_tokens() == 1 and cache.kept_by_layer() == [8.0]


@pytest.mark.parametrize("kv", ["kv4-uniform", "kv4-uniform-token", "kv2-group-g32-r128", "kv2-outlier-s2-lr4"])
def test_evict_then_quantize_stores_the_closed_form_of_the_entries_kept(kv):
    """kv + evict-snapkv-b25 on a 1,024-token fp16 prompt: each layer stores exactly what the KV spec's
    closed form gives for the 256 entries kept (tests/test_kvcache.py's storage formula)."""
    layers, heads, tokens, dim = 2, 4, 1024, 64
    spec = KVQuantSpec.from_id(kv)
    cache = QuantizedKVCache(spec, config(layers, heads, heads, dim), eviction=EvictSpec.from_id("evict-snapkv-b25"))
    generator = torch.Generator().manual_seed(6)
    for layer in range(layers):
        query, key, value = (torch.randn(1, heads, tokens, dim, generator=generator).half() for _ in range(3))
        prefill(cache, query, key, value, layer)
    assert cache.kept_by_layer() == [256.0] * layers
    assert cache.nbytes() == pytest.approx(closed_form_bytes(spec, layers, heads, 256, dim), rel=0.01)
    assert Setting.from_id(f"{kv}+evict-snapkv-b25").id == f"{kv}+evict-snapkv-b25"   # the id round-trips


def test_float_eviction_bytes_are_the_closed_form_of_the_entries_kept():
    torch.manual_seed(3)
    query, key, value = torch.randn(1, 4, 20, 8), torch.randn(1, 2, 20, 8), torch.randn(1, 2, 20, 8)
    cache = QuantizedKVCache(KVQuantSpec(), config(2), eviction=EvictSpec.from_id("evict-pyramidkv-b40-w4"))
    for layer in range(2):
        prefill(cache, query, key, value, layer)
    kept = [4 + pyramid_budget(20, 8, 4, layer, 2, 20) for layer in range(2)]
    assert cache.kept_by_layer() == kept
    assert cache.nbytes() == sum(kept) * 2 * 2 * 8 * 4   # keys + values, 2 KV heads, head_dim 8, float32


def test_adakv_pads_its_heads_masks_the_pad_and_counts_only_the_real_entries():
    torch.manual_seed(4)
    query, key, value = torch.randn(1, 4, 20, 8), torch.randn(1, 2, 20, 8), torch.randn(1, 2, 20, 8)
    cache = QuantizedKVCache(KVQuantSpec(), config(1), eviction=EvictSpec.from_id("evict-adakv-b40-w4-a0"))
    prefill(cache, query, key, value)
    layer = cache.layers[0]
    real = int(layer.key_valid.sum())
    assert real == 2 * 8   # alpha 0: the heads' budgets (plus their windows) sum to the layer's 2 x 8
    assert cache.nbytes() == real * 2 * 8 * 4
    new = torch.randn(1, 2, 1, 8)
    keys, _ = cache.update(new, new, 0)
    bias = cache.key_bias(0, keys)
    assert bias.shape == (1, 2, keys.shape[2]) and bool((bias[..., -1] == 0).all())
    assert int(torch.isinf(bias).sum()) == int((~layer.key_valid).sum())


def test_adakv_does_not_compose_with_quantization():
    with pytest.raises(ValueError, match="AdaKV does not compose with KV quantization here"):
        QuantizedKVCache(KVQuantSpec.from_id("kv4-uniform"), config(), eviction=EvictSpec.from_id("evict-adakv-b40"))


def test_a_prefill_whose_attention_never_reached_the_cache_fails_with_the_fix():
    cache = QuantizedKVCache(KVQuantSpec(), config(1), eviction=EvictSpec.from_id("evict-snapkv-b40"))
    key = torch.randn(1, 2, 10, 8)
    cache.update(key, key, 0)
    with pytest.raises(RuntimeError, match="never received the prefill's attention; generate inside "
                                           "quant.scored_attention.observing_attention"):
        cache.update(key[:, :, :1], key[:, :, :1], 0)


def test_the_eviction_module_cites_each_reference():
    import quant.eviction as module

    for reference in ("mit-han-lab/streaming-llm", "StreamingLLMPress.score", "H2OKVCluster.update_kv",
                      "SnapKVCluster.update_kv", "PyramidKVCluster.update_kv", "AdaptiveSnapKVCluster"):
        assert reference in module.__doc__
    assert math.isclose(EvictSpec("snapkv", 40).keep_count(100) / 100, 0.40)


def test_eviction_is_refused_for_sliding_window_layers_with_the_reason():
    from transformers import Gemma3TextConfig

    windowed = Gemma3TextConfig(num_hidden_layers=2, layer_types=["sliding_attention", "full_attention"],
                                hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8)
    with pytest.raises(ValueError, match="evict-snapkv-b40: this model has sliding-window layers"):
        QuantizedKVCache(KVQuantSpec(), windowed, eviction=EvictSpec.from_id("evict-snapkv-b40"))
    QuantizedKVCache(KVQuantSpec(), windowed)   # without eviction they are supported
