"""KV eviction and visual-token pruning on real models (the embedded tiny LLaVA and tiny Qwen2-VL),
each against an independent reference: the model's own eager attention for the selection, and a
forward pass that removes the tokens by hand (original positions kept) for the answers. Plus the
pruning rules' worked examples and specs (quant/vtokens.py, quant/token_spec.py)."""

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, DynamicCache

from quant import KVQuantSpec, QuantizedKVCache
from quant.eviction import adakv_budgets, pool, stable_top
from quant.scored_attention import observing_attention
from quant.token_spec import EvictSpec, VTokSpec
from quant.vtokens import (VisualTokenPruner, fastv_keep, image_positions, pool_blocks, pruning_visual_tokens,
                           random_keep, visionzip_choice)
from pytest_lvlmbench.engine.families import load_processor, render_prompt
from pytest_lvlmbench.engine.generation import generate_batch, image_token_id, model_inputs, pruning_seed
from pytest_lvlmbench.engine.models import model_family, resolve_model


# ---------------------------------------------------------------- specs and rules
@pytest.mark.parametrize("text", ["vtok-fastv-k2-r50", "vtok-random-r75", "vtok-pool2", "vtok-visionzip-r89"])
def test_a_pruning_id_parses_back_to_an_equal_spec(text):
    assert VTokSpec.from_id(text).id == text


@pytest.mark.parametrize("text, message", [
    ("vtok-fastv-r50", r"FastV's layer K is missing \(k<layer>"),
    ("vtok-fastv-k0-r50", r"invalid layer=0: must be an integer >= 1"),
    ("vtok-random-k2-r50", r"unknown option 'k2'; allowed options are r<ratio>"),
    ("vtok-random", r"the percent of image tokens removed is missing"),
    ("vtok-random-r100", r"invalid ratio=100: must be an integer in 1..99"),
    ("vtok-pool1", r"invalid pool=1: must be an integer >= 2"),
    ("vtok-tome-r50", r"expected 'vtok-fastv-k<layer>-r<percent removed>'"),
])
def test_a_bad_pruning_id_names_the_bad_part(text, message):
    with pytest.raises(ValueError, match=message):
        VTokSpec.from_id(text)


def test_fastv_keeps_the_image_tokens_the_last_token_attends_most_in_positional_order():
    """FastV fastv_forward: image tokens 2..9, R=50% keeps round(8 * 0.5) = 4: scores
    [.01,.09,.03,.12,.02,.07,.05,.04] -> offsets 3,1,5,6 -> positions 3,5,7,8."""
    attention = torch.zeros(1, 12)
    attention[0, 2:10] = torch.tensor([0.01, 0.09, 0.03, 0.12, 0.02, 0.07, 0.05, 0.04])
    images = torch.arange(2, 10)[None]
    assert fastv_keep(attention, images, VTokSpec("fastv", 50, layer=2)).tolist() == [[3, 5, 7, 8]]
    assert VTokSpec("fastv", 50, layer=2).keep_count(9) == 4    # round(4.5): half to even, as Python's round


def test_pooling_blocks_a_square_grid_and_refuses_any_other():
    assert pool_blocks(9, 2) == [[0, 1, 3, 4], [2, 5], [6, 7], [8]]
    assert len(pool_blocks(576, 2)) == 144 and len(pool_blocks(576, 3)) == 64
    with pytest.raises(ValueError, match="an image gives 10 tokens, not a square grid"):
        pool_blocks(10, 2)


