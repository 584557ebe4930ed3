"""The bad-input catalogue: every case a clear error naming the bad value, what is allowed and the fix
(docs/reliability.md lists them all with what the user sees)."""

import json
import shutil
import time

import pytest

from pytest_lvlmbench.engine.models import MODELS_DIR, check_hub_model, resolve_model
from pytest_lvlmbench.options import options_from, raw_values


def values(**overrides):
    return raw_values(lambda name: overrides.get(name), lambda ini: None)


@pytest.fixture
def checkpoint(tmp_path):
    """A copy of the shipped tiny checkpoint that a test may break."""
    directory = tmp_path / "ckpt"
    shutil.copytree(MODELS_DIR / "tiny", directory)
    return directory


def break_config(directory, text):
    (directory / "config.json").write_text(text)


@pytest.mark.parametrize("damage, message", [
    (lambda d: break_config(d, "{not json"), r"config.json is not valid JSON .*re-download the model or fix"),
    (lambda d: break_config(d, "[1, 2]"), r"config.json holds list, not a JSON object"),
    (lambda d: (d / "model.safetensors").unlink(), r"has no \*.safetensors weights"),
    (lambda d: (d / "model.safetensors").rename(d / "pytorch_model.bin"),
     r"only pickle weights \(pytorch_model.bin\), which are never loaded .*convert them to safetensors"),
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:100_000]),
     r"model.safetensors is truncated: 100000 bytes, its header promises \d+; re-download it"),
    (lambda d: (d / "model.safetensors").write_bytes(b"\x04\x00\x00\x00\x00\x00\x00\x00{{{{" + b"\x00" * 64),
     r"model.safetensors has a corrupt safetensors header"),
    (lambda d: (d / "model.safetensors").write_bytes(b"\x01\x02"), r"is not a complete safetensors file \(2 bytes"),
    (lambda d: break_config(d, json.dumps({**json.loads((d / "config.json").read_text()),
                                           "auto_map": {"AutoModel": "evil.Model"}})),
     r"asks for remote code \(auto_map\); lvlmbench never runs a checkpoint's own code"),
    (lambda d: (d / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})),
     r"shards \['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'\] listed in "
     r"model.safetensors.index.json are missing"),
    (lambda d: break_config(d, json.dumps({"architectures": ["GPT2LMHeadModel"]})), r"which the suite does not run"),
])
def test_a_broken_model_directory_is_refused_before_anything_loads(checkpoint, damage, message):
    damage(checkpoint)
    with pytest.raises(ValueError, match=message):
        resolve_model(str(checkpoint))


def test_an_unreachable_hub_id_fails_once_and_fast_with_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"model 'llava7b' \(llava-hf/llava-1.5-7b-hf\) is not in the local Hugging "
                                         r"Face cache and cannot be fetched .*huggingface-cli download"):
        check_hub_model(resolve_model("llava7b"))
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("overrides, message", [
    ({"lvlm_seed": -1}, "--lvlm-seed -1: must be a non-negative integer"),
    ({"group_size": 64}, "--group-size 64 has no effect on the chosen settings: it is used by --kv-method group, "
                         "or --weight-method group / awq"),
    ({"kv_method": ["uniform"], "residual_length": 32},
     "--residual-length 32 has no effect on the chosen settings: it is used by --kv-method group"),
    ({"kv_method": ["group"], "outlier_ratio": 0.05},
     "--outlier-ratio 0.05 has no effect on the chosen settings: it is used by --kv-method outlier"),
    ({"lvlm_limit": -3}, "--lvlm-limit -3: must be a positive number of samples per dataset"),
    ({"lvlm_batch_size": -1}, "--lvlm-batch-size -1: must be positive"),
    ({"weight_method": ["quip"]}, "invalid method='quip'"),
])
def test_options_that_would_be_ignored_or_meaningless_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        options_from(values(**overrides))


def test_the_group_size_reaches_the_methods_that_use_it():
    options = options_from(values(kv_method=["group"], kv_bits=[2], group_size=64))
    assert [s.id for s in options.settings] == ["fp16", "kv2-group-g64-r128"]


