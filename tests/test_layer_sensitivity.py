"""Compressing a subset of decoder layers, and the sweep that ranks layer blocks (quant/layers.py,
pytest_lvlmbench/analysis/sensitivity.py)."""

import pytest
import torch

from pytest_lvlmbench.core.records import Record
from pytest_lvlmbench.analysis.sensitivity import rank_blocks, sensitivity_lines
from pytest_lvlmbench.core.settings import Setting, default_grid, with_layers
from quant import KVQuantSpec, QuantizedLinear, WeightQuantSpec, quantize_model
from quant.kvcache import QuantizedKVCache
from quant.layers import LayerSelection, blocks, layer_index
from tiny_models import llama_config


def test_selections_resolve_against_the_model_depth_and_name_bad_values():
    assert sorted(LayerSelection("0-2,5").layers(8)) == [0, 1, 2, 5]
    assert sorted(LayerSelection("last2").layers(8)) == [6, 7] and sorted(LayerSelection("first3").layers(8)) == [0, 1, 2]
    assert [b.text for b in blocks(5, 2)] == ["0-1", "2-3", "4-4"]
    assert layer_index("model.language_model.layers.12.self_attn.k_proj") == 12 and layer_index("lm_head") is None
    for text, message in [("x", r"'x' is not a layer range; expected '0-7'"), ("3-1", "ends before it starts"),
                          ("first0", "selects no layer")]:
        with pytest.raises(ValueError, match=message):
            LayerSelection(text)
    with pytest.raises(ValueError, match=r"layer 9 is out of range for a 4-layer model \(layers 0-3\)"):
        LayerSelection("0-9").layers(4)
    with pytest.raises(ValueError, match=r"'last6' asks for 6 layers of a 4-layer model"):
        LayerSelection("last6").layers(4)


def test_setting_ids_carry_the_layers_and_round_trip():
    setting = Setting.from_id("w4-rtn@first2+kv2-uniform@1-3")
    assert setting.weight_layers == LayerSelection("first2") and setting.kv_layers == LayerSelection("1-3")
    assert setting.id == "w4-rtn@first2+kv2-uniform@1-3" and setting.whole.id == "w4-rtn+kv2-uniform"
    with pytest.raises(ValueError, match=r"invalid KV layers='0': the KV spec compresses nothing"):
        Setting(kv_layers=LayerSelection("0"))
    swept = with_layers(default_grid()[:3], sweep=2, layer_count=4)
    assert [s.id for s in swept] == ["fp16", "kv8-uniform", "kv8-group-g8-r0", "kv8-uniform@0-1", "kv8-uniform@2-3",
                                     "kv8-group-g8-r0@0-1", "kv8-group-g8-r0@2-3"]


def test_only_the_selected_layers_are_compressed():
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(num_hidden_layers=4)).eval()
    cache = QuantizedKVCache(KVQuantSpec.from_id("kv2-uniform"), model.config, LayerSelection("1,3"))
    assert [layer.spec.is_float for layer in cache.layers] == [True, False, True, False]
    quantize_model(model, WeightQuantSpec.from_id("w4-rtn"), layers=LayerSelection("last1"))
    quantized = {name for name, module in model.named_modules() if isinstance(module, QuantizedLinear)}
    assert quantized and all(layer_index(name) == 3 for name in quantized)