def test_random_pruning_depends_on_the_question_alone():
    """Each row by its own seed (from its prompt and picture), so batch mates never change a choice and two
    pictures asked the same question get different draws."""
    ids = torch.tensor([[5, 4, 4, 4, 4, 4, 4, 7], [6, 4, 4, 4, 4, 4, 4, 7]])
    images = image_positions(ids, 4)
    spec = VTokSpec("random", 50)
    red, blue = Image.new("RGB", (8, 8), (200, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 200))
    seeds = [pruning_seed("What color?", red), pruning_seed("What color?", blue)]
    assert seeds[0] != seeds[1] and pruning_seed("What color?", red) == seeds[0]
    both = random_keep(images, spec, seeds)
    assert random_keep(images[1:], spec, seeds[1:]).tolist() == both[1:].tolist()   # batch mates do not matter
    assert both.shape == (2, 3) and (both.diff(dim=1) > 0).all()
    draws = {tuple(random_keep(images[:1], spec, [pruning_seed("What color?", Image.new("RGB", (8, 8), (c, 0, 0)))])
                   [0].tolist()) for c in range(40)}
    assert len(draws) > 5   # not one fixed mask for every picture asked the same question


def test_visionzip_keeps_the_dominant_patches_and_merges_the_rest_into_spaced_targets():
    """VisionZip (derived): 8 patches, CLS attention [.9,.1,.5,.2,.05,.7,.15,.3], 2 dominant -> patches 0, 5;
    the rest [1,2,3,4,6,7] with 2 contextual targets at step 3 -> patches 1 and 4; each other patch joins
    the target its key is closest to."""
    cls = torch.tensor([0.9, 0.1, 0.5, 0.2, 0.05, 0.7, 0.15, 0.3])
    keys = torch.tensor([[1., 0], [1, 0], [1, 0.1], [0, 1], [0, 1], [1, 0], [0.1, 1], [1, 0.2]])
    dominant, groups = visionzip_choice(cls, keys, 2, 2)
    assert dominant.tolist() == [0, 5]
    assert groups == [(1, [2, 7]), (4, [3, 6])]


def test_image_tokens_must_be_present_and_equal_in_number_across_a_batch():
    with pytest.raises(ValueError, match=r"the prompts hold \[2, 1\] image tokens \(id 4\)"):
        image_positions(torch.tensor([[4, 4, 1], [4, 1, 1]]), 4)


# ---------------------------------------------------------------- models
@pytest.fixture(scope="module")
def tiny():
    ref = resolve_model("tiny")
    model = AutoModelForImageTextToText.from_pretrained(ref.source).eval()
    processor = load_processor(ref.source, model_family(ref))
    images = [Image.new("RGB", (48, 48), c) for c in ((200, 10, 10), (10, 10, 200))]
    prompts = [render_prompt(processor, q, True) for q in ("What color is the shape?", "What shape is the shape?")]
    inputs = model_inputs(processor, images, prompts, "cpu", None)
    assert bool(inputs["attention_mask"].all())   # one length: no padding (as the generation path runs these)
    return model, processor, inputs


def decoder_inputs(model, inputs):
    """The language model's input embeddings and position ids of a normal forward pass (image features
    scattered in; Qwen2-VL's multimodal positions ``[3 or 4, b, L]``, else ``[1 or b, L]``)."""
    seen = {}
    handle = model.get_decoder().register_forward_pre_hook(
        lambda module, args, kwargs: seen.update(embeds=kwargs["inputs_embeds"], positions=kwargs.get("position_ids")),
        with_kwargs=True)
    with torch.inference_mode():
        model(**inputs)
    handle.remove()
    positions = seen["positions"]
    if positions is None:
        positions = torch.arange(seen["embeds"].shape[1])[None]
    return seen["embeds"], positions.expand(*positions.shape[:-2], seen["embeds"].shape[0], -1)


def last_logits(model, embeds, positions):
    """The reference: the decoder on the kept rows alone, at their original positions."""
    with torch.inference_mode():
        hidden = model.get_decoder()(inputs_embeds=embeds, position_ids=positions).last_hidden_state
        return model.get_output_embeddings()(hidden[:, -1])


def kept_rows(embeds, positions, kept):
    """The reference's inputs: the kept rows of the embeddings and of every position-id plane."""
    return (embeds.gather(1, kept[..., None].expand(-1, -1, embeds.shape[-1])),
            positions.gather(-1, kept.expand(*positions.shape[:-2], -1, -1)))