@pytest.mark.parametrize("args, ini, message", [
    (["--lvlm-seed", "-1"], "", "lvlmbench: --lvlm-seed -1: must be a non-negative integer"),
    ([], "[pytest]\nlvlm_limit = many\n", "lvlmbench: ini key lvlm_limit = 'many' is not a valid int"),
    (["--group-size", "64"], "", "lvlmbench: --group-size 64 has no effect*"),
    (["--model", "some-org/some-model"], "",
     "lvlmbench: model 'some-org/some-model' (some-org/some-model) is not in the local Hugging Face cache*"),
])
def test_usage_errors_exit_4_with_one_line(pytester, args, ini, message):
    if ini:
        pytester.makeini(ini)
    result = pytester.runpytest_subprocess("--collect-only", "-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [line for line in result.stderr.lines
                                                                       if line.startswith("ERROR: ")]
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def _answers_in(cache_dir) -> int:
    import sqlite3

    path = cache_dir / "generations.sqlite"
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    except sqlite3.OperationalError:   # the table is not created yet
        return 0


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGINT"])
def test_a_run_killed_mid_way_resumes_without_regenerating_finished_answers(pytester, signal_name):
    """kill -9 (or Ctrl-C) after some batches: the rerun generates only what was missing and its
    records equal an uninterrupted run's."""
    import signal
    import subprocess
    import sys

    pytester.makepyfile(test_hallucination="from pytest_lvlmbench.suite import capability_test\n"
                                           "test_hallucination = capability_test('hallucination')\n")
    cache = pytester.path / "cache"
    args = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-k", "shapes_pope_random and fp16",
            "--lvlm-limit", "40", "--lvlm-batch-size", "2", "--lvlm-cache", str(cache)]
    # a run started from a background job inherits SIGINT ignored, and Python then never raises
    # KeyboardInterrupt: give the child the default disposition, as an interactive Ctrl-C finds it
    process = subprocess.Popen(args, cwd=pytester.path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while _answers_in(cache) < 6 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(getattr(signal, signal_name))
    process.wait(timeout=60)
    done = _answers_in(cache)
    assert 6 <= done < 40, done   # killed part-way: some answers kept, not all
    resumed = pytester.path / "resumed.json"
    subprocess.run(args + ["--lvlm-report", str(resumed), "--lvlm-report-answers", "yes"], cwd=pytester.path,
                   check=True, stdout=subprocess.DEVNULL)
    clean = pytester.path / "clean.json"
    subprocess.run(args[:-1] + [str(pytester.path / "fresh"), "--lvlm-report", str(clean), "--lvlm-report-answers",
                                "yes"], cwd=pytester.path, check=True, stdout=subprocess.DEVNULL)
    [again], [fresh] = (json.loads(p.read_text())["records"] for p in (resumed, clean))
    assert again["generated"] == 40 - done and fresh["generated"] == 40
    assert again["answers"] == fresh["answers"] and again["metrics"] == fresh["metrics"]


@pytest.mark.parametrize("setup, message", [
    (lambda d: (d / "cache").write_text("x"), "*--lvlm-cache */cache/generations.sqlite: cannot write there: "
                                              "*/cache is a file, not a directory"),
    (lambda d: ((d / "cache").mkdir(), (d / "cache" / "generations.sqlite").write_bytes(b"\x13" * 5000)),
     "*generation cache */cache/generations.sqlite is corrupt or truncated (file is not a database); delete it*"),
])
def test_a_broken_cache_is_a_usage_error_before_any_test_runs(pytester, setup, message):
    setup(pytester.path)
    pytester.makepyfile(test_hallucination="from pytest_lvlmbench.suite import capability_test\n"
                                           "test_hallucination = capability_test('hallucination')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "cache"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: lvlmbench: {message}"])


def test_a_crashed_xdist_worker_names_the_lost_test_and_a_rerun_completes_it(pytester):
    """A worker killed mid-test: xdist reports the crashed test by its id (model, setting, dataset) and
    the others finish; the same command again completes the lost one, reusing every cached answer."""
    pytester.makepyfile(test_recognition="from pytest_lvlmbench.suite import capability_test\n"
                                         "test_recognition = capability_test('recognition')\n")
    pytester.makeconftest(
        "import os, signal\n"
        "def pytest_runtest_call(item):\n"
        "    if 'kv2-uniform-shapes_vqa' in item.nodeid and os.path.exists('crash'):\n"
        "        os.remove('crash')\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n")
    (pytester.path / "crash").write_text("once")
    args = ["-p", "no:cacheprovider", "-n", "2", "-k", "shapes_", "--kv-bits", "8,4,2", "--kv-method", "uniform", "--lvlm-limit", "6",
            "--lvlm-cache", str(pytester.path / "cache")]
    crashed = pytester.runpytest_subprocess(*args)
    crashed.assert_outcomes(passed=3, failed=1)
    crashed.stdout.fnmatch_lines(["*crashed while running*test_recognition[[]tiny-kv2-uniform-shapes_vqa[]]*"])
    report = pytester.path / "r.json"
    rerun = pytester.runpytest_subprocess(*args, "--lvlm-report", str(report))
    rerun.assert_outcomes(passed=4)
    generated = {(r["setting"], r["task"]): r["generated"] for r in json.loads(report.read_text())["records"]}
    assert generated.pop(("kv2-uniform", "shapes_vqa")) == 6 and set(generated.values()) == {0}
