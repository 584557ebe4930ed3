"""benchmarks/perf/gpu_check.py's comparison of two suite runs, on hand-written JSON reports: the
share of identical answers per setting, when two runs must agree exactly, and the roofline row."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "perf" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module   # dataclasses resolve the module's annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_check"]


def report(device: str, dtype: str, kernels: str, answers: dict[str, list[str]], roofline=None) -> dict:
    """A JSON report as --lvlm-report-answers yes writes it: setting -> the answers of items 0, 1, ..."""
    return {"machine": {"device": device, "dtype": dtype, "quant_kernels": kernels},
            "records": [{"model": "tiny", "setting": setting, "task": "shapes_vqa", "roofline": roofline,
                         "answers": [{"id": f"q{i}", "prompt": "p", "answer": a} for i, a in enumerate(given)]}
                        for setting, given in answers.items()]}


def test_agreement_counts_identical_answers_per_setting(gpu_check):
    a = report("cpu", "float32", "torch", {"fp16": ["yes", "no", "red"], "kv4-uniform": ["yes", "no", "red"]})
    b = report("cpu", "float32", "torch", {"fp16": ["yes", "no", "blue"], "kv4-uniform": ["yes", "no"]})
    assert gpu_check.agreement(a, b) == {("tiny", "fp16"): (2, 3), ("tiny", "kv4-uniform"): (2, 2)}


def test_a_report_without_answers_is_refused(gpu_check):
    bare = report("cpu", "float32", "torch", {"fp16": ["yes"]})
    del bare["records"][0]["answers"]
    with pytest.raises(ValueError, match="--lvlm-report-answers yes"):
        gpu_check.agreement(bare, bare)


def test_same_arithmetic_must_agree_exactly_and_a_difference_fails(gpu_check):
    kernels = report("cuda", "float16", "triton", {"fp16": ["yes", "no"], "w2-rtn": ["a", "b"],
                                                   "kv4-uniform": ["yes", "no"]})
    torch_path = report("cuda", "float16", "torch", {"fp16": ["yes", "yes"], "w2-rtn": ["a", "b"],
                                                     "kv4-uniform": ["yes", "yes"]})
    rows = {row[0].split()[-1]: row for row in gpu_check.agreement_rows("kernels vs torch", kernels, torch_path, "")}
    assert rows["fp16"][1:] == ["identical (same arithmetic)", "1/2 identical (50%)", "FAIL"]
    assert rows["w2-rtn"][3] == "pass"     # 2-bit weights stay on the torch path
    assert rows["kv4-uniform"][1] == "may differ" and rows["kv4-uniform"][3].startswith("expected: triton vs torch")
    assert gpu_check.failed(list(rows.values()))


def test_fp16_against_float32_is_an_expected_difference(gpu_check):
    cuda = report("cuda", "float16", "triton", {"fp16": ["yes", "no"]})
    cpu = report("cpu", "float32", "torch", {"fp16": ["no", "no"]})
    [row] = gpu_check.agreement_rows("cuda vs cpu", cuda, cpu, "")
    assert row[2:] == ["1/2 identical (50%)", "expected: float16 vs float32"]
    assert not gpu_check.failed([row])
    # the same path on the same device in the same dtype must agree, whatever the setting
    [same] = gpu_check.agreement_rows("cpu vs cpu", cpu, report("cpu", "float32", "torch", {"fp16": ["no", "yes"]}), "")
    assert same[1] == "identical (same arithmetic)" and same[3] == "FAIL"


def test_a_missing_report_is_not_measured(gpu_check):
    [row] = gpu_check.agreement_rows("cuda vs cpu", None, report("cpu", "float32", "torch", {}), "timed out")
    assert row[3] == "not measured (timed out)" and not gpu_check.failed([row])


def test_the_roofline_row_fails_on_a_flagged_record(gpu_check):
    line = {"flagged": False, "share_of_copy": 0.2, "copy_gbps": 100.0}
    ok = gpu_check.roofline_row("cpu", report("cpu", "float32", "torch", {"fp16": ["a"]}, roofline=line))
    assert ok[2:] == ["0/1 flagged; share of 100 GB/s copy: median 20.0%, max 20.0%", "pass"]
    fast = gpu_check.roofline_row("cpu", report("cpu", "float32", "torch", {"fp16": ["a"]},
                                                roofline={**line, "flagged": True, "share_of_copy": 1.5}))
    assert fast[3] == "FAIL" and gpu_check.failed([fast])
    cached = gpu_check.roofline_row("cpu", report("cpu", "float32", "torch", {"fp16": ["a"]}))
    assert cached[3] == "not measured"