def pruned_logits(model, inputs, spec):
    with torch.inference_mode(), pruning_visual_tokens(model, spec, inputs["input_ids"],
                                                       image_token_id(model.config)) as pruner:
        return model(**inputs).logits[:, -1], pruner.kept


@pytest.mark.parametrize("text", ["vtok-random-r50", "vtok-pool2"])
def test_pruning_before_layer_zero_equals_removing_the_tokens_with_their_positions_kept(tiny, text):
    model, _, inputs = tiny
    got, kept = pruned_logits(model, inputs, VTokSpec.from_id(text))
    embeds, positions = decoder_inputs(model, inputs)
    embeds = embeds.clone()
    if text == "vtok-pool2":   # each block's mean at its first position
        for row, images in enumerate(image_positions(inputs["input_ids"], image_token_id(model.config)).tolist()):
            for block in pool_blocks(len(images), 2):
                embeds[row, images[block[0]]] = embeds[row, [images[i] for i in block]].mean(dim=0)
    want = last_logits(model, *kept_rows(embeds, positions, kept))
    assert kept.shape == (2, 16 - 9 + 4)   # random: round(9 * 0.5) = round(4.5) = 4 kept; pool2: 4 blocks
    assert torch.allclose(got, want, atol=1e-4)


def test_fastv_equals_running_the_later_layers_on_the_tokens_eager_attention_chose(tiny):
    """Reference from the model's own eager attentions (output_attentions): layer K-1's last row,
    averaged over heads, ranks the image tokens; layers K.. run by hand on the kept hidden states."""
    model, _, inputs = tiny
    spec = VTokSpec.from_id("vtok-fastv-k2-r50")
    got, kept = pruned_logits(model, inputs, spec)
    eager = AutoModelForImageTextToText.from_pretrained(resolve_model("tiny").source, attn_implementation="eager").eval()
    with torch.inference_mode():
        out = eager(**inputs, output_attentions=True, output_hidden_states=True)
    images = image_positions(inputs["input_ids"], image_token_id(model.config))
    attention = out.attentions[spec.layer - 1][:, :, -1].mean(dim=1)          # the language model's layers
    chosen = images.gather(1, stable_top(attention.gather(1, images), spec.keep_count(images.shape[1])))
    text = torch.ones_like(inputs["input_ids"], dtype=torch.bool).scatter(1, images, False).scatter(1, chosen, True)
    assert kept.tolist() == text.nonzero()[:, 1].reshape(2, -1).tolist()
    decoder = model.get_decoder()
    with torch.inference_mode():
        hidden = out.language_model_outputs.hidden_states[spec.layer] if hasattr(out, "language_model_outputs") \
            else out.hidden_states[spec.layer]
        hidden = hidden.gather(1, kept[..., None].expand(-1, -1, hidden.shape[-1]))
        rotary = decoder.rotary_emb(hidden, kept)
        for layer in decoder.layers[spec.layer:]:
            hidden = layer(hidden, position_embeddings=rotary, position_ids=kept)
        want = model.get_output_embeddings()(decoder.norm(hidden)[:, -1])
    assert torch.allclose(got, want, atol=1e-4)


def assert_decodes_like(model, processor, output, prefill_logits, cache, length: int, steps: int = 3) -> None:
    """``generate``'s answers (``output``) equal greedy steps by hand over ``cache`` (a float cache cut to
    the kept entries) from the prefill's logits, each row up to its first end of sequence."""
    tokens, answer = prefill_logits[:, -1].argmax(-1, keepdim=True), []
    with torch.inference_mode():
        for step in range(steps):
            answer.append(tokens)
            logits = model(input_ids=tokens, cache=cache, position_ids=torch.full_like(tokens, length + step),
                           use_cache=True).logits
            tokens = logits[:, -1].argmax(-1, keepdim=True)
    reference, generated = torch.cat(answer + [tokens], dim=1), output[:, length:]
    for row in range(generated.shape[0]):   # generate pads after the end of sequence
        stop = (generated[row] == processor.tokenizer.eos_token_id).nonzero()
        end = int(stop[0]) + 1 if len(stop) else generated.shape[1]
        assert generated[row, :end].tolist() == reference[row, :end].tolist()


