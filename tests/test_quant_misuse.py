"""Misuse of quant/ is a clear error naming the bad value and what is allowed — never a
silent wrong result or a deep torch traceback. Fast: tiny tensors, no models."""

import itertools
import random

import pytest
import torch
from torch import nn

from quant import (KVQuantSpec, NonFiniteError, WeightQuantSpec, choose_qparams, dequantize, pack, quantize,
                   quantize_model, unpack)
from quant.affine import block_size_for
from quant.kvcache import QuantizedKVCache, QuantizedKVLayer, compress, codecs_for
from quant.packing import PackedCodes
from quant.spec import KV_METHODS, WEIGHT_METHODS
from quant.weights import quantize_weight
from tiny_models import llama_config

QBITS = (2, 3, 4, 8)


# ---------------------------------------------------------------- 1. spec ids
def _kv_specs():
    rng = random.Random(0)
    ratios = [0.0, 0.015, 0.02, 0.1, 1 / 3, 0.499999] + [rng.uniform(0, 0.5) for _ in range(6)]
    clips = [1.0, 0.9, 0.55, 0.0001] + [rng.uniform(0.0001, 1.0) for _ in range(3)]
    common = list(itertools.product(QBITS, (False, True), clips, (True, False)))
    for bits, sym, clip, prefill in common:
        kw = dict(bits=bits, symmetric=sym, clip_ratio=clip, quantize_prefill=prefill)
        for gran, r in itertools.product(("tensor", "token"), (0, 16, 100)):
            yield KVQuantSpec("uniform", granularity=gran, residual_length=r, **kw)
        for g, mult in itertools.product((8, 32, 64), (0, 1, 4)):
            yield KVQuantSpec("group", group_size=g, residual_length=g * mult, **kw)
        for ratio, rank, r in itertools.product(ratios[:4], (0, 4), (0, 32)):
            yield KVQuantSpec("outlier", outlier_ratio=ratio, rank=rank, residual_length=r, **kw)
    for ratio in ratios:
        yield KVQuantSpec("outlier", 2, outlier_ratio=ratio)
    for method in KV_METHODS:
        yield KVQuantSpec(method, 16)


def _weight_specs():
    rng = random.Random(1)
    clips = [1.0, 0.95, 0.5, 0.0001] + [rng.uniform(0.0001, 1.0) for _ in range(4)]
    for method, bits, sym, clip in itertools.product(WEIGHT_METHODS, QBITS + (16,), (False, True), clips):
        sizes = (None,) if method == "rtn" else (None, 32, 64, 128)
        for g in sizes:
            yield WeightQuantSpec(method, bits, group_size=g, symmetric=sym, clip_ratio=clip)


def test_every_kv_spec_id_parses_back_to_an_equal_spec():
    specs = list(_kv_specs())
    assert len(specs) > 1000
    for spec in specs:
        assert KVQuantSpec.from_id(spec.id) == spec, spec
        assert KVQuantSpec.from_id(spec.id).id == spec.id


def test_every_weight_spec_id_parses_back_to_an_equal_spec():
    for spec in _weight_specs():
        assert WeightQuantSpec.from_id(spec.id) == spec, spec


def parse_spec_id(text: str):
    """A weight id (``w...``) or a KV id, parsed by its own spec class."""
    return (WeightQuantSpec if text.startswith("w") else KVQuantSpec).from_id(text)


@pytest.mark.parametrize("text, match", [
    ("kv4-group-g32-g64", r"id='kv4-group-g32-g64'.*'g64' repeats group_size \(already set by 'g32'\).*once"),
    ("kv4-uniform-r16-r32", r"'r32' repeats residual_length"),
    ("kv4-uniform-sym-sym", r"'sym' repeats sym"),
    ("kv4-uniform-token-tensor", r"'tensor' repeats granularity \(already set by 'token'\)"),
    ("kv4-outlier-s2-s3", r"'s3' repeats outlier_percent"),
    ("kv4-uniform-c0.9-c0.8", r"'c0.8' repeats clip_ratio"),
    ("kv4-uniform-fpprefill-fpprefill", r"'fpprefill' repeats"),
    ("w4-group-g32-g64", r"id='w4-group-g32-g64'.*'g64' repeats group_size"),
])
def test_a_repeated_option_is_an_error_not_last_wins(text, match):
    with pytest.raises(ValueError, match=match):
        parse_spec_id(text)


