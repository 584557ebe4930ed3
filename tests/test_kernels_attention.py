"""Packed decode attention (quant/packed_attention.py + quant/kernels/decode_attention.py) against
the torch path: the same step computed from the dequantized history."""

import copy

import pytest

triton = pytest.importorskip("triton")

import torch  # noqa: E402
from transformers import DynamicCache, LlamaForCausalLM  # noqa: E402

import quant.kernels.decode_attention as decode_kernels  # noqa: E402
from quant import KVQuantSpec, QuantizedKVCache, QuantizedKVLayer, enable_packed_attention  # noqa: E402
from quant.affine import dequantize  # noqa: E402
from quant.kernels import kernel_path  # noqa: E402
from quant.packing import unpack  # noqa: E402
from tiny_models import check_packed_decode_steps, greedy, llama_config, packed_llama_pair  # noqa: E402

pytestmark = pytest.mark.triton

SPECS = ["kv4-uniform", "kv3-uniform-token-r4", "kv2-uniform-headrow-sym", "kv8-uniform-sym",
         "kv2-group-g8-r0", "kv4-group-g8-r8-sym", "kv2-outlier-s4-r4", "kv2-outlier-s2-lr3",
         "kv3-outlier-s2-lrf0.25-exactoutliers"]


@pytest.fixture
def triton_kernels(monkeypatch):
    monkeypatch.setenv("LVLMBENCH_KERNELS", "triton")


@pytest.mark.parametrize("spec_id", SPECS)
def test_decode_step_equals_attention_over_the_dequantized_history(spec_id, triton_kernels):
    check_packed_decode_steps(spec_id)


def test_the_kernels_read_every_layout_as_dequantize_does(triton_kernels):
    gen = torch.Generator().manual_seed(1)
    for spec_id in ("kv2-uniform", "kv3-uniform-token", "kv4-uniform-headrow", "kv2-group-g8-r0"):
        layer = QuantizedKVLayer(KVQuantSpec.from_id(spec_id), 0)
        layer.update(torch.randn(2, 2, 24, 24, generator=gen), torch.randn(2, 2, 24, 24, generator=gen))
        for stream in (layer.key_stream, layer.value_stream):
            segment = stream.segments[0]
            history = dequantize(unpack(segment.codes), segment.qparams, torch.float32).repeat_interleave(3, 1)
            q = torch.randn(2, 6, 24, generator=gen)
            scores = decode_kernels.packed_scores(q, segment.codes, segment.qparams)
            torch.testing.assert_close(scores, torch.einsum("bqd,bqtd->bqt", q, history), rtol=1e-5, atol=1e-5)
            w = torch.rand(2, 6, segment.tokens, generator=gen)
            torch.testing.assert_close(decode_kernels.packed_weighted_sum(w, segment.codes, segment.qparams, splits=2),
                                       torch.einsum("bqt,bqtd->bqd", w, history), rtol=1e-5, atol=1e-5)


def test_a_wrong_scale_changes_the_scores(triton_kernels):
    layer = QuantizedKVLayer(KVQuantSpec.from_id("kv4-uniform-token"), 0)
    layer.update(torch.randn(1, 2, 8, 16), torch.randn(1, 2, 8, 16))
    segment = layer.key_stream.segments[0]
    q = torch.randn(1, 2, 16)
    right = decode_kernels.packed_scores(q, segment.codes, segment.qparams)
    wrong = copy.copy(segment.qparams)
    object.__setattr__(wrong, "scale", segment.qparams.scale * 1.5)
    assert not torch.allclose(right, decode_kernels.packed_scores(q, segment.codes, wrong))


@pytest.fixture(scope="module")
def llama_pair():
    return packed_llama_pair()