@pytest.mark.parametrize("text", ["evict-snapkv-b40-w4", "evict-h2o-b40-w4", "evict-streaming-b40",
                                  "evict-pyramidkv-b40-w4"])
def test_eviction_keeps_what_eager_attention_says_and_decodes_like_a_cropped_float_cache(tiny, text):
    """Selection: from the eager model's own attention probabilities. Decoding: greedy steps over a
    DynamicCache of the full prefill, cut by hand to those positions, give the same answer."""
    model, processor, inputs = tiny
    spec = EvictSpec.from_id(text)
    cache = QuantizedKVCache(KVQuantSpec(), model.config, eviction=spec)
    with torch.inference_mode(), observing_attention(model, [cache.select], [cache.key_bias]):
        output = model.generate(**inputs, max_new_tokens=4, do_sample=False, cache=cache,
                                pad_token_id=processor.tokenizer.pad_token_id)
    eager = AutoModelForImageTextToText.from_pretrained(resolve_model("tiny").source, attn_implementation="eager").eval()
    reference = DynamicCache(config=model.config)
    with torch.inference_mode():
        out = eager(**inputs, output_attentions=True, use_cache=True, cache=reference)
    length = inputs["input_ids"].shape[1]
    kept = spec.keep_count(length)
    window = min(spec.window, kept)
    for index, (layer, probs) in enumerate(zip(cache.layers, out.attentions)):
        if spec.method == "streaming":
            want = torch.cat([torch.arange(4), torch.arange(length - (kept - 4), length)]).expand(2, 4, -1)
        else:
            rows = probs if spec.method == "h2o" else probs[:, :, -window:]
            scores = rows[..., :length - window].sum(dim=2)   # 4 heads, MHA: no group mean
            scores = scores if spec.method == "h2o" else pool(scores, spec.kernel, "avg")
            count = kept - window if spec.method != "pyramidkv" else [4, 3, 2, 1][index]   # B=2: 4 down by 1
            want = torch.cat([stable_top(scores, count), torch.arange(length - window, length).expand(2, 4, -1)], -1)
        assert layer.kept_positions.tolist() == want.tolist(), (text, index)
        kv = reference.layers[index]
        gather = want[..., None].expand(-1, -1, -1, kv.keys.shape[-1])
        kv.keys, kv.values = kv.keys.gather(2, gather), kv.values.gather(2, gather)
    assert_decodes_like(model, processor, output, out.logits, reference, length)


def test_pruning_on_qwen2_vl_keeps_each_token_s_multimodal_rope_positions():
    """Qwen2-VL's positions are [3, b, L] (temporal, height, width of each image token): the pruned
    prefill equals the decoder run on the kept embeddings with those three planes gathered."""
    ref = resolve_model("tiny-qwen")
    model = AutoModelForImageTextToText.from_pretrained(ref.source).eval()
    processor = load_processor(ref.source, model_family(ref))
    images = [Image.new("RGB", (48, 48), c) for c in ((200, 10, 10), (10, 200, 10))]
    inputs = model_inputs(processor, images, [render_prompt(processor, "What color is the shape?", True)] * 2,
                          "cpu", None)
    for text in ("vtok-random-r50", "vtok-pool2"):
        got, kept = pruned_logits(model, inputs, VTokSpec.from_id(text))
        embeds, positions = decoder_inputs(model, inputs)
        assert positions.dim() == 3 and positions.shape[0] >= 3   # the multimodal planes
        embeds = embeds.clone()
        if text == "vtok-pool2":
            images_at = image_positions(inputs["input_ids"], image_token_id(model.config)).tolist()
            for row, at in enumerate(images_at):
                for block in pool_blocks(len(at), 2):
                    embeds[row, at[block[0]]] = embeds[row, [at[i] for i in block]].mean(dim=0)
        assert torch.allclose(got, last_logits(model, *kept_rows(embeds, positions, kept)), atol=1e-4), text


