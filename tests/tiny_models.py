"""Model configs and checks shared by the tests (no downloads)."""


def llama_config(**overrides):
    from transformers import LlamaConfig

    settings = dict(vocab_size=128, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return LlamaConfig(**{**settings, **overrides})


def closed_form_bytes(spec, layers: int, heads: int, tokens: int, head_dim: int) -> int:
    """Bytes a KV spec must store for ``layers x heads x tokens x head_dim`` fp16 keys and values."""
    n = heads * tokens * head_dim
    if spec.method == "group":
        total = 0
        for residual in (tokens % spec.residual_length, spec.residual_length):  # keys l mod R, values R
            quantized = (tokens - residual) * heads * head_dim
            total += quantized * spec.bits // 8 + 2 * 2 * quantized // spec.group_size
            total += 2 * residual * heads * head_dim
        return layers * total
    codes = n * spec.bits // 8
    if spec.method == "uniform" and spec.granularity == "token":
        return layers * 2 * (codes + 2 * 2 * tokens)
    if spec.method == "uniform" and spec.granularity == "headrow":
        return layers * 2 * (codes + 2 * 2 * heads * tokens)
    per_stream = codes + 2 * 2
    if spec.method == "outlier":
        per_stream += 2 * int(n * spec.outlier_ratio / 2) * (2 + 4)  # fp16 value + int32 position
        per_stream += spec.rank * (tokens + heads * head_dim) * 2
    return layers * 2 * per_stream


def reference_step(query, layer, new_keys, new_values, mask, scaling):
    """A decode step by the dequantizing path: the whole history read back (Segment.dequantize_into,
    GEAR's parts included), then attention in float32."""
    import torch

    keys = torch.cat([layer.key_stream.read(layer.keys), new_keys], dim=2).float()
    values = torch.cat([layer.value_stream.read(layer.values), new_values], dim=2).float()
    groups = query.shape[1] // keys.shape[1]
    scores = torch.einsum("bqd,bqtd->bqt", query[:, :, 0].float(), keys.repeat_interleave(groups, 1)) * scaling
    scores = scores.masked_fill(~mask[:, :, -1, :scores.shape[-1]], float("-inf"))
    return torch.einsum("bqt,bqtd->bqd", scores.softmax(-1), values.repeat_interleave(groups, 1)).unsqueeze(1)


def check_packed_decode_steps(spec_id: str) -> None:
    """Batch 3 with left padding (masked positions), GQA (4 query heads on 2 KV heads), a 21-token
    prompt and 6 decode steps (flushes, KIVI's value window and GEAR's segments all happen): each
    step of the packed decode attention (whichever kernel path is chosen) equals reference_step, and
    the cache handed the packed history over instead of dequantizing it."""
    import torch

    from quant import KVQuantSpec, QuantizedKVLayer
    from quant.packed_attention import _pending, decode_attention

    gen = torch.Generator().manual_seed(0)
    layer = QuantizedKVLayer(KVQuantSpec.from_id(spec_id), 0)
    layer.packed_attention = True
    layer.update(torch.randn(3, 2, 21, 16, generator=gen), torch.randn(3, 2, 21, 16, generator=gen))
    pad = torch.tensor([4, 0, 9])
    for step in range(6):
        k, v = torch.randn(3, 2, 1, 16, generator=gen), torch.randn(3, 2, 1, 16, generator=gen)
        q = torch.randn(3, 4, 1, 16, generator=gen)
        mask = (torch.arange(22 + step) >= pad[:, None])[:, None, None, :]
        expected = reference_step(q, layer, k, v, mask, 0.25)
        window_keys, _ = layer.update(k, v)
        packed = _pending.get()
        assert packed is not None and packed.key_window is window_keys
        torch.testing.assert_close(decode_attention(q, packed, mask, 0.25), expected, rtol=1e-5, atol=1e-5)
    assert layer.key_stream.segments and layer.value_stream.segments  # the history really is compressed


def packed_llama_pair():
    """(model, the same model with packed decode attention, input ids, attention mask): a GQA Llama
    and a left-padded batch of 3 prompts."""
    import copy

    import torch
    from transformers import LlamaForCausalLM

    from quant import enable_packed_attention

    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config()).eval()
    packed = copy.deepcopy(model)
    enable_packed_attention(packed)
    ids = torch.randint(3, 128, (3, 21), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    mask[2, :2] = 0
    return model, packed, ids, mask


def greedy(model, ids, mask, cache):
    """Six greedy tokens with their logits."""
    import torch

    with torch.no_grad():
        return model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, cache=cache,
                              output_logits=True, return_dict_in_generate=True, pad_token_id=0)
