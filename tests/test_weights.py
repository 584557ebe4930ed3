import pytest
import torch
from torch import nn

from quant import QuantizedLinear, WeightQuantSpec, nbytes, quantize_model
from quant.weights import awq_input_scale, fake_quantize_weight
from tiny_models import llama_config


def output_mse(linear: nn.Linear, quantized: QuantizedLinear, x: torch.Tensor) -> float:
    with torch.no_grad():
        return (quantized(x) - linear(x)).pow(2).mean().item()


def salient_inputs(rows: int, features: int, seed: int) -> torch.Tensor:
    """Activations where 1% of input channels are ~20x larger, as in LLMs (AWQ Fig. 2)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=gen)
    x[:, :: features // 8] *= 20.0
    return x


@pytest.mark.parametrize("method", ["rtn", "group"])
@pytest.mark.parametrize("kind", ["gaussian", "heavy_tailed"])
def test_weight_error_falls_monotonically_with_bits(method, kind):
    torch.manual_seed(0)
    w = torch.randn(256, 512) if kind == "gaussian" else torch.distributions.StudentT(2.0).sample((256, 512))
    errors = [(fake_quantize_weight(w, WeightQuantSpec(method, bits)) - w).pow(2).mean().item()
              for bits in (2, 3, 4, 8)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors


def test_group_beats_per_channel_when_a_few_input_channels_are_outliers():
    torch.manual_seed(0)
    w = torch.randn(256, 512) * 0.02
    w[:, [7, 300]] *= 50.0  # two outlier input channels stretch every row's range
    rtn = (fake_quantize_weight(w, WeightQuantSpec("rtn", 4)) - w).pow(2).mean().item()
    group = (fake_quantize_weight(w, WeightQuantSpec("group", 4, group_size=64)) - w).pow(2).mean().item()
    assert group < 0.5 * rtn, (group, rtn)


@pytest.mark.parametrize("bits", [3, 4])
def test_awq_beats_rtn_and_group_on_held_out_output_mse_with_salient_channels(bits):
    torch.manual_seed(0)
    linear = nn.Linear(512, 256)
    calibration, held_out = salient_inputs(2048, 512, seed=1), salient_inputs(1024, 512, seed=2)
    mse = {}
    for method in ("rtn", "group", "awq"):
        spec = WeightQuantSpec(method, bits)
        layer = QuantizedLinear.from_linear(linear, spec, calibration if method == "awq" else None)
        mse[method] = output_mse(linear, layer, held_out)
    assert mse["awq"] < mse["group"] < mse["rtn"], mse
    assert mse["awq"] < 0.8 * mse["group"], mse


def test_awq_keeps_the_float_output_before_quantization_and_picks_a_nonzero_alpha():
    torch.manual_seed(0)
    w = torch.randn(64, 256)
    x = salient_inputs(512, 256, seed=3)
    s, alpha = awq_input_scale(w, x, WeightQuantSpec("awq", 3))
    assert alpha > 0
    torch.testing.assert_close((x / s) @ (w * s).T, x @ w.T, rtol=1e-4, atol=1e-3)


def test_quantized_linear_stores_packed_codes_and_no_float_weight():
    linear = nn.Linear(256, 64).half()
    layer = QuantizedLinear.from_linear(linear, WeightQuantSpec("group", 4, group_size=128))
    assert not any(t.dtype.is_floating_point and t.numel() >= 256 * 64 // 8 for t in layer.state_dict().values())
    assert layer.codes.dtype == torch.uint8 and layer.codes.shape == (64, 128)
    assert nbytes(layer) == 64 * 128 + 2 * (64 * 2 * 2) + 64 * 2  # codes + fp16 scale/zero + bias


def test_state_dict_round_trips():
    torch.manual_seed(0)
    linear = nn.Linear(128, 32)
    spec = WeightQuantSpec("group", 3, group_size=32)
    layer = QuantizedLinear.from_linear(linear, spec)
    clone = QuantizedLinear.from_linear(nn.Linear(128, 32), spec)
    clone.load_state_dict(layer.state_dict())
    x = torch.randn(4, 128)
    assert torch.equal(clone(x), layer(x))


@pytest.mark.parametrize("spec_id, limit", [("w4-group-g128", 0.27), ("w8-rtn", 0.51), ("w2-group-g128", 0.15)])
def test_4096_square_layer_storage_vs_fp16(spec_id, limit):
    linear = nn.Linear(4096, 4096, bias=False).half()
    layer = QuantizedLinear.from_linear(linear, WeightQuantSpec.from_id(spec_id))
    ratio = nbytes(layer) / nbytes(linear)
    assert ratio <= limit, ratio


def tiny_llama(seed: int = 0):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(llama_config()).eval()


def relative_logit_change(spec: WeightQuantSpec, ids: torch.Tensor) -> tuple[float, torch.Tensor]:
    model = tiny_llama()
    with torch.no_grad():
        reference = model(ids).logits
    summary = quantize_model(model, spec, calibration=[ids] if spec.needs_calibration else None)
    assert len(summary.layers) == 2 * 7  # q, k, v, o, gate, up, down per layer; lm_head kept
    assert all(isinstance(model.get_submodule(name), QuantizedLinear) for name in summary.layers)
    assert isinstance(model.lm_head, nn.Linear)
    with torch.no_grad():
        logits = model(ids).logits
    return ((logits - reference).norm() / reference.norm()).item(), model


@pytest.fixture
def prompt():
    return torch.randint(0, 128, (2, 24), generator=torch.Generator().manual_seed(5))


@pytest.mark.parametrize("spec_id", ["w8-rtn", "w8-group-g128", "w8-awq-g128", "w8-gptq-g128",
                                     "w8-outlier-s1-g128", "w8-gptq-g128-actorder"])
def test_quantize_model_at_8_bits_keeps_llama_logits_close(spec_id, prompt):
    change, model = relative_logit_change(WeightQuantSpec.from_id(spec_id), prompt)
    assert change < 0.02, change  # measured 0.0105 (rtn), 0.0104 (group), 0.0087 (awq)
    out = model.generate(prompt, max_new_tokens=5, do_sample=False)
    assert out.shape == (2, 29)


@pytest.mark.parametrize("spec_id", ["w2-rtn", "w2-group-g128", "w2-awq-g128", "w2-gptq-g128",
                                     "w2-outlier-s1-g128-matrix"])
def test_quantize_model_at_2_bits_moves_logits(spec_id, prompt):
    change, _ = relative_logit_change(WeightQuantSpec.from_id(spec_id), prompt)
    assert change > 0.1, change  # measured 0.74 for all three


def test_summary_reports_bytes_before_and_after(prompt):
    model = tiny_llama()
    summary = quantize_model(model, WeightQuantSpec("group", 4, group_size=64))
    assert summary.spec_id == "w4-group-g64"
    assert 0.15 < summary.ratio < 0.2  # fp32 weights: 4/32 codes + fp32 scale/zero per 64
    assert summary.bytes_after == sum(nbytes(model.get_submodule(n)) for n in summary.layers)


def test_llava_vision_tower_and_projector_stay_float_unless_asked(tiny_llava):
    model = tiny_llava()
    summary = quantize_model(model, WeightQuantSpec("rtn", 4))
    assert summary.layers and all(".language_model." in name for name in summary.layers)
    assert not any(isinstance(m, QuantizedLinear) for m in model.model.vision_tower.modules())
    everything = tiny_llava()
    summary = quantize_model(everything, WeightQuantSpec("rtn", 4, targets=("language", "vision", "projector")))
    assert any("vision_tower" in n for n in summary.layers)
    assert any("multi_modal_projector" in n for n in summary.layers)
    ids = torch.tensor([[1] + [63] * 4 + [5, 6]])
    with torch.no_grad():
        out = everything(input_ids=ids, pixel_values=torch.randn(1, 3, 32, 32))
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize("spec_id,parts", [("w4-rtn-vision", {"vision"}), ("w4-rtn-projector", {"projector"}),
                                           ("w8-group-g16-vision-projector", {"vision", "projector"}),
                                           ("w4-rtn-all", {"language", "vision", "projector"})])
def test_weight_targets_quantize_exactly_the_parts_they_name(tiny_llava, spec_id, parts):
    model = tiny_llava()
    located = {"language": model.model.language_model, "vision": model.model.vision_tower,
               "projector": model.model.multi_modal_projector}
    summary = quantize_model(model, WeightQuantSpec.from_id(spec_id))
    for part, module in located.items():
        quantized = [m for m in module.modules() if isinstance(m, QuantizedLinear)]
        floats = [m for m in module.modules() if type(m) is nn.Linear]
        assert (quantized and not floats) if part in parts else (floats and not quantized), part
    assert set(summary.bytes_by_part) == parts
    assert sum(after for _, after in summary.bytes_by_part.values()) == summary.bytes_after
    assert sum(before for before, _ in summary.bytes_by_part.values()) == summary.bytes_before
    for part, (before, after) in summary.bytes_by_part.items():
        layers = [n for n in summary.layers if model.get_submodule(n) in set(located[part].modules())]
        assert after == sum(nbytes(model.get_submodule(n)) for n in layers) and after < before


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 16)


class QwenLike(nn.Module):
    """Qwen2-VL's tree: the projector (``merger``) lives inside the vision tower (``visual``)."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Module()
        self.model.visual = nn.Module()
        self.model.visual.blocks = nn.ModuleList([Block(), Block()])
        self.model.visual.merger = Block()
        self.model.language_model = nn.ModuleList([Block()])
        self.lm_head = nn.Linear(16, 8)

    def get_decoder(self) -> nn.Module:
        return self.model.language_model