def test_visionzip_equals_merging_the_eager_tower_s_choice_by_hand(tiny):
    """Reference from the eager CLIP tower's own attentions: the CLS row of the layer producing the selected
    features picks the dominant patches, the rest merge into the contextual targets (keys of that layer,
    mean over heads), the projector maps them, and the decoder runs on the kept tokens."""
    model, _, inputs = tiny
    spec = VTokSpec.from_id("vtok-visionzip-r50")
    got, kept = pruned_logits(model, inputs, spec)
    eager = AutoModelForImageTextToText.from_pretrained(resolve_model("tiny").source, attn_implementation="eager").eval()
    tower = eager.model.vision_tower
    layer = eager.config.vision_feature_layer % (len(tower.encoder.layers) + 1)   # hidden_states index
    with torch.inference_mode():
        out = tower(inputs["pixel_values"], output_attentions=True, output_hidden_states=True)
        cls = out.attentions[layer - 1][:, :, 0, 1:].sum(dim=1)
        attention = tower.encoder.layers[layer - 1].self_attn
        normed = tower.encoder.layers[layer - 1].layer_norm1(out.hidden_states[layer - 1])
        keys = attention.k_proj(normed).view(*normed.shape[:2], attention.num_heads, -1).mean(dim=2)[:, 1:]
        features = out.hidden_states[layer][:, 1:].clone()
        dominant, contextual = spec.visionzip_split(features.shape[1])
        chosen = []
        for image in range(features.shape[0]):
            top, groups = visionzip_choice(cls[image], keys[image], dominant, contextual)
            merged = features[image].clone()
            for target, group in groups:
                merged[target] = features[image, target] + features[image, group].mean(dim=0)
            features[image] = merged
            chosen.append(sorted(top.tolist() + [t for t, _ in groups]))
        image_features = eager.model.multi_modal_projector(features)
        embeds = eager.get_input_embeddings()(inputs["input_ids"]).clone()
        at = image_positions(inputs["input_ids"], image_token_id(model.config))
        embeds[torch.arange(2)[:, None], at] = image_features
    assert kept.tolist() == [sorted(set(range(16)) - set(at[r].tolist()) | set(at[r, chosen[r]].tolist()))
                             for r in range(2)]
    want = last_logits(model, *kept_rows(embeds, torch.arange(16)[None].expand(2, -1), kept))
    assert torch.allclose(got, want, atol=1e-4)


def test_adakv_keeps_what_eager_attention_says_and_with_equal_heads_decodes_like_a_cropped_cache(tiny):
    """AdaKV's choice from the eager model's own window attention (max-pooled, heads competing); with the
    floor at 100% every head keeps the same count, so a float DynamicCache cut by hand is the reference."""
    model, processor, inputs = tiny
    eager = AutoModelForImageTextToText.from_pretrained(resolve_model("tiny").source, attn_implementation="eager").eval()
    reference = DynamicCache(config=model.config)
    with torch.inference_mode():
        out = eager(**inputs, output_attentions=True, use_cache=True, cache=reference)
    length = inputs["input_ids"].shape[1]
    for text in ("evict-adakv-b40-w4", "evict-adakv-b40-w4-a100"):
        spec = EvictSpec.from_id(text)
        cache = QuantizedKVCache(KVQuantSpec(), model.config, eviction=spec)
        with torch.inference_mode(), observing_attention(model, [cache.select], [cache.key_bias]):
            output = model.generate(**inputs, max_new_tokens=4, do_sample=False, cache=cache,
                                    pad_token_id=processor.tokenizer.pad_token_id)
        for layer, probs in zip(cache.layers, out.attentions):
            scores = pool(probs[:, :, -4:, :length - 4].sum(dim=2), spec.kernel, "max")
            budgets = adakv_budgets(scores, spec.keep_count(length) - 4, spec.alpha)
            for row in range(2):
                for head in range(4):
                    real = layer.key_valid[row, head]
                    top = sorted(torch.sort(scores[row, head], descending=True, stable=True).indices[
                        :budgets[row][head]].tolist())
                    assert layer.kept_positions[row, head][real].tolist() == top + list(range(length - 4, length))
        if spec.alpha == 100:   # every head keeps 2 + the window: crop a float cache by hand and decode
            crop = DynamicCache(config=model.config)
            for index, layer in enumerate(cache.layers):
                source = reference.layers[index]
                gather = layer.kept_positions[..., None].expand(-1, -1, -1, source.keys.shape[-1])
                crop.update(source.keys.gather(2, gather), source.values.gather(2, gather), index)
            assert_decodes_like(model, processor, output, out.logits, crop, length)