@pytest.mark.parametrize("make, match", [
    (lambda: KVQuantSpec.from_id("kv2.5-uniform"), r"id='kv2.5-uniform'.*bits=2.5 is not an integer.*\(2, 3, 4, 8, 16\)"),
    (lambda: WeightQuantSpec.from_id("w4.0-rtn"), r"bits=4.0 is not an integer"),
    (lambda: KVQuantSpec("uniform", 2.5), r"bits=2.5: allowed bits are \(2, 3, 4, 8, 16\)"),
    (lambda: KVQuantSpec("uniform", 4.0), r"bits=4.0: allowed bits"),  # 4.0 == 4 must not sneak in
    (lambda: WeightQuantSpec("rtn", True), r"bits=True: allowed bits"),
])
def test_bits_must_be_an_integer(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("text, match", [
    ("kv4-uniform-foo", r"unknown option 'foo'; allowed options are g<group_size>, r<residual_length>, "
                        r"s<outlier_percent>, lr<rank>, c<clip_ratio>, sym, token, tensor, fpprefill"),
    ("kv4-group-g32-r128-x9", r"unknown option 'x9'"),
    ("w4-group-r128", r"unknown option 'r128'; allowed options are g<group_size>, c<clip_ratio>, sym"),
    ("w4-rtn-fpprefill", r"unknown option 'fpprefill'; allowed options are g<group_size>, c<clip_ratio>, sym"),
    ("w4-rtn-token", r"unknown option 'token'"),
    ("kv4-uniform-g32", r"id='kv4-uniform-g32'.*group_size=32: method 'uniform' does not use group_size"),
])
def test_unknown_options_are_named_with_the_allowed_ones(text, match):
    with pytest.raises(ValueError, match=match):
        parse_spec_id(text)


# ---------------------------------------------------------------- 2. constructor validation
@pytest.mark.parametrize("make, match", [
    (lambda: KVQuantSpec("group", 4, group_size=0), r"group_size=0: must be an integer >= 1"),
    (lambda: KVQuantSpec("group", 4, group_size=32.0), r"group_size=32.0: must be an integer >= 1"),
    (lambda: WeightQuantSpec("group", 4, group_size=-128), r"group_size=-128: must be an integer >= 1"),
    (lambda: KVQuantSpec("uniform", 4, residual_length=-1), r"residual_length=-1: must be an integer >= 0"),
    (lambda: KVQuantSpec("group", 4, residual_length=-32), r"residual_length=-32: must be an integer >= 0"),
    (lambda: KVQuantSpec("outlier", 4, residual_length=8.5), r"residual_length=8.5: must be an integer >= 0"),
    (lambda: KVQuantSpec("group", 2, group_size=32, residual_length=48),
     r"residual_length=48: must be a multiple of group_size=32"),
    (lambda: KVQuantSpec("outlier", 4, outlier_ratio=-0.01), r"outlier_ratio=-0.01: must be a number in \[0, 0.5\)"),
    (lambda: KVQuantSpec("outlier", 4, outlier_ratio=0.5), r"outlier_ratio=0.5: must be a number in \[0, 0.5\)"),
    (lambda: KVQuantSpec("outlier", 4, outlier_ratio=0.4999999), r"outlier_ratio=0.4999999: .*6 decimals"),
    (lambda: KVQuantSpec("outlier", 4, outlier_ratio=float("nan")), r"outlier_ratio=nan"),
    (lambda: KVQuantSpec("outlier", 4, outlier_ratio="2%"), r"outlier_ratio='2%'"),
    (lambda: KVQuantSpec("outlier", 4, rank=-1), r"rank=-1: must be an integer >= 0"),
    (lambda: KVQuantSpec("outlier", 4, rank=2.5), r"rank=2.5: must be an integer >= 0"),
    (lambda: KVQuantSpec("uniform", 4, clip_ratio=0), r"clip_ratio=0: must be a number in \(0, 1\]"),
    (lambda: KVQuantSpec("uniform", 4, clip_ratio=1.01), r"clip_ratio=1.01: must be a number in \(0, 1\]"),
    (lambda: WeightQuantSpec("rtn", 4, clip_ratio=-0.5), r"clip_ratio=-0.5"),
    (lambda: WeightQuantSpec("rtn", 4, clip_ratio=0.00001), r"clip_ratio=1e-05: .*at least 0.0001"),
    (lambda: WeightQuantSpec("rtn", 4, clip_ratio=float("nan")), r"clip_ratio=nan"),
    (lambda: KVQuantSpec("uniform", 4, symmetric="yes"), r"symmetric='yes': must be True or False"),
    (lambda: KVQuantSpec("uniform", 4, quantize_prefill=0), r"quantize_prefill=0: must be True or False"),
])
def test_constructor_names_field_value_and_what_is_allowed(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ---------------------------------------------------------------- 3. KV cache: shapes and NaN/inf
def test_keys_and_values_of_different_lengths_name_both_shapes_and_the_layer():
    cache = QuantizedKVCache(KVQuantSpec("uniform", 4), llama_config())
    k, v = torch.randn(1, 2, 5, 32), torch.randn(1, 2, 4, 32)
    with pytest.raises(ValueError, match=r"layer 1 \(kv4-uniform\): key_states shape \(1, 2, 5, 32\) and "
                                         r"value_states shape \(1, 2, 4, 32\) differ"):
        cache.update(k, v, 1)
    assert cache.get_seq_length(1) == 0


@pytest.mark.parametrize("key, value, match", [
    (torch.randn(1, 2, 3, 32), torch.randn(2, 2, 3, 32), r"key_states shape \(1, 2, 3, 32\) and value_states shape \(2, 2, 3, 32\)"),
    (torch.randn(2, 3, 32), torch.randn(2, 3, 32), r"key_states must be a float \[batch, heads, tokens, head_dim\].*\(2, 3, 32\)"),
    (torch.randn(1, 2, 3, 32), torch.ones(1, 2, 3, 32, dtype=torch.long), r"value_states must be a float.*torch.int64"),
])
def test_update_rejects_malformed_states(key, value, match):
    with pytest.raises(ValueError, match=match):
        QuantizedKVLayer(KVQuantSpec("group", 4, group_size=16, residual_length=16), layer_idx=0).update(key, value)


def test_a_later_update_must_continue_the_cached_shape():
    layer = QuantizedKVLayer(KVQuantSpec("uniform", 4), layer_idx=3)
    layer.update(torch.randn(1, 2, 4, 32), torch.randn(1, 2, 4, 32))
    with pytest.raises(ValueError, match=r"layer 3 .*key_states shape \(1, 4, 1, 32\) does not continue the cached "
                                         r"shape \(1, 2, 4, 32\)"):
        layer.update(torch.randn(1, 4, 1, 32), torch.randn(1, 4, 1, 32))


def test_kivi_group_must_divide_the_value_head_dim_of_a_bare_layer():
    with pytest.raises(ValueError, match=r"group_size=32 must divide the value head_dim=24"):
        QuantizedKVLayer(KVQuantSpec("group", 2, residual_length=0)).update(torch.randn(1, 1, 32, 24),
                                                                             torch.randn(1, 1, 32, 24))


def test_one_nan_would_poison_a_whole_sequence_if_quantized():
    """Why the check exists: without it one NaN turns every quantized key of the block into NaN."""
    x = torch.randn(1, 2, 16, 8)
    x[0, 1, 3, 5] = float("nan")
    segment = compress(x, codecs_for(KVQuantSpec("uniform", 4))[0], check_finite=False)
    out = torch.empty_like(x)
    segment.dequantize_into(out)
    assert torch.isnan(out).all()


@pytest.mark.parametrize("spec_id, which", [
    (spec_id, which) for spec_id in ("kv4-uniform", "kv2-uniform-token", "kv2-group-g16-r0", "kv2-outlier-s2-lr2",
                                     "kv4-group-g16-r16-fpprefill") for which in ("keys", "values")
    if (spec_id, which) != ("kv4-group-g16-r16-fpprefill", "values")])   # KIVI values: see the test below
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nan_or_inf_reaching_the_quantizer_raises_non_finite_error(spec_id, which, bad):
    cache = QuantizedKVCache(KVQuantSpec.from_id(spec_id), llama_config())
    k, v = torch.randn(1, 2, 16, 32), torch.randn(1, 2, 16, 32)
    cache.update(k, v, 1)  # prefill: clean
    k, v = torch.randn(1, 2, 16, 32), torch.randn(1, 2, 16, 32)
    (k if which == "keys" else v)[0, 1, 7, 3] = bad
    with pytest.raises(NonFiniteError, match=rf"layer 1 \({spec_id}\): {which} hold 1 NaN/inf value .*"
                                             r"update call 1 \(decode step 1, 16 tokens cached before it\); "
                                             r"first at token position 23 \(batch 0, head 1\)"):
        cache.update(k, v, 1)
    assert cache.get_seq_length(1) == 16  # the failed update stored nothing
    keys, _ = cache.update(torch.randn(1, 2, 16, 32), torch.randn(1, 2, 16, 32), 1)
    assert torch.isfinite(keys).all() and keys.shape[2] == 32


def test_a_nan_value_in_kivis_sliding_window_is_reported_when_it_leaves_the_window():
    """KIVI keeps the newest R values in full precision (like transformers' DynamicCache, NaN passes
    through there); the NaN is reported by the update that pushes it out of the window."""
    cache = QuantizedKVCache(KVQuantSpec.from_id("kv4-group-g16-r16-fpprefill"), llama_config())
    cache.update(torch.randn(1, 2, 16, 32), torch.randn(1, 2, 16, 32), 1)
    v = torch.randn(1, 2, 16, 32)
    v[0, 1, 7, 3] = float("nan")
    cache.update(torch.randn(1, 2, 16, 32), v, 1)   # still in the window of the newest 16 values
    with pytest.raises(NonFiniteError, match=r"values hold 1 NaN/inf value .*first at token position 23"):
        cache.update(torch.randn(1, 2, 16, 32), torch.randn(1, 2, 16, 32), 1)


def test_non_finite_error_is_a_value_error_and_names_the_prefill():
    layer = QuantizedKVLayer(KVQuantSpec("uniform", 4), layer_idx=0)
    k = torch.randn(1, 1, 4, 8)
    k[0, 0, 2, 0] = float("nan")
    with pytest.raises(ValueError, match=r"layer 0 .*keys hold 1 NaN/inf .*update call 0 \(prefill, 0 tokens cached"
                                         r".*token position 2"):
        layer.update(k, torch.randn(1, 1, 4, 8))
    assert not layer.is_initialized


def test_nan_in_the_full_precision_window_is_reported_when_it_is_compressed():
    layer = QuantizedKVLayer(KVQuantSpec("uniform", 4, residual_length=8), layer_idx=2)
    layer.update(torch.randn(1, 1, 3, 8), torch.randn(1, 1, 3, 8))
    v = torch.randn(1, 1, 1, 8)
    v[..., 0] = float("inf")
    layer.update(torch.randn(1, 1, 1, 8), v)  # token 3 stays float in the window: passed through as is
    with pytest.raises(NonFiniteError, match=r"layer 2 .*values hold .*update call 5 \(decode step 5.*token position 3"):
        for _ in range(4):
            layer.update(torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8))


def test_fp16_spec_passes_states_through_unchecked_like_dynamic_cache():
    layer = QuantizedKVLayer(KVQuantSpec())
    k = torch.full((1, 1, 2, 8), float("nan"))
    keys, _ = layer.update(k, k)
    assert torch.isnan(keys).all()


def test_cache_and_layer_take_a_spec_not_an_id():
    with pytest.raises(TypeError, match=r"spec='kv4-uniform': expected a KVQuantSpec"):
        QuantizedKVCache("kv4-uniform", llama_config())
    with pytest.raises(TypeError, match=r"expected a KVQuantSpec"):
        QuantizedKVLayer(WeightQuantSpec("rtn", 4))


# ---------------------------------------------------------------- 3. weights: NaN/inf
class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(64, 64)
        self.down = nn.Linear(64, 64)

    def forward(self, x):
        return self.down(self.up(x))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_quantize_model_with_non_finite_weights_names_the_module_and_changes_nothing(bad):
    model = TwoLayers()
    with torch.no_grad():
        model.down.weight[5, 7] = bad
    with pytest.raises(NonFiniteError, match=r"module 'down': weight \(shape \(64, 64\)\) has 1 NaN/inf value of 4096 "
                                             r"\(first at index \(5, 7\)"):
        quantize_model(model, WeightQuantSpec("group", 4, group_size=32))
    assert isinstance(model.up, nn.Linear) and isinstance(model.down, nn.Linear)


def test_awq_with_non_finite_calibration_activations_names_the_module():
    model = TwoLayers()
    with torch.no_grad():
        model.up.bias[0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"module 'down': calibration inputs .*NaN/inf"):
        quantize_model(model, WeightQuantSpec("awq", 4, group_size=32), calibration=[torch.randn(4, 64)])


def test_quantize_weight_rejects_non_finite_and_malformed_weights():
    w = torch.randn(8, 32)
    w[1, 2] = float("nan")
    with pytest.raises(NonFiniteError, match=r"x \(shape \(8, 32\)\) has 1 NaN/inf value of 256 \(first at index \(1, 2\)"):
        quantize_weight(w, WeightQuantSpec("rtn", 4))
    with pytest.raises(ValueError, match=r"invalid weight: expected a float \[out, in\] tensor.*\(2, 8, 32\)"):
        quantize_weight(torch.randn(2, 8, 32), WeightQuantSpec("rtn", 4))
    with pytest.raises(TypeError, match=r"spec='w4-rtn': expected a WeightQuantSpec"):
        quantize_model(TwoLayers(), "w4-rtn")


# ---------------------------------------------------------------- 4. primitives
X = torch.randn(4, 64)


@pytest.mark.parametrize("call, error, match", [
    (lambda: choose_qparams(X, 4.0, (1, 64)), ValueError, r"bits=4.0: allowed quantization bits are \(2, 3, 4, 8\)"),
    (lambda: choose_qparams(X, 16, (1, 64)), ValueError, r"bits=16: allowed quantization bits"),
    (lambda: choose_qparams(X.long(), 4, (1, 64)), ValueError, r"x dtype=torch.int64: must be a floating-point"),
    (lambda: choose_qparams(X.numpy(), 4, (1, 64)), TypeError, r"invalid x: expected a torch.Tensor, got ndarray"),
    (lambda: choose_qparams(X, 4, (1, 32.0)), ValueError, r"block_size=\(1, 32.0\): entry 32.0 must divide dim 1"),
    (lambda: choose_qparams(X, 4, (3, 64)), ValueError, r"block_size=\(3, 64\): entry 3 must divide dim 0 of size 4"),
    (lambda: choose_qparams(X, 4, 64), ValueError, r"block_size=64: must be a tuple"),
    (lambda: choose_qparams(X, 4, (1, 64), param_dtype=torch.int8), ValueError, r"param_dtype=torch.int8"),
    (lambda: block_size_for(X.shape, 2), ValueError, r"dim=2: must be an integer in \[-2, 2\) for shape \(4, 64\)"),
    (lambda: block_size_for(X.shape, -1, 48), ValueError, r"group_size=48: must be a positive integer dividing dim 1"),
    (lambda: block_size_for(X.shape, None, 16), ValueError, r"group_size=16 with dim=None"),
    (lambda: quantize(X, choose_qparams(X[:2], 4, (1, 64))), ValueError,
     r"qparams.scale shape=\(2, 1\): x of shape \(4, 64\) with block_size=\(1, 64\) needs \(4, 1\)"),
    (lambda: quantize(X, (1.0, 0.0)), TypeError, r"invalid qparams: expected QParams"),
    (lambda: dequantize(quantize(X, choose_qparams(X, 4, (1, 64))).float(), choose_qparams(X, 4, (1, 64))),
     ValueError, r"codes dtype=torch.float32: must be torch.uint8"),
    (lambda: dequantize(torch.zeros(4, 32, dtype=torch.uint8), choose_qparams(X, 4, (1, 64))), ValueError,
     r"block_size=\(1, 64\): entry 64 must divide dim 1 of size 32"),
    (lambda: dequantize(torch.zeros(4, 64, dtype=torch.uint8), choose_qparams(X, 4, (1, 64)), torch.int32),
     ValueError, r"dtype=torch.int32: must be a floating-point"),
    (lambda: dequantize(torch.zeros(4, 64, dtype=torch.uint8), choose_qparams(X, 4, (1, 64)), out=torch.empty(4, 63)),
     ValueError, r"out shape=\(4, 63\): must equal codes shape \(4, 64\)"),
    (lambda: pack(torch.zeros(4, dtype=torch.uint8), 4.0), ValueError, r"bits=4.0: allowed packing bits are \(2, 3, 4, 8\)"),
    (lambda: pack(torch.zeros(4, dtype=torch.uint8), 16), ValueError, r"bits=16: allowed packing bits"),
    (lambda: pack(torch.tensor([0, 1, 4, 2], dtype=torch.uint8), 2), ValueError,
     r"max code 4 does not fit in bits=2 \(allowed codes are 0..3\)"),
    (lambda: pack(torch.tensor(3, dtype=torch.uint8), 2), ValueError, r"codes shape=\(\): pack needs at least one dim"),
    (lambda: unpack(torch.zeros(4, dtype=torch.uint8)), TypeError, r"invalid packed: expected PackedCodes"),
    (lambda: unpack(PackedCodes(torch.zeros(2, 3, dtype=torch.uint8), 5, 8)), ValueError, r"bits=5: allowed packing bits"),
    (lambda: unpack(PackedCodes(torch.zeros(2, 3, dtype=torch.uint8), 4, 8)), ValueError,
     r"packed.data shape=\(2, 3\): 8 codes at bits=4 take 4 bytes per row, not 3"),
    (lambda: unpack(PackedCodes(torch.zeros(2, 4, dtype=torch.int32), 4, 8)), ValueError, r"packed.data: must be a uint8"),
    (lambda: unpack(PackedCodes(torch.zeros(2, 4, dtype=torch.uint8), 4, -1)), ValueError, r"length=-1"),
])
def test_primitives_name_the_bad_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_primitives_refuse_non_finite_input(symmetric, bad):
    x = X.clone()
    x[2, 10] = bad
    with pytest.raises(NonFiniteError, match=r"x \(shape \(4, 64\)\) has 1 NaN/inf value of 256 \(first at index \(2, 10\)"):
        choose_qparams(x, 4, (1, 64), symmetric=symmetric)
    qp = choose_qparams(X, 4, (1, 64), symmetric=symmetric)
    with pytest.raises(NonFiniteError, match=r"first at index \(2, 10\)"):
        quantize(x, qp)


def test_a_range_that_overflows_the_parameter_dtype_is_an_error():
    x = torch.tensor([[-70000.0, -69990.0]])  # the zero (min) is beyond float16
    with pytest.raises(NonFiniteError, match=r"range that overflows the parameter dtype torch.float16"):
        choose_qparams(x, 4, (1, 2), param_dtype=torch.float16)
