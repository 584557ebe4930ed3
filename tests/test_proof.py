"""Proof that the compression happened (pytest_lvlmbench/analysis/proof.py, quant.weights.expected_linear_bytes)."""

import pytest
import torch
from torch import nn

from pytest_lvlmbench.analysis.proof import compression_failures, compression_notes
from pytest_lvlmbench.core.records import Record
from quant import WeightQuantSpec, quantize_model
from tiny_models import llama_config


@pytest.mark.parametrize("spec_id", ["w8-rtn", "w4-group-g32", "w3-group-g64-sym", "w3-outlier-s2-g32",
                                     "w2-outlier-s1-g32-matrix", "w4-awq-g32", "w4-gptq-g32-actorder",
                                     "w4-gptq-g32-actorder-static"])
def test_every_method_stores_exactly_its_closed_form(spec_id):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(llama_config()).eval()
    spec = WeightQuantSpec.from_id(spec_id)
    calibration = [torch.randint(0, 128, (2, 16))] if spec.needs_calibration else None
    summary = quantize_model(model, spec, calibration=calibration)
    assert summary.layers and summary.bytes_after == summary.bytes_expected


def record(setting, predictions, kv_ratio=None, weight_bytes=0, expected=0, ratio=None, task="shapes_vqa"):
    return Record("tiny", setting, task, "recognition", "accuracy", {"accuracy": 1.0}, predictions=predictions,
                  samples=len(predictions), kv_ratio=kv_ratio, weight_bytes=weight_bytes,
                  weight_bytes_expected=expected, weight_ratio=ratio)


def test_weight_bytes_off_the_closed_form_fail_the_test():
    assert compression_failures(record("w4-group-g128", ["a"], weight_bytes=1005, expected=1000)) == []
    [message] = compression_failures(record("w4-group-g128", ["a"], weight_bytes=4000, expected=1000))
    assert "stores 4000 bytes" in message and "closed form is 1000 (+300.0%)" in message
    assert compression_failures(record("w4-group-g128", ["a"])) == []   # nothing measured: nothing to check


def test_unchanged_answers_and_idle_kv_settings_are_reported_per_setting():
    records = [record("fp16", ["a", "b"], 1.0), record("fp16", ["c"], 1.0, task="shapes_gqa"),
               record("kv8-uniform", ["a", "b"], 0.25), record("kv8-uniform", ["c"], 0.25, task="shapes_gqa"),
               record("kv2-group-g32-r128", ["a", "x"], 1.0), record("w4-rtn", ["a", "b"], 1.0, 10, 10, 0.14)]
    notes = compression_notes(records)
    assert notes == [
        "kv2-group-g32-r128: compresses nothing here by design on shapes_vqa (KV bytes / float >= 0.999: "
        "every token stayed in the full-precision window)",
        "kv8-uniform: every answer equals fp16's on all 2 tasks; compression applied: KV bytes / float 0.250",
        "w4-rtn: every answer equals fp16's on shapes_vqa; compression applied: weight bytes / float 0.140"]


def test_a_run_of_one_task_names_it_instead_of_all_but_nothing():
    records = [record("fp16", ["a"], 1.0), record("kv8-uniform", ["a"], 0.25)]
    assert compression_notes(records) == [
        "kv8-uniform: every answer equals fp16's on shapes_vqa; compression applied: KV bytes / float 0.250"]
