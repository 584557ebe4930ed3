"""Dense+sparse outlier weights and GPTQ (quant/weights.py).

GPTQ is checked against a float64 re-statement of IST-DASLab/gptq ``gptq.py``
``GPTQ.fasterquant`` (our affine grid in place of the reference ``Quantizer``); the outlier
method against SpQR's masking (Vahe1994/SpQR ``spqr_engine.py`` ``group_weight_without_outliers``).
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_lvlmbench.core.settings import Setting
from quant import KVQuantSpec, QuantizedLinear, WeightQuantSpec, nbytes
from quant.affine import QParams, choose_qparams, dequantize, quantize
from quant.packing import unpack
from quant.spec import CALIBRATED_METHODS, WEIGHT_METHODS
from quant.weights import (fake_quantize_weight, gptq_quantize, quantize_outlier_weight, quantize_weight,
                           split_weight_outliers)


# ---------------------------------------------------------------- outlier (dense + sparse)

def heavy_weight(rows=48, cols=96, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=gen) * 0.02
    w[torch.rand(rows, cols, generator=gen) < 0.02] *= 30.0
    return w


def expected_mask(w, spec):
    mag = w.abs()
    mask = torch.zeros_like(w, dtype=torch.bool)
    if spec.outlier_scope == "row":
        k = int(w.shape[1] * spec.outlier_ratio)
        for r in range(w.shape[0]):
            mask[r, sorted(range(w.shape[1]), key=lambda c: -mag[r, c].item())[:k]] = True
    else:
        k = int(w.numel() * spec.outlier_ratio)
        mask.view(-1)[mag.reshape(-1).argsort(descending=True)[:k]] = True
    return mask


@pytest.mark.parametrize("spec_id", ["w3-outlier-s5-g32", "w4-outlier-s2.5-g16-matrix", "w2-outlier-s10-g96-sym"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_outlier_keeps_top_magnitudes_exactly_and_group_quantizes_the_rest(spec_id, dtype):
    spec = WeightQuantSpec.from_id(spec_id)
    w = heavy_weight().to(dtype)
    mask = expected_mask(w.float(), spec)
    k = mask.sum().item()
    assert k == (int(96 * spec.outlier_ratio) * 48 if spec.outlier_scope == "row" else int(48 * 96 * spec.outlier_ratio))
    layer = QuantizedLinear.from_linear(_linear_with(w), spec)
    deq = layer.dequantized_weight(dtype)
    # the sparse part: exactly the top-k positions, bit-exact values, CSR order
    rows = torch.repeat_interleave(torch.arange(48), (layer.outlier_row_ptr[1:] - layer.outlier_row_ptr[:-1]).long())
    got = torch.zeros_like(mask)
    got[rows, layer.outlier_columns.long()] = True
    assert torch.equal(got, mask)
    assert torch.equal(layer.outlier_values, w[mask]) and layer.outlier_values.dtype == dtype
    assert torch.equal(deq[mask], w[mask])
    # the dense part: group quantization of W with each outlier masked by its (row, group) mean
    g = spec.group_size
    grouped, keep = w.float().reshape(48, -1, g), (~mask).reshape(48, -1, g)
    mean = (grouped * keep).sum(-1, keepdim=True) / keep.sum(-1, keepdim=True).clamp_min(1)
    masked = torch.where(keep, grouped, mean).reshape(48, 96).to(dtype)
    dense_spec = WeightQuantSpec("group", spec.bits, group_size=g, symmetric=spec.symmetric)
    codes, qparams = quantize_weight(masked, dense_spec)
    assert torch.equal(layer.codes, codes.data) and torch.equal(layer.scale, qparams.scale)
    assert (layer.zero is None) == spec.symmetric and (spec.symmetric or torch.equal(layer.zero, qparams.zero))
    assert torch.equal(deq[~mask], dequantize(unpack(codes), qparams, dtype)[~mask])
    # outliers do not set any group's range: asymmetric min/max are those of the non-outliers
    if not spec.symmetric:
        lo = torch.where(keep, grouped, torch.inf).amin(-1)
        full = keep.all(-1) | keep.any(-1)
        torch.testing.assert_close(layer.zero.float()[full], lo.to(dtype).float()[full])
    # nbytes counts the sparse part: values (weight dtype) + int16 columns + int32 row pointers
    sparse = k * (w.element_size() + 2) + (48 + 1) * 4
    assert nbytes(layer) == codes.nbytes + qparams.nbytes + sparse
    assert layer.outliers.nbytes == sparse
    torch.testing.assert_close(fake_quantize_weight(w, spec), deq)


def _linear_with(w):
    linear = nn.Linear(w.shape[1], w.shape[0], bias=False).to(w.dtype)
    with torch.no_grad():
        linear.weight.copy_(w)
    return linear


def test_outlier_beats_group_on_heavy_tailed_weights_and_zero_ratio_is_group():
    w = heavy_weight(64, 128)
    group = (fake_quantize_weight(w, WeightQuantSpec("group", 3, group_size=32)) - w).pow(2).mean()
    outlier = (fake_quantize_weight(w, WeightQuantSpec("outlier", 3, group_size=32, outlier_ratio=0.03)) - w).pow(2).mean()
    assert outlier < 0.3 * group, (outlier, group)
    zero = WeightQuantSpec.from_id("w3-outlier-s0-g32")
    codes, qparams, sparse = quantize_outlier_weight(w, zero)
    assert sparse.values.numel() == 0
    assert torch.equal(codes.data, quantize_weight(w, WeightQuantSpec("group", 3, group_size=32))[0].data)


def test_outlier_state_dict_round_trips_and_non_finite_is_refused():
    spec = WeightQuantSpec.from_id("w4-outlier-s3-g32-matrix")
    layer = QuantizedLinear.from_linear(_linear_with(heavy_weight(32, 64)), spec)
    clone = QuantizedLinear.from_linear(_linear_with(heavy_weight(32, 64, seed=9)), spec)
    clone.load_state_dict(layer.state_dict())
    x = torch.randn(3, 64)
    assert torch.equal(clone(x), layer(x))
    bad = heavy_weight(32, 64)
    bad[3, 5] = float("nan")
    with pytest.raises(ValueError, match=r"NaN/inf"):
        split_weight_outliers(bad, spec)


# ---------------------------------------------------------------- GPTQ

def correlated_inputs(rows, cols, seed, dead=()):
    """Activations from a shared low-dimensional mix plus noise, some channels large: GPTQ's case."""
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(cols // 4, cols, generator=torch.Generator().manual_seed(1234))
    x = torch.randn(rows, cols // 4, generator=gen) @ mix + 0.3 * torch.randn(rows, cols, generator=gen)
    x[:, ::7] *= 4.0
    x[:, list(dead)] = 0.0
    return x


def reference_gptq(W, X, spec, blocksize, percdamp=0.01):
    """float64 re-statement of IST-DASLab/gptq gptq.py GPTQ.fasterquant (actorder, static_groups as
    the spec says), quantizer = our affine grid; returns the dequantized weight in the original
    column order."""
    W = W.double().clone()
    H = 2 / X.shape[0] * X.double().T @ X.double()
    cols, g = W.shape[1], spec.group_size
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0

    def find(block):
        return choose_qparams(block, spec.bits, (1, block.shape[1]), symmetric=spec.symmetric,
                              clip_ratio=spec.clip_ratio, param_dtype=torch.float64)

    if spec.static_groups:
        groups = [find(W[:, i:i + g]) for i in range(0, cols, g)]
    if spec.act_order:
        perm = torch.argsort(torch.diag(H), descending=True, stable=True)
        W, H = W[:, perm], H[perm][:, perm]
    H += percdamp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=torch.float64)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(W)
    quantizer = None
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1, Err1, Hinv1 = W[:, i1:i2].clone(), torch.zeros(W.shape[0], i2 - i1, dtype=torch.float64), Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            if not spec.static_groups and (i1 + i) % g == 0:
                quantizer = find(W[:, i1 + i:i1 + i + g])
            if spec.static_groups:
                quantizer = groups[int(perm[i1 + i] if spec.act_order else i1 + i) // g]
            w = W1[:, i:i + 1]
            qp = QParams(quantizer.scale, quantizer.zero, spec.bits, (1, 1))
            q = dequantize(quantize(w, qp), qp, torch.float64)
            Q[:, i1 + i] = q[:, 0]
            err = (w - q) / Hinv1[i, i]
            W1[:, i:] -= err @ Hinv1[i:i + 1, i:]
            Err1[:, i:i + 1] = err
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return Q[:, torch.argsort(perm)] if spec.act_order else Q


def textbook_gptq(W, X, spec, percdamp=0.01):
    """Unbatched GPTQ (paper Alg. 1 without lazy batches): each column's error updates all later
    columns at once; equals the batched form when groups start on block boundaries."""
    W = W.double().clone()
    H = 2 / X.shape[0] * X.double().T @ X.double()
    cols, g = W.shape[1], spec.group_size
    H += percdamp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=torch.float64)
    U = torch.linalg.cholesky(torch.linalg.inv(H), upper=True)
    Q = torch.zeros_like(W)
    for j in range(cols):
        if j % g == 0:
            qp = choose_qparams(W[:, j:j + g], spec.bits, (1, g), param_dtype=torch.float64)
            qp = QParams(qp.scale, qp.zero, spec.bits, (1, 1))
        Q[:, j:j + 1] = dequantize(quantize(W[:, j:j + 1], qp), qp, torch.float64)
        W[:, j:] -= (W[:, j:j + 1] - Q[:, j:j + 1]) / U[j, j] @ U[j:j + 1, j:]
    return Q


def gptq_weight(W, X, spec, **kwargs):
    """The dequantized weight in the original column order."""
    codes, qparams, input_order = gptq_quantize(W, X, spec, **kwargs)
    stored = dequantize(unpack(codes), qparams, torch.float64)
    if input_order is None:
        return stored
    weight = torch.empty_like(stored)
    weight[:, input_order.long()] = stored
    return weight


@pytest.mark.parametrize("spec_id, blocksize", [
    ("w3-gptq-g8", 16),            # groups start inside blocks: parameters from the lazily-updated W
    ("w4-gptq-g12-sym", 16),       # group size not dividing the block size
    ("w3-gptq-g8-actorder", 16),   # permuted columns, groups formed in that order
    ("w3-gptq-g8-actorder-static", 16),   # permuted columns, groups fixed up front
    ("w3-gptq-g8-static", 16),     # groups fixed up front, original order
    ("w2-gptq-g24-actorder-c0.9", 7),
    ("w2-gptq-g24-actorder-static-c0.9", 7),
    ("w4-gptq-g72", 128),          # one group, one block (in_features = 72)
])
def test_gptq_equals_float64_restatement_of_the_reference(spec_id, blocksize):
    spec = WeightQuantSpec.from_id(spec_id)
    W = torch.randn(37, 72, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    X = correlated_inputs(300, 72, seed=4, dead=(5, 40))  # two dead input channels
    ours = gptq_weight(W, X.double(), spec, blocksize=blocksize, dtype=torch.float64)
    ref = reference_gptq(W, X, spec, blocksize)
    assert torch.equal(ours, ref)
    ours32 = gptq_weight(W.float(), X, spec, blocksize=blocksize)  # the default float32 path
    assert ((ours32 - ref).abs() > 1e-4).float().mean() < 0.05  # float32 rounding flips a few codes


def test_lazy_batches_equal_the_unbatched_algorithm_when_groups_start_on_block_boundaries():
    W = torch.randn(21, 64, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    X = correlated_inputs(256, 64, seed=6).double()
    spec = WeightQuantSpec.from_id("w3-gptq-g32")
    textbook = textbook_gptq(W, X, spec)
    for blocksize in (8, 16, 32):
        torch.testing.assert_close(gptq_weight(W, X, spec, blocksize=blocksize, dtype=torch.float64), textbook,
                                   rtol=0, atol=1e-9)
    # a group starting inside a block takes its parameters from the lazily-updated W, as the
    # reference does, so it differs from the unbatched algorithm
    spec = WeightQuantSpec.from_id("w3-gptq-g16")
    assert not torch.allclose(gptq_weight(W, X, spec, blocksize=32, dtype=torch.float64), textbook_gptq(W, X, spec))


def held_out_errors(bits, group_size, cols=256, rows=128):
    torch.manual_seed(0)
    linear = nn.Linear(cols, rows)
    calibration, held_out = correlated_inputs(2048, cols, seed=1), correlated_inputs(1024, cols, seed=2)
    with torch.no_grad():
        reference = linear(held_out)
    errors = {}
    for spec in (WeightQuantSpec("rtn", bits), WeightQuantSpec("group", bits, group_size=group_size),
                 WeightQuantSpec("gptq", bits, group_size=group_size),
                 WeightQuantSpec("gptq", bits, group_size=group_size, act_order=True)):
        layer = QuantizedLinear.from_linear(linear, spec, calibration if spec.needs_calibration else None)
        with torch.no_grad():
            errors[spec.id] = (layer(held_out) - reference).pow(2).mean().item() / reference.pow(2).mean().item()
    return errors


@pytest.mark.parametrize("bits", [3, 4])
def test_gptq_beats_rtn_and_group_on_held_out_output_error_with_correlated_inputs(bits):
    e = held_out_errors(bits, 64)
    rtn, group = e[f"w{bits}-rtn"], e[f"w{bits}-group-g64"]
    gptq, actorder = e[f"w{bits}-gptq-g64"], e[f"w{bits}-gptq-g64-actorder"]
    assert gptq < 0.7 * group and group < rtn, e
    assert actorder < 0.7 * group, e


def test_gptq_needs_calibration_and_stores_like_group():
    spec = WeightQuantSpec.from_id("w4-gptq-g32")
    assert spec.needs_calibration and "gptq" in CALIBRATED_METHODS and "awq" in CALIBRATED_METHODS
    assert not WeightQuantSpec.from_id("w4-outlier-s1-g32").needs_calibration
    linear = nn.Linear(64, 16).half()
    with pytest.raises(ValueError, match=r"method 'gptq' needs calibration"):
        QuantizedLinear.from_linear(linear, spec)
    layer = QuantizedLinear.from_linear(linear, spec, torch.randn(100, 64))
    plain = QuantizedLinear.from_linear(linear, WeightQuantSpec("group", 4, group_size=32))
    assert nbytes(layer) == nbytes(plain) and layer.scale.dtype == torch.float16
    with pytest.raises(ValueError, match=r"inputs shape=\(100, 63\).*in_features=64"):
        gptq_quantize(linear.weight, torch.randn(100, 63), spec)


def test_act_order_groups_follow_the_hessian_order_and_the_layer_permutes_its_input():
    """Dynamic act-order groups are g consecutive columns in descending diag(H) order (the
    reference's g_idx): stored that way, the layer reads its input through ``input_order``."""
    torch.manual_seed(0)
    linear = nn.Linear(64, 24)
    X = correlated_inputs(512, 64, seed=7)
    spec = WeightQuantSpec.from_id("w2-gptq-g16-actorder")
    layer = QuantizedLinear.from_linear(linear, spec, X)
    expected = torch.argsort(torch.diag(X.T @ X), descending=True, stable=True)
    assert layer.input_order.dtype == torch.int32 and torch.equal(layer.input_order.long(), expected)
    # stored group 0 holds the 16 columns of largest diag(H), on one 2-bit grid per row;
    # the first 16 columns in input order come from several groups
    stored, weight = layer.stored_weight(torch.float32), layer.dequantized_weight(torch.float32)
    assert torch.equal(weight[:, expected[:16]], stored[:, :16])
    assert all(len(torch.unique(row)) <= 4 for row in stored[:, :16])
    assert sum(len(torch.unique(row)) > 4 for row in weight[:, :16]) > 12
    with torch.no_grad():
        x = torch.randn(5, 64)
        torch.testing.assert_close(layer(x), F.linear(x, weight, linear.bias), rtol=1e-5, atol=1e-5)
    # the permutation is a buffer: counted in nbytes and kept by state_dict; static groups need none
    static = QuantizedLinear.from_linear(linear, WeightQuantSpec.from_id("w2-gptq-g16-actorder-static"), X)
    assert static.input_order is None and nbytes(layer) == nbytes(static) + 64 * 4
    assert "input_order" in layer.state_dict()


# ---------------------------------------------------------------- ids

@pytest.mark.parametrize("text", [
    "w3-outlier-s1-g128", "w3-outlier-s1-g128-matrix", "w4-outlier-s0.5-g64-sym-c0.9", "w2-outlier-s0-g32",
    "w4-gptq-g128", "w4-gptq-g128-actorder", "w3-gptq-g64-actorder-sym-c0.95", "w4-gptq-g128-actorder-static",
    "w4-gptq-g64-static",
])
def test_new_weight_ids_are_canonical_and_round_trip(text):
    spec = WeightQuantSpec.from_id(text)
    assert spec.id == text and WeightQuantSpec.from_id(spec.id) == spec
    assert WEIGHT_METHODS[-2:] == ("outlier", "gptq")


def test_defaults_and_token_order():
    assert WeightQuantSpec("outlier", 3).id == "w3-outlier-s1-g128"
    assert WeightQuantSpec("outlier", 3, outlier_ratio=0.015, outlier_scope="matrix").id == "w3-outlier-s1.5-g128-matrix"
    assert WeightQuantSpec.from_id("w4-gptq-actorder-g64") == WeightQuantSpec("gptq", 4, group_size=64, act_order=True)
    assert WeightQuantSpec.from_id("w4-gptq") == WeightQuantSpec("gptq", 4, group_size=128)


@pytest.mark.parametrize("text", ["w4-gptq-g128+kv4-group-g32-r0", "w3-outlier-s1-g128-matrix+kv2-outlier-s2-lr4",
                                  "w4-gptq-g64-actorder+kv4-uniform"])
def test_weight_plus_kv_settings_parse_and_round_trip(text):
    setting = Setting.from_id(text)
    assert setting.id == text and Setting.from_id(setting.id) == setting
    w, kv = text.split("+")
    assert setting.weights == WeightQuantSpec.from_id(w) and setting.kv == KVQuantSpec.from_id(kv)


@pytest.mark.parametrize("make, match", [
    (lambda: WeightQuantSpec.from_id("w4-outlier-s50"), r"outlier_ratio=0.5: must be a number in \[0, 0.5\)"),
    (lambda: WeightQuantSpec("outlier", 4, outlier_ratio=-0.01), r"outlier_ratio=-0.01: must be a number in \[0, 0.5\)"),
    (lambda: WeightQuantSpec("outlier", 4, outlier_ratio="1%"), r"outlier_ratio='1%': must be a number"),
    (lambda: WeightQuantSpec("outlier", 4, outlier_scope="column"),
     r"outlier_scope='column': allowed outlier scopes are \('row', 'matrix'\)"),
    (lambda: WeightQuantSpec.from_id("w4-group-s1"), r"id='w4-group-s1'.*outlier_ratio=0.01: method 'group' does not use"),
    (lambda: WeightQuantSpec.from_id("w4-gptq-matrix"), r"outlier_scope='matrix': method 'gptq' does not use"),
    (lambda: WeightQuantSpec.from_id("w4-outlier-actorder"), r"act_order=True: method 'outlier' does not use"),
    (lambda: WeightQuantSpec.from_id("w4-rtn-actorder"), r"act_order=True: method 'rtn' does not use"),
    (lambda: WeightQuantSpec("gptq", 4, act_order=1), r"act_order=1: must be True or False"),
    (lambda: WeightQuantSpec.from_id("w4-awq-static"), r"static_groups=True: method 'awq' does not use"),
    (lambda: WeightQuantSpec.from_id("w4-gptq-actorder-actorder"), r"'actorder' repeats actorder"),
    (lambda: WeightQuantSpec.from_id("w4-gptq-x2"), r"unknown option 'x2'; allowed options are g<group_size>, "
                                                    r"c<clip_ratio>, sym, s<outlier_percent>, matrix, actorder, static"),
    (lambda: WeightQuantSpec.from_id("w4-outlier-s1-s2"), r"'s2' repeats outlier_percent"),
    (lambda: WeightQuantSpec.from_id("w5-gptq"), r"bits=5: allowed bits are"),
    (lambda: gptq_quantize(torch.randn(8, 16), torch.randn(4, 16), WeightQuantSpec("gptq", 4, group_size=8),
                           blocksize=0), r"blocksize=0: must be an integer >= 1"),
    (lambda: split_weight_outliers(torch.randn(8, 16), WeightQuantSpec("outlier", 4, group_size=6)),
     r"group_size=6: must divide in_features=16"),
])
def test_bad_values_name_the_value_and_what_is_allowed(make, match):
    with pytest.raises(ValueError, match=match):
        make()
