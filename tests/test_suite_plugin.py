"""The plugin end to end with pytester on the embedded tiny model (few samples)."""

import json

import pytest

HALLUCINATION = ("from pytest_lvlmbench.suite import capability_test\n"
                 "test_hallucination = capability_test('hallucination')\n")


def run(pytester, *args):
    pytester.makepyfile(test_hallucination=HALLUCINATION)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "cache"),
                                         *args)


def test_ids_name_model_setting_and_dataset(pytester):
    result = run(pytester, "--collect-only", "-q", "--kv-bits", "4", "--kv-method", "group")
    result.stdout.fnmatch_lines(["*test_hallucination[[]tiny-fp16-pope_random[]]",
                                 "*test_hallucination[[]tiny-kv4-group-g32-r128-pope_adversarial[]]"])


def test_default_grid_is_fp16_plus_kv_and_weight_grids(pytester):
    result = run(pytester, "--collect-only", "-q")
    ids = [line for line in result.stdout.lines if "test_hallucination[" in line]
    settings = {line.split("[tiny-")[1].rsplit("-pope_", 1)[0] for line in ids}
    assert len(settings) == 1 + 9 + 6 and "fp16" in settings and "w4-awq-g128" in settings


@pytest.mark.parametrize("args, message", [
    (["--model", "llama99"], "unknown model alias 'llama99': known aliases are*tiny*"),
    (["--kv-bits", "5"], "*invalid bits=5: allowed bits are (2, 3, 4, 8, 16)*"),
    (["--kv-method", "kivi", "--kv-bits", "2"], "*invalid method='kivi': allowed methods are*"),
    (["--model", "./missing-dir/model"], "*local path*does not exist*"),
    (["--lvlm-device", "cuda"], "*CUDA is not available*"),
])
def test_bad_options_are_usage_errors(pytester, args, message):
    result = run(pytester, "--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])


def test_non_llava_directory_is_rejected(pytester):
    (pytester.path / "gpt").mkdir()
    (pytester.path / "gpt" / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    result = run(pytester, "--collect-only", "--model", str(pytester.path / "gpt"))
    result.stderr.fnmatch_lines(["*not LLaVA-family*"])


def test_run_prints_the_table_writes_json_and_resumes_from_the_cache(pytester):
    report = pytester.path / "report.json"
    args = ["-k", "pope_random", "--kv-bits", "2", "--kv-method", "uniform", "--lvlm-limit", "12",
            "--lvlm-report", str(report)]
    first = run(pytester, *args)
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["*lvlmbench degradation report*", "*hallucination*pope_random*accuracy*"])
    data = json.loads(report.read_text())
    records = {(r["setting"], r["task"]): r for r in data["records"]}
    assert set(records) == {("fp16", "pope_random"), ("kv2-uniform", "pope_random")}  # the baseline ran once
    assert all(r["generated"] == 12 and r["samples"] == 12 for r in records.values())
    accuracy = records[("kv2-uniform", "pope_random")]["metrics"]["accuracy"]
    assert f"{accuracy:.3f}" in first.stdout.str()
    second = run(pytester, *args)
    second.assert_outcomes(passed=2)
    again = {(r["setting"], r["task"]): r for r in json.loads(report.read_text())["records"]}
    assert all(r["generated"] == 0 for r in again.values())  # everything came from the cache
    assert {k: r["metrics"] for k, r in again.items()} == {k: r["metrics"] for k, r in records.items()}


def test_ini_keys_set_the_grid(pytester):
    pytester.makeini("[pytest]\nlvlm_kv_bits = 8\nlvlm_kv_method = outlier\n")
    result = run(pytester, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*tiny-kv8-outlier-s2-pope_random*"])