def test_eviction_and_pruning_run_through_the_generation_path_on_qwen2_vl_with_m_rope():
    ref = resolve_model("tiny-qwen")
    model = AutoModelForImageTextToText.from_pretrained(ref.source).eval()
    processor = load_processor(ref.source, model_family(ref))
    images = [Image.new("RGB", (48, 48), (200, 10, 10))] * 2
    prompts = [render_prompt(processor, "What color is the shape?", True)] * 2
    for evict, vtok in ((EvictSpec.from_id("evict-snapkv-b40-w4"), None), (None, VTokSpec.from_id("vtok-fastv-k2-r50")),
                        (None, VTokSpec.from_id("vtok-pool2")),
                        (EvictSpec.from_id("evict-h2o-b40-w4"), VTokSpec.from_id("vtok-random-r50"))):
        answers = generate_batch(model, processor, images, prompts, KVQuantSpec.from_id("kv4-uniform"), 4,
                                 evict=evict, vtok=vtok)
        assert answers[0] == answers[1] and answers[0].kv_bytes < 0.2 * answers[0].kv_float_bytes   # kv4: < 1/4


def test_pooling_is_refused_for_a_layout_without_a_square_grid():
    ref = resolve_model("tiny-next")
    model = AutoModelForImageTextToText.from_pretrained(ref.source).eval()
    processor = load_processor(ref.source, model_family(ref))
    image = Image.new("RGB", (64, 48), (200, 10, 10))
    with pytest.raises(ValueError, match="vtok-pool2: an image gives .* tokens, not a square grid"):
        generate_batch(model, processor, [image], [render_prompt(processor, "What color?", True)], KVQuantSpec(), 2,
                       vtok=VTokSpec.from_id("vtok-pool2"))
    answers = generate_batch(model, processor, [image], [render_prompt(processor, "What color?", True)], KVQuantSpec(),
                             2, vtok=VTokSpec.from_id("vtok-fastv-k2-r50"))   # anyres tiles: FastV applies
    assert answers[0].kv_bytes < answers[0].kv_float_bytes


def test_visionzip_is_refused_outside_llava():
    ref = resolve_model("tiny-qwen")
    model = AutoModelForImageTextToText.from_pretrained(ref.source).eval()
    processor = load_processor(ref.source, model_family(ref))
    with pytest.raises(ValueError, match="VisionZip needs a LLaVA model"):
        generate_batch(model, processor, [Image.new("RGB", (48, 48))], [render_prompt(processor, "What?", True)],
                       KVQuantSpec(), 2, vtok=VTokSpec.from_id("vtok-visionzip-r50"))