def test_a_projector_inside_the_vision_tower_is_the_projectors():
    vision = QwenLike()
    quantize_model(vision, WeightQuantSpec.from_id("w4-rtn-vision"))
    assert [isinstance(b.fc, QuantizedLinear) for b in vision.model.visual.blocks] == [True, True]
    assert type(vision.model.visual.merger.fc) is nn.Linear and type(vision.model.language_model[0].fc) is nn.Linear
    projector = QwenLike()
    summary = quantize_model(projector, WeightQuantSpec.from_id("w4-rtn-projector"))
    assert summary.layers == ["model.visual.merger.fc"]


def test_a_part_without_linear_layers_is_named_not_left_float():
    """Gemma 3's projector multiplies a raw weight: asking to quantize it must not pass silently."""
    model = QwenLike()
    model.model.visual.merger = nn.Module()
    model.model.visual.merger.weight = nn.Parameter(torch.randn(16, 16))
    with pytest.raises(ValueError, match=r"QwenLike: its projector holds no nn.Linear to quantize"):
        quantize_model(model, WeightQuantSpec.from_id("w4-rtn-vision-projector"))


def test_skip_words_that_empty_a_part_are_named_as_the_reason(tiny_llava):
    with pytest.raises(ValueError, match=r"no nn.Linear layer to quantize \(looked in its parts \['vision'\], "
                                         r"skipping names containing \['layers'\]\)"):
        quantize_model(tiny_llava(), WeightQuantSpec.from_id("w4-rtn-vision"), skip=("layers",))