def test_a_sweep_finds_the_layer_planted_to_matter():
    """Only layer 2's attention reaches the output (the other layers' output projections are
    zeroed): the sweep must rank block 2-2 first, and the other blocks must change nothing."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(num_hidden_layers=4)).eval()
    with torch.no_grad():
        for i in (0, 1, 3):
            model.model.layers[i].self_attn.o_proj.weight.zero_()
    ids = torch.randint(3, 128, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(ids).logits
        change = {}
        for block in blocks(4, 1):
            cache = QuantizedKVCache(KVQuantSpec.from_id("kv2-uniform"), model.config, block)
            change[block.text] = (model(ids, cache=cache).logits - reference).norm().item()
    assert max(change, key=change.get) == "2-2" and change["2-2"] > 0.1, change
    assert all(v == 0 for k, v in change.items() if k != "2-2"), change


def record(setting, value, task="shapes_gqa"):
    return Record("tiny", setting, task, "visual_reasoning", "accuracy", {"accuracy": value}, predictions=[])


def test_blocks_are_ranked_worst_first_with_the_whole_model_drop():
    records = [record("fp16", 1.0), record("kv2-uniform", 0.75), record("kv2-uniform@0-1", 0.84),
               record("kv2-uniform@2-3", 0.99)]
    assert rank_blocks(records) == {("kv2-uniform", "shapes_gqa"): [("0-1", pytest.approx(0.16)),
                                                                     ("2-3", pytest.approx(0.01))]}
    [line] = sensitivity_lines(records)
    assert line == "  kv2-uniform shapes_gqa (accuracy drop, all layers +0.250): layers 0-1 +0.160, layers 2-3 +0.010"


def test_the_sweep_runs_through_the_plugin_and_bad_layers_are_usage_errors(pytester):
    pytester.makepyfile(test_visual_reasoning="from pytest_lvlmbench.suite import capability_test\n"
                                              "test_visual_reasoning = capability_test('visual_reasoning')\n")
    common = ("-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "cache"), "--lvlm-limit", "6",
              "--kv-bits", "2", "--kv-method", "uniform", "-k", "shapes_gqa")
    result = pytester.runpytest_subprocess(*common, "--lvlm-layer-sweep", "2", "--lvlm-report", "r.json")
    result.assert_outcomes(passed=4)   # fp16, kv2-uniform, kv2-uniform@0-1, kv2-uniform@2-3 (tiny: 4 layers)
    result.stdout.fnmatch_lines(["*layer sensitivity*",
                                 "*kv2-uniform shapes_gqa (accuracy drop, all layers *): layers *-*, layers *-*"])
    import json

    [entry] = json.loads((pytester.path / "r.json").read_text())["layer_sensitivity"]
    assert entry["setting"] == "kv2-uniform" and {b["layers"] for b in entry["blocks"]} == {"0-1", "2-3"}
    bad = pytester.runpytest_subprocess(*common, "--kv-layers", "0-9")
    assert bad.ret == 4 and "kv2-uniform@0-9 on model 'tiny': layers='0-9': layer 9 is out of range for a 4-layer " \
        "model" in bad.stderr.str()   # a usage error before any test
    typo = pytester.runpytest_subprocess(*common, "--kv-layers", "top3")
    assert typo.ret != 0 and "--kv-layers 'top3': invalid layers='top3'" in typo.stderr.str()


def test_mixed_precision_ids_round_trip_and_reach_cache_and_weights():
    from transformers import LlamaForCausalLM

    setting = Setting.from_id("w2-rtn@first2+w4-rtn+kv2-uniform@1,3+kv4-uniform")
    assert setting.id == "w2-rtn@first2+w4-rtn+kv2-uniform@1,3+kv4-uniform" and setting.bits == 2
    assert Setting.from_id(setting.id) == setting and setting.kv_rest == KVQuantSpec.from_id("kv4-uniform")
    for bad, message in [("kv2-uniform+kv4-uniform", "at most one kv spec with @layers and one without"),
                         ("kv2-uniform@0+kv4-uniform@1", "at most one kv spec")]:
        with pytest.raises(ValueError, match=message):
            Setting.from_id(bad)
    with pytest.raises(ValueError, match=r"it needs a layer selection for the first spec"):
        Setting(kv=KVQuantSpec.from_id("kv2-uniform"), kv_rest=KVQuantSpec.from_id("kv4-uniform"))
    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config(num_hidden_layers=4)).eval()
    cache = QuantizedKVCache(setting.kv, model.config, setting.kv_layers, setting.kv_rest)
    assert [layer.spec.id for layer in cache.layers] == ["kv4-uniform", "kv2-uniform", "kv4-uniform", "kv2-uniform"]
    summary = quantize_model(model, setting.weights, layers=setting.weight_layers, rest=setting.weights_rest)
    assert summary.spec_id == setting.weights_id and len(summary.layers) == 4 * 7
    bits = {layer_index(name): module.spec.bits for name, module in model.named_modules()
            if isinstance(module, QuantizedLinear)}
    assert bits == {0: 2, 1: 2, 2: 4, 3: 4}
    assert LayerSelection("0-3").others(4) is None and LayerSelection("1").others(4) == LayerSelection("0,2,3")


def test_a_combined_setting_splits_into_its_own_parts_layers_included():
    setting = Setting.from_id("w2-rtn@first2+w4-rtn+kv2-uniform@1")
    assert setting.weights_part.id == "w2-rtn@first2+w4-rtn" and setting.kv_part.id == "kv2-uniform@1"


def test_weight_targets_move_every_weight_setting_and_leave_kv_settings_alone():
    from pytest_lvlmbench.core.settings import with_weight_targets

    grid = default_grid()
    moved = with_weight_targets(grid, "projector, vision")
    assert [s.kv for s in moved] == [s.kv for s in grid]
    assert {s.weights.targets for s in moved if not s.weights.is_float} == {("vision", "projector")}
    assert "w4-group-g128-vision-projector" in [s.id for s in moved]
    assert Setting.from_id("w4-rtn-all@0-1+kv2-uniform").weights.targets == ("language", "vision", "projector")
    assert with_weight_targets(grid, None) is grid
    with pytest.raises(ValueError, match=r"--weight-targets 'eyes': invalid targets=\('eyes',\)"):
        with_weight_targets(grid, "eyes")
    with pytest.raises(ValueError, match=r"invalid weight layers='0-1' for w4-rtn-vision: a layer selection picks "
                                         r"decoder layers of the language model"):
        Setting.from_id("w4-rtn-vision@0-1")
    with pytest.raises(ValueError, match=r"\(w4-rtn\): it must quantize the same parts as w2-rtn-all"):
        Setting.from_id("w2-rtn-all@0+w4-rtn")
    vision = with_weight_targets(grid[:1] + grid[-4:-2], "vision")   # fp16 and two weight settings
    swept = with_layers(vision, sweep=2, layer_count=4)   # the vision tower has no decoder layers to sweep
    assert [s.id for s in swept] == [s.id for s in vision]
    assert with_layers(vision, weight_layers="0-1") == vision
