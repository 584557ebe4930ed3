"""The quantized KV cache: each method against a float64 reference, streaming, prefill
semantics, storage, and generate() on Llama, LLaVA and LLaVA-NeXT."""

import pytest
import torch
from transformers import DynamicCache, LlamaForCausalLM

from quant import KVQuantSpec
from quant.kvcache import QuantizedKVCache, QuantizedKVLayer, compress
from tiny_models import closed_form_bytes, llama_config


# ---------------------------------------------------------------- float64 references
def ref_rows(rows: torch.Tensor, bits: int) -> torch.Tensor:
    """Asymmetric min-max quantize-dequantize of each row, in float64."""
    rows = rows.double()
    lo, hi = rows.min(dim=1, keepdim=True).values, rows.max(dim=1, keepdim=True).values
    scale = (hi - lo) / (2 ** bits - 1)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    return torch.round((rows - lo) / safe) * scale + lo


def ref_uniform_tensor(x, bits):  # one range per sequence
    return ref_rows(x.reshape(x.shape[0], -1), bits).reshape(x.shape)


def ref_uniform_token(x, bits):  # GEAR's per-token: one range per token over all heads (H·D)
    b, h, t, d = x.shape
    return ref_rows(x.transpose(1, 2).reshape(b * t, h * d), bits).reshape(b, t, h, d).transpose(1, 2)


def ref_uniform_headrow(x, bits):  # one range per head-token row
    return ref_rows(x.reshape(-1, x.shape[-1]), bits).reshape(x.shape)


def ref_kivi_keys(x, bits, group):  # per channel, groups of `group` tokens
    b, h, t, d = x.shape
    by_channel = x.permute(0, 1, 3, 2).reshape(-1, group)
    return ref_rows(by_channel, bits).reshape(b, h, d, t).permute(0, 1, 3, 2)


def ref_kivi_values(x, bits, group):  # per token, groups of `group` channels
    return ref_rows(x.reshape(-1, group), bits).reshape(x.shape)


def ref_outlier(x, bits, ratio):
    """GEAR: per sequence, sort; the ratio/2 smallest and largest stay exact, the rest is
    quantized with its own range."""
    b, h, t, d = x.shape
    flat = x.double().transpose(1, 2).reshape(b, -1)
    out = flat.clone()
    k = int(flat.shape[1] * ratio / 2)
    for i in range(b):
        order = torch.argsort(flat[i])
        middle = order[k:flat.shape[1] - k]
        out[i, middle] = ref_rows(flat[i, middle][None], bits)[0]
    return out.reshape(b, t, h, d).transpose(1, 2)


def assert_matches_reference(got: torch.Tensor, ref: torch.Tensor, x: torch.Tensor, bits: int):
    """Equal up to float32 rounding; a rare element may sit on the neighbouring grid point
    only where float32 and float64 disagree about a rounding tie."""
    step = (x.max() - x.min()).item() / (2 ** bits - 1)
    diff = (got.double() - ref).abs()
    assert diff.max().item() <= step * 1.001 + 1e-5
    assert (diff <= 1e-4).float().mean().item() >= 0.999