@pytest.mark.parametrize("spec_id", ["kv2-group-g8-r8", "kv2-outlier-s2-lr4"])
def test_generation_through_packed_attention_matches_the_torch_path(spec_id, llama_pair, monkeypatch):
    """Left-padded batch of 3 on a GQA Llama: same tokens, logits within float noise, and the
    packed kernels really ran at every decode step of every layer."""
    model, packed, ids, mask = llama_pair
    spec = KVQuantSpec.from_id(spec_id)
    monkeypatch.setenv("LVLMBENCH_KERNELS", "torch")
    expected = greedy(model, ids, mask, QuantizedKVCache(spec, model.config))
    monkeypatch.setenv("LVLMBENCH_KERNELS", "triton")
    calls = []
    real = decode_kernels.packed_weighted_sum
    monkeypatch.setattr(decode_kernels, "packed_weighted_sum", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = greedy(packed, ids, mask, QuantizedKVCache(spec, packed.config))
    assert torch.equal(got.sequences, expected.sequences)
    for a, b in zip(got.logits, expected.logits):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert len(calls) >= 5 * model.config.num_hidden_layers  # 5 decode steps x 2 layers (x segments)


def test_packed_attention_is_sdpa_wherever_it_does_not_apply(llama_pair, monkeypatch):
    """The float cache and DynamicCache give the very same logits as SDPA (the torch kernel choice
    runs the packed sums in torch: tests/test_packed_math.py)."""
    model, packed, ids, mask = llama_pair
    monkeypatch.setenv("LVLMBENCH_KERNELS", "triton")
    for make in (lambda m: DynamicCache(config=m.config), lambda m: QuantizedKVCache(KVQuantSpec(), m.config)):
        a, b = greedy(model, ids, mask, make(model)), greedy(packed, ids, mask, make(packed))
        assert all(torch.equal(x, y) for x, y in zip(a.logits, b.logits))


def test_kernel_choice_is_validated_and_reported(monkeypatch):
    monkeypatch.setenv("LVLMBENCH_KERNELS", "cuda")
    with pytest.raises(ValueError, match=r"invalid LVLMBENCH_KERNELS='cuda': allowed values are auto, torch, triton"):
        kernel_path("cpu")
    monkeypatch.setenv("LVLMBENCH_KERNELS", "auto")
    assert kernel_path("cpu") == "torch"  # the interpreter is for tests, never chosen automatically
    monkeypatch.setenv("LVLMBENCH_KERNELS", "triton")
    assert kernel_path("cpu") == "triton-interpreter"
    monkeypatch.delenv("TRITON_INTERPRET")
    with pytest.raises(RuntimeError, match=r"LVLMBENCH_KERNELS=triton on cpu tensors needs TRITON_INTERPRET=1"):
        kernel_path("cpu")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("spec_id", ["kv4-group-g32-r128", "kv2-group-g32-r128", "kv2-outlier-s2-lr4"])
def test_packed_decode_on_cuda_matches_the_torch_path(spec_id, monkeypatch):
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(hidden_size=256, num_attention_heads=8, num_key_value_heads=2)).cuda().half()
    packed = copy.deepcopy(model)
    enable_packed_attention(packed)
    ids = torch.randint(3, 128, (4, 300), device="cuda")
    mask = torch.ones_like(ids)
    mask[0, :40] = 0
    spec = KVQuantSpec.from_id(spec_id)
    monkeypatch.setenv("LVLMBENCH_KERNELS", "torch")
    expected = greedy(model, ids, mask, QuantizedKVCache(spec, model.config))
    monkeypatch.setenv("LVLMBENCH_KERNELS", "auto")
    assert kernel_path("cuda") == "triton"
    got = greedy(packed, ids, mask, QuantizedKVCache(spec, packed.config))
    torch.testing.assert_close(got.logits[0], expected.logits[0], rtol=2e-2, atol=2e-2)
    agree = sum(torch.equal(a.argmax(-1), b.argmax(-1)) for a, b in zip(got.logits, expected.logits))
    assert agree >= len(got.logits) - 2
