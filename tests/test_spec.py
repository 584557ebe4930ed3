import pytest

from quant import KVQuantSpec, WeightQuantSpec

KV_SPECS = [
    KVQuantSpec(),
    KVQuantSpec("uniform", 4),
    KVQuantSpec("uniform", 2, granularity="token"),
    KVQuantSpec("uniform", 3, residual_length=64, symmetric=True),
    KVQuantSpec("group", 2),
    KVQuantSpec("group", 4, group_size=64, residual_length=0, clip_ratio=0.9),
    KVQuantSpec("outlier", 4),
    KVQuantSpec("outlier", 2, rank=4),
    KVQuantSpec("outlier", 8, outlier_ratio=0.0),
    KVQuantSpec("outlier", 2, outlier_ratio=0.015, rank=2, residual_length=32),
    KVQuantSpec("group", 2, quantize_prefill=False),
]
WEIGHT_SPECS = [
    WeightQuantSpec(),
    WeightQuantSpec("rtn", 8),
    WeightQuantSpec("rtn", 2, symmetric=True),
    WeightQuantSpec("group", 4),
    WeightQuantSpec("group", 3, group_size=64, clip_ratio=0.95),
    WeightQuantSpec("awq", 4),
]


@pytest.mark.parametrize("spec", KV_SPECS, ids=lambda s: s.id)
def test_kv_id_round_trips(spec):
    assert KVQuantSpec.from_id(spec.id) == spec


@pytest.mark.parametrize("spec", WEIGHT_SPECS, ids=lambda s: s.id)
def test_weight_id_round_trips(spec):
    assert WeightQuantSpec.from_id(spec.id) == spec


@pytest.mark.parametrize("text", [
    "fp16", "kv4-uniform", "kv4-uniform-token", "kv2-group-g32-r128", "kv4-outlier-s2",
    "kv2-outlier-s2-lr4", "kv2-group-g32-r128-fpprefill", "kv4-uniform-r16-sym-c0.9",
])
def test_documented_kv_ids_are_canonical(text):
    assert KVQuantSpec.from_id(text).id == text


@pytest.mark.parametrize("text", ["fp16", "w4-group-g128", "w8-rtn", "w4-awq-g128", "w2-rtn-sym-c0.8"])
def test_documented_weight_ids_are_canonical(text):
    assert WeightQuantSpec.from_id(text).id == text


def test_method_defaults_follow_the_papers():
    kivi = KVQuantSpec("group", 2)
    assert (kivi.group_size, kivi.residual_length) == (32, 128)
    gear = KVQuantSpec("outlier", 4)
    assert (gear.outlier_ratio, gear.rank) == (0.02, 0)
    assert WeightQuantSpec("awq", 4).group_size == 128
    assert WeightQuantSpec("rtn", 4).group_size is None


def test_sixteen_bits_means_no_quantization():
    assert KVQuantSpec("group", 16) == KVQuantSpec()
    assert KVQuantSpec().is_float and WeightQuantSpec().id == "fp16"


@pytest.mark.parametrize("make, field, value", [
    (lambda: KVQuantSpec("uniform", 5), "bits", "5"),
    (lambda: WeightQuantSpec("group", 1), "bits", "1"),
    (lambda: KVQuantSpec("kivi", 4), "method", "'kivi'"),
    (lambda: WeightQuantSpec("quip", 4), "method", "'quip'"),
    (lambda: WeightQuantSpec("group", 4, group_size=0), "group_size", "0"),
    (lambda: KVQuantSpec("group", 4, group_size=-8), "group_size", "-8"),
    (lambda: KVQuantSpec("group", 2, group_size=32, residual_length=100), "residual_length", "100"),
    (lambda: KVQuantSpec("uniform", 4, group_size=32), "group_size", "32"),
    (lambda: KVQuantSpec("uniform", 4, granularity="channel"), "granularity", "'channel'"),
    (lambda: KVQuantSpec("outlier", 4, outlier_ratio=1.5), "outlier_ratio", "1.5"),
    (lambda: WeightQuantSpec("rtn", 4, group_size=128), "group_size", "128"),
    (lambda: WeightQuantSpec("group", 4, clip_ratio=0.0), "clip_ratio", "0.0"),
    (lambda: KVQuantSpec.from_id("kv4-group-x9"), "id", "'kv4-group-x9'"),
    (lambda: WeightQuantSpec.from_id("w4group"), "id", "'w4group'"),
    (lambda: WeightQuantSpec.from_id("w4-group-r128"), "id", "'w4-group-r128'"),
])
def test_bad_spec_names_field_value_and_what_is_allowed(make, field, value):
    with pytest.raises(ValueError) as error:
        make()
    message = str(error.value)
    assert f"{field}={value}" in message
    assert any(word in message for word in ("allowed", "must", "expected", "does not use", "unknown", "take only"))


def test_allowed_values_are_listed_in_the_error():
    with pytest.raises(ValueError, match=r"allowed bits are \(2, 3, 4, 8, 16\)"):
        KVQuantSpec("uniform", 5)
    with pytest.raises(ValueError, match=r"allowed methods are \('rtn', 'group', 'awq', 'outlier', 'gptq'\)"):
        WeightQuantSpec("quip", 4)