def test_eviction_under_eager_attention_is_refused_with_the_reason(tiny):
    _, processor, inputs = tiny
    eager = AutoModelForImageTextToText.from_pretrained(resolve_model("tiny").source, attn_implementation="eager").eval()
    with pytest.raises(ValueError, match="this model runs attn_implementation='eager'"):
        generate_batch(eager, processor, [Image.new("RGB", (48, 48))],
                       [render_prompt(processor, "What color is the shape?", True)], KVQuantSpec(), 2,
                       evict=EvictSpec.from_id("evict-snapkv-b40"))


def test_the_pruner_leaves_text_only_prompts_alone(tiny):
    model, processor, _ = tiny
    prompt = render_prompt(processor, "Is the sky blue?", False)
    plain = generate_batch(model, processor, [None], [prompt], KVQuantSpec(), 3)
    pruned = generate_batch(model, processor, [None], [prompt], KVQuantSpec(), 3, vtok=VTokSpec.from_id("vtok-pool2"))
    assert pruned == plain
    assert isinstance(VisualTokenPruner(VTokSpec.from_id("vtok-pool2"), torch.tensor([[4] * 9 + [1]]), 4).kept,
                      torch.Tensor)


def test_settings_that_cannot_drop_tokens_on_a_model_say_why_before_any_test_runs():
    from pytest_lvlmbench.core.settings import Setting
    from pytest_lvlmbench.engine.fit import TextShape, unfit_reason

    llava = TextShape(4, 32, (128, 256), "llava")
    assert unfit_reason(Setting.from_id("vtok-fastv-k2-r50"), llava) is None
    assert unfit_reason(Setting.from_id("vtok-fastv-k4-r50"), llava).startswith(
        "vtok-fastv-k4-r50: FastV prunes from layer K=4 on, and the model has 4 decoder layers; use k1..k3")
    assert "anyres layout" in unfit_reason(Setting.from_id("vtok-pool2"), TextShape(4, 32, (128,), "llava_next"))
    assert "VisionZip reads the CLS attention" in unfit_reason(Setting.from_id("vtok-visionzip-r50"),
                                                               TextShape(4, 32, (128,), "qwen2_vl"))
    gemma = TextShape(4, 32, (128,), "gemma3", windowed=True)
    assert "sliding-window layers" in unfit_reason(Setting.from_id("evict-snapkv-b40"), gemma)
    assert unfit_reason(Setting.from_id("kv4-uniform"), gemma) is None


def test_adakv_s_pad_slots_get_no_attention_at_decode(tiny):
    """The decode attention (through the scored attention) over an AdaKV layer equals a softmax over each
    head's real entries alone: the pad slots, which repeat a kept entry, get zero weight."""
    from quant.scored_attention import scored_attention

    model = tiny[0]
    torch.manual_seed(5)
    config = model.config.get_text_config()
    heads, kv_heads, dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    cache = QuantizedKVCache(KVQuantSpec(), model.config, eviction=EvictSpec.from_id("evict-adakv-b40-w4-a0"))
    query, key = torch.randn(2, heads, 24, dim), torch.randn(2, kv_heads, 24, dim)
    cache.update(key, key.clone(), 0)
    cache.select(0, query, key, dim ** -0.5)
    valid = cache.layers[0].key_valid
    assert not bool(valid.all())   # some head keeps fewer entries than the widest
    new = torch.randn(2, kv_heads, 1, dim)
    keys, values = cache.update(new, new.clone(), 0)
    step = torch.randn(2, heads, 1, dim)
    with observing_attention(model, [cache.select], [cache.key_bias]):
        got, _ = scored_attention(model.get_decoder().layers[0].self_attn, step, keys, values, None,
                                  scaling=dim ** -0.5)
    real = torch.cat([valid, torch.ones(2, kv_heads, 1, dtype=torch.bool)], dim=-1)
    logits = (step @ keys.transpose(-1, -2) * dim ** -0.5).masked_fill(~real[:, :, None, :], float("-inf"))
    want = (logits.softmax(dim=-1) @ values).transpose(1, 2)
    assert torch.allclose(got, want, atol=1e-5)