def activations(shape=(2, 4, 64, 32), seed=0, outlier_channels=(3, 17)):
    """Keys-like activations: a few channels ~10x larger, as in real K caches (KIVI Fig. 2)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen)
    x[..., list(outlier_channels)] *= 10.0
    return x


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("spec_id, reference", [
    pytest.param(*case, id=case[0].format(b="")) for case in [
    ("kv{b}-uniform", lambda x, b: ref_uniform_tensor(x, b)),
    ("kv{b}-uniform-token", lambda x, b: ref_uniform_token(x, b)),
    ("kv{b}-uniform-headrow", lambda x, b: ref_uniform_headrow(x, b)),
    ("kv{b}-outlier-s2", lambda x, b: ref_outlier(x, b, 0.02)),
    ("kv{b}-outlier-s10", lambda x, b: ref_outlier(x, b, 0.10)),
    ("kv{b}-outlier-s0", lambda x, b: ref_uniform_tensor(x, b)),  # s = 0: no outliers, all quantized
]])
def test_uniform_and_outlier_match_float64_reference(bits, spec_id, reference):
    x_k, x_v = activations(seed=1), activations(seed=2)
    layer = QuantizedKVLayer(KVQuantSpec.from_id(spec_id.format(b=bits)))
    keys, values = layer.update(x_k, x_v)
    assert_matches_reference(keys, reference(x_k, bits), x_k, bits)
    assert_matches_reference(values, reference(x_v, bits), x_v, bits)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_kivi_group_matches_float64_reference_and_keeps_the_residual_exact(bits):
    x_k, x_v = activations(shape=(2, 4, 80, 32), seed=3), activations(shape=(2, 4, 80, 32), seed=4)
    layer = QuantizedKVLayer(KVQuantSpec("group", bits, group_size=16, residual_length=32))
    keys, values = layer.update(x_k, x_v)
    qk, qv = 64, 48  # 80 tokens, R = 32: keys keep the l mod R = 16 newest, values the R = 32 newest
    assert_matches_reference(keys[:, :, :qk], ref_kivi_keys(x_k[:, :, :qk], bits, 16), x_k, bits)
    assert_matches_reference(values[:, :, :qv], ref_kivi_values(x_v[:, :, :qv], bits, 16), x_v, bits)
    assert torch.equal(keys[:, :, qk:], x_k[:, :, qk:])
    assert torch.equal(values[:, :, qv:], x_v[:, :, qv:])


def test_outliers_are_exact_and_low_rank_is_near_the_best_rank_r_correction():
    """Our -exactoutliers variant: outliers stay exact; GEAR's default adds L there too
    (tests/test_kv_reference.py)."""
    x = activations(shape=(1, 4, 96, 32), seed=5)
    plain, _ = QuantizedKVLayer(KVQuantSpec("outlier", 2, outlier_ratio=0.02)).update(x, x)
    with_lr, _ = QuantizedKVLayer(KVQuantSpec("outlier", 2, outlier_ratio=0.02, rank=4,
                                              exact_outliers=True)).update(x, x)
    flat_x = x.transpose(1, 2).reshape(-1)
    k = int(flat_x.numel() * 0.01)
    extremes = torch.cat([torch.topk(flat_x, k).indices, torch.topk(flat_x, k, largest=False).indices])
    assert torch.equal(with_lr.transpose(1, 2).reshape(-1)[extremes], flat_x[extremes])
    # Best possible rank-4 correction of the quantization residual (float64 SVD, outliers excluded).
    residual = (x.double() - plain.double()).transpose(1, 2).reshape(96, -1)
    singular = torch.linalg.svdvals(residual)
    best_error = singular[4:].pow(2).sum().sqrt()
    error = (x.double() - with_lr.double()).norm()
    assert error < residual.norm()
    assert error <= 1.05 * best_error, (error.item(), best_error.item())


def test_group_and_outlier_beat_uniform_at_2_bits_on_activations_with_outlier_channels():
    x = activations(shape=(2, 8, 128, 64), seed=6)
    errors = {}
    for spec_id in ("kv2-uniform", "kv2-group-g32-r0", "kv2-outlier-s2"):
        keys, _ = QuantizedKVLayer(KVQuantSpec.from_id(spec_id)).update(x, x)
        errors[spec_id] = (keys - x).pow(2).mean().item()
    assert errors["kv2-group-g32-r0"] < 0.5 * errors["kv2-uniform"], errors
    assert errors["kv2-outlier-s2"] < 0.5 * errors["kv2-uniform"], errors


# ---------------------------------------------------------------- streaming
def test_history_is_never_requantized_and_the_window_follows_l_mod_r():
    layer = QuantizedKVLayer(KVQuantSpec("group", 2, group_size=16, residual_length=32))
    x = activations(shape=(1, 2, 40, 32), seed=7)
    first, _ = layer.update(x, x)
    assert layer.keys.shape[-2] == 40 % 32
    for step in range(60):
        new = activations(shape=(1, 2, 1, 32), seed=100 + step)
        keys, _ = layer.update(new, new)
        assert torch.equal(keys[:, :, :32], first[:, :, :32])  # the first block never changes
        assert layer.keys.shape[-2] == (41 + step) % 32
        assert keys.shape[-2] == layer.get_seq_length() == 41 + step


@pytest.mark.parametrize("spec_id", ["kv2-group-g8-r16", "kv2-outlier-s2"])
def test_appending_a_token_copies_the_token_not_the_history(spec_id):
    """KIVI's values (and GEAR with R = 0) compress one token per step: the stream appends it into
    spare room behind the history (geometric growth), and reads back exactly what concatenation
    would give."""
    layer = QuantizedKVLayer(KVQuantSpec.from_id(spec_id), 0)
    gen = torch.Generator().manual_seed(0)
    tokens = [torch.randn(2, 2, 20, 8, generator=gen)] + [torch.randn(2, 2, 1, 8, generator=gen) for _ in range(60)]
    layer.update(tokens[0], tokens[0].clone())
    reallocations, buffer = 0, None
    for token in tokens[1:]:
        layer.update(token, token.clone())
        segment = layer.value_stream.segments[-1]
        if segment.storage and segment.storage["codes"].data_ptr() != buffer:
            reallocations, buffer = reallocations + 1, segment.storage["codes"].data_ptr()
    assert len(layer.value_stream.segments) <= 2 and 1 <= reallocations <= 12   # 1.25x growth: ~log(80)/log(1.25)
    reference = QuantizedKVLayer(KVQuantSpec.from_id(spec_id), 0)    # one compress per token, no merging
    reference.value_stream.append = lambda x, check_finite=True, padding=None: reference.value_stream.segments.append(
        compress(x, reference.value_stream.codec))
    reference.key_stream.append = lambda x, check_finite=True, padding=None: reference.key_stream.segments.append(
        compress(x, reference.key_stream.codec))
    reference.update(tokens[0], tokens[0].clone())
    for token in tokens[1:]:
        reference.update(token, token.clone())
    for stream, expected in ((layer.value_stream, reference.value_stream), (layer.key_stream, reference.key_stream)):
        window = torch.zeros(2, 2, 0, 8)
        assert torch.equal(stream.read(window), expected.read(window))
    assert layer.nbytes_by_part() == reference.nbytes_by_part()   # spare room is not stored data


def test_uniform_with_no_residual_compresses_every_decode_token_after_its_step():
    layer = QuantizedKVLayer(KVQuantSpec("uniform", 4))
    x = activations(shape=(1, 2, 8, 32))
    layer.update(x, x)
    new = activations(shape=(1, 2, 1, 32), seed=9)
    keys, _ = layer.update(new, new)
    assert torch.equal(keys[:, :, -1:], new)  # attended in full precision at its own step
    assert layer.keys.shape[-2] == 0           # ... and compressed afterwards
    keys, _ = layer.update(new, new)
    assert not torch.equal(keys[:, :, -2:-1], new)
    assert_matches_reference(keys[:, :, -2:-1], ref_uniform_tensor(new, 4), new, 4)


# ---------------------------------------------------------------- storage
HEADS, HEAD_DIM, TOKENS, LAYERS = 8, 128, 4096, 8


STORAGE_SPECS = [f"kv{bits}-{method}" for bits in (2, 4, 8)
                 for method in ("uniform", "uniform-token", "uniform-headrow", "group-g32-r128", "outlier-s2", "outlier-s2-lr4")]


@pytest.mark.parametrize("spec_id", STORAGE_SPECS)
def test_cache_bytes_match_the_closed_form(spec_id):
    spec = KVQuantSpec.from_id(spec_id)
    cache = QuantizedKVCache(spec, llama_config(num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                                                num_key_value_heads=HEADS, hidden_size=HEADS * HEAD_DIM))
    x = torch.randn(1, HEADS, TOKENS, HEAD_DIM, generator=torch.Generator().manual_seed(0)).half()
    for layer in range(LAYERS):
        cache.update(x, x, layer)
    measured = cache.nbytes()
    assert measured == pytest.approx(closed_form_bytes(spec, LAYERS, HEADS, TOKENS, HEAD_DIM), rel=0.01)
    fp16 = LAYERS * 2 * x.numel() * 2
    limit = {"kv4-group-g32-r128": 0.36, "kv2-group-g32-r128": 0.24}.get(spec.id)
    if limit is not None:
        assert measured / fp16 <= limit
    codes = [segment.codes.data for layer in cache.layers
             for stream in (layer.key_stream, layer.value_stream) for segment in stream.segments]
    assert codes and all(t.dtype == torch.uint8 for t in codes)


# ---------------------------------------------------------------- generate()
def generate(model, prompts, cache, new_tokens, **kwargs):
    return model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new_tokens,
                          min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, cache=cache, **kwargs)


def test_fp16_spec_is_token_identical_to_dynamic_cache_with_left_padding():
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config()).eval()
    prompts = torch.randint(1, 128, (3, 12), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(prompts)
    prompts[0, :5], mask[0, :5] = 0, 0  # left padding
    prompts[1, :2], mask[1, :2] = 0, 0
    kwargs = dict(attention_mask=mask, max_new_tokens=24, do_sample=False, pad_token_id=0)
    reference = model.generate(prompts, cache=DynamicCache(config=model.config), **kwargs)
    ours = model.generate(prompts, cache=QuantizedKVCache(KVQuantSpec(), model.config), **kwargs)
    assert torch.equal(ours, reference)


@pytest.mark.parametrize("spec_id", ["kv8-uniform", "kv8-uniform-token", "kv8-group-g32-r128", "kv8-group-g32-r0",
                                     "kv8-outlier-s2", "kv8-outlier-s2-lr4"])
def test_8_bit_greedy_tokens_agree_with_the_float_cache_over_256_tokens(copy_llama, spec_id):
    model, prompts = copy_llama
    reference = generate(model, prompts, DynamicCache(config=model.config), 256)
    assert (reference[:, 32:] == prompts[:, :16].repeat(1, 16)).float().mean() > 0.99  # the model copies
    ours = generate(model, prompts, QuantizedKVCache(KVQuantSpec.from_id(spec_id), model.config), 256)
    assert (ours[:, 32:] == reference[:, 32:]).float().mean() >= 0.99  # measured 1.00 for each method


def prefill_logits(model, prompts, cache):
    with torch.no_grad():
        return model(prompts, cache=cache, use_cache=True).logits[:, -1]


def test_2_bit_uniform_changes_logits_measurably(copy_llama):
    model, prompts = copy_llama
    reference = prefill_logits(model, prompts, DynamicCache(config=model.config))
    ours = prefill_logits(model, prompts, QuantizedKVCache(KVQuantSpec("uniform", 2), model.config))
    assert ((ours - reference).norm() / reference.norm()).item() > 0.1


def test_prefill_semantics_decide_whether_a_one_token_answer_can_change():
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config()).eval()
    prompts = torch.randint(0, 128, (32, 16), generator=torch.Generator().manual_seed(3))
    float_answers = generate(model, prompts, DynamicCache(config=model.config), 1)[:, -1]
    simulated = generate(model, prompts, QuantizedKVCache(KVQuantSpec("uniform", 2), model.config), 1)[:, -1]
    deployment_spec = KVQuantSpec("uniform", 2, quantize_prefill=False)
    assert deployment_spec.id == "kv2-uniform-fpprefill"
    deployment = generate(model, prompts, QuantizedKVCache(deployment_spec, model.config), 1)[:, -1]
    assert (simulated != float_answers).sum() >= 3  # default: compression reaches the first token (measured 18 of 32)
    assert torch.equal(deployment, float_answers)   # KIVI's deployment semantics cannot change it
    deployment_logits = prefill_logits(model, prompts, QuantizedKVCache(deployment_spec, model.config))
    assert torch.equal(deployment_logits, prefill_logits(model, prompts, DynamicCache(config=model.config)))


def test_beam_search_reorders_the_quantized_cache(copy_llama):
    model, prompts = copy_llama
    kwargs = dict(num_beams=3, early_stopping=True)
    reference = generate(model, prompts[:2], DynamicCache(config=model.config), 12, **kwargs)
    ours = generate(model, prompts[:2], QuantizedKVCache(KVQuantSpec(), model.config), 12, **kwargs)
    assert torch.equal(ours, reference)
    quantized = generate(model, prompts[:2], QuantizedKVCache(KVQuantSpec("group", 8, residual_length=0), model.config),
                         12, **kwargs)
    assert (quantized == reference).float().mean() > 0.95


def llava_inputs(batch: int = 2):
    ids = torch.tensor([[0, 0, 1, 63, 63, 63, 63, 5, 6], [1, 63, 63, 63, 63, 7, 8, 9, 10]][:batch])
    mask = (torch.arange(ids.shape[1]) >= torch.tensor([2, 0][:batch])[:, None]).long()
    return ids, mask


def test_llava_generates_with_the_quantized_cache(tiny_llava):
    model = tiny_llava()
    ids, mask = llava_inputs()
    pixels = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    kwargs = dict(input_ids=ids, attention_mask=mask, pixel_values=pixels, max_new_tokens=8, do_sample=False,
                  pad_token_id=0)
    reference = model.generate(cache=DynamicCache(config=model.config), **kwargs)
    assert torch.equal(model.generate(cache=QuantizedKVCache(KVQuantSpec(), model.config), **kwargs), reference)
    for spec_id in ("kv8-group-g32-r0", "kv4-outlier-s2-lr2", "kv2-uniform"):
        out = model.generate(cache=QuantizedKVCache(KVQuantSpec.from_id(spec_id), model.config), **kwargs)
        assert out.shape == reference.shape


def test_llava_next_generates_with_the_quantized_cache():
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextConfig, LlavaNextForConditionalGeneration

    torch.manual_seed(0)
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(image_size=32, patch_size=16, hidden_size=64, intermediate_size=128,
                                       num_hidden_layers=1, num_attention_heads=2),
        text_config=LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                num_attention_heads=2),
        image_token_index=63, image_grid_pinpoints=[[32, 32]], vision_feature_layer=-1,
        vision_feature_select_strategy="default")
    model = LlavaNextForConditionalGeneration(config).eval()
    # one 32x32 image: base tile (4 tokens) + one anyres tile (4 tokens) + 2 newline tokens = 10 image tokens
    ids = torch.tensor([[1] + [63] * 10 + [5, 6]])
    kwargs = dict(input_ids=ids, pixel_values=torch.randn(1, 2, 3, 32, 32), image_sizes=torch.tensor([[32, 32]]),
                  max_new_tokens=6, do_sample=False, pad_token_id=0)
    reference = model.generate(cache=DynamicCache(config=model.config), **kwargs)
    assert torch.equal(model.generate(cache=QuantizedKVCache(KVQuantSpec(), model.config), **kwargs), reference)
    out = model.generate(cache=QuantizedKVCache(KVQuantSpec("group", 4, group_size=16, residual_length=16),
                                                model.config), **kwargs)
    assert out.shape == reference.shape


# ---------------------------------------------------------------- errors
def test_group_size_must_divide_head_dim_at_construction():
    config = llama_config()  # head_dim 32
    with pytest.raises(ValueError, match=r"group_size=64 .*head_dim=32"):
        QuantizedKVCache(KVQuantSpec("group", 4, group_size=64, residual_length=128), config)


def test_residual_length_must_be_a_multiple_of_group_size():
    with pytest.raises(ValueError, match=r"residual_length=100: must be a multiple of group_size=32"):
        KVQuantSpec("group", 2, residual_length=100)


def test_sliding_window_layers_are_quantized_and_other_layer_kinds_rejected_up_front():
    """Windowed layers keep every token, compressed (the model's mask applies the window; see
    tests/test_families.py for Gemma 3); a kind the cache does not know is refused by name."""
    from transformers import MistralConfig

    config = MistralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                           num_key_value_heads=2, sliding_window=16, vocab_size=64)
    cache = QuantizedKVCache(KVQuantSpec("uniform", 4), config)
    assert all(isinstance(layer, QuantizedKVLayer) and layer.key_stream is not None for layer in cache.layers)
    config.layer_types = ["chunked_attention", "full_attention"]
    config.attention_chunk_size = 8
    with pytest.raises(ValueError, match=r"full-attention and sliding-window layers; this model has "
                                         r"\['chunked_attention'\]"):
        QuantizedKVCache(KVQuantSpec("uniform", 4), config)


def test_assisted_decoding_crop_is_a_clear_error():
    layer = QuantizedKVLayer(KVQuantSpec("uniform", 4))
    with pytest.raises(ValueError, match="cannot drop tokens"):
        layer.crop(-1)


def test_constant_and_zero_activations_do_not_produce_nan():
    for spec_id in ("kv2-uniform", "kv2-uniform-token", "kv2-group-g16-r0", "kv2-outlier-s2-lr2"):
        layer = QuantizedKVLayer(KVQuantSpec.from_id(spec_id))
        constant = torch.full((1, 2, 32, 32), 0.25)
        keys, values = layer.update(constant, torch.zeros_like(constant))
        assert torch.equal(keys, constant) and torch.equal(values, torch.zeros_like(constant)), spec_id


def test_batch_repeat_and_select_keep_each_sequence_intact():
    layer = QuantizedKVLayer(KVQuantSpec("group", 4, group_size=16, residual_length=16))
    x = activations(shape=(2, 2, 40, 32), seed=11)
    keys, _ = layer.update(x, x)
    layer.batch_repeat_interleave(2)
    new = activations(shape=(4, 2, 1, 32), seed=12)
    repeated, _ = layer.update(new, new)
    assert torch.equal(repeated[:, :, :40], keys.repeat_interleave(2, dim=0))
    layer.batch_select_indices(torch.tensor([3, 0]))
    selected, _ = layer.update(new[:2], new[:2])
    assert torch.equal(selected[:, :, :41], repeated[[3, 0]])


def test_mistral_generates_with_the_quantized_cache():
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    config = MistralConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                           num_key_value_heads=1, vocab_size=64, sliding_window=None)
    model = MistralForCausalLM(config).eval()
    prompts = torch.randint(1, 64, (2, 10), generator=torch.Generator().manual_seed(0))
    reference = generate(model, prompts, DynamicCache(config=config), 8)
    assert torch.equal(generate(model, prompts, QuantizedKVCache(KVQuantSpec(), config), 8), reference)
    assert generate(model, prompts, QuantizedKVCache(KVQuantSpec("outlier", 4), config), 8).shape == reference.shape