def test_a_layer_selection_needs_the_language_model_among_the_targets(tiny_llava):
    from quant.layers import LayerSelection

    with pytest.raises(ValueError, match=r"layers='0': w4-rtn-vision does not quantize the language model"):
        quantize_model(tiny_llava(), WeightQuantSpec.from_id("w4-rtn-vision"), layers=LayerSelection("0"))


def test_a_part_the_model_does_not_have_is_named():
    with pytest.raises(ValueError, match=r"LlamaForCausalLM: no vision module \(looked for modules named "
                                         r"vision_tower, visual, vision_model\); its weights can take targets "
                                         r"\['language'\]"):
        quantize_model(tiny_llama(), WeightQuantSpec.from_id("w4-rtn-vision"))


def test_decoder_layers_select_the_language_models_layers_and_the_vision_tower_is_taken_whole(tiny_llava):
    from quant.layers import LayerSelection

    model = tiny_llava()
    summary = quantize_model(model, WeightQuantSpec.from_id("w4-rtn-all"), layers=LayerSelection("0"))
    language = [n for n in summary.layers if ".language_model." in n]
    assert language and all(".layers.0." in n for n in language)
    assert all(isinstance(m, QuantizedLinear) for m in model.model.vision_tower.modules() if isinstance(m, nn.Linear))


@pytest.mark.parametrize("method", ["awq", "gptq"])
def test_calibrated_method_without_calibration_is_a_clear_error(method):
    with pytest.raises(ValueError, match=f"{method}.*calibration"):
        quantize_model(tiny_llama(), WeightQuantSpec(method, 4))


def test_group_size_that_does_not_divide_fails_before_any_layer_changes():
    model = tiny_llama()
    with pytest.raises(ValueError, match=r"group_size=96: must divide in_features=128"):
        quantize_model(model, WeightQuantSpec("group", 4, group_size=96))
    assert not any(isinstance(m, QuantizedLinear) for m in model.modules())


def test_fp16_spec_changes_nothing():
    model = tiny_llama()
    assert quantize_model(model, WeightQuantSpec()).layers == []
    assert not any(isinstance(m, QuantizedLinear) for m in model.modules())
