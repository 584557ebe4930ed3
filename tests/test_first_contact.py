"""A pytest user's first minutes with the plugin (issue 23): every mode renders, nothing heavy is
imported or written until the suite is used, state follows the rootdir, results reach pytest's own
channels, and the report does not depend on the order tests ran in."""

import io
import json
import multiprocessing
import random
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_lvlmbench.options import options_from, raw_values
from pytest_lvlmbench.core.records import Record, Results
from pytest_lvlmbench.core.settings import BASELINE
from pytest_lvlmbench.tasks import TASKS
from pytest_lvlmbench.engine.models import MODELS_DIR

REPO = Path(__file__).resolve().parent.parent
SUITE = "from pytest_lvlmbench.suite import capability_test\ntest_hallucination = capability_test('hallucination')\n"
POPE = ["-k", "shapes_pope_random", "--lvlm-limit", "4", "-p", "no:cacheprovider"]


def default_values() -> dict:
    """Raw option values with nothing set on the command line or in an ini file."""
    return raw_values(lambda name: None, lambda ini: None)


def in_repo(*args, timeout=300):
    """pytest run as a user runs it, from the repository root."""
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args", [
    ["--help"], ["-h"], ["--markers"], ["benchmarks", "--fixtures"], ["--lvlm-list-tasks"], ["--lvlm-list-models"],
    ["benchmarks", "--collect-only", "-q"],
    ["benchmarks", "--collect-only", "-q", "-p", "no:xdist", "--strict-markers", "--strict-config",
     "-W", "error::pytest.PytestUnknownMarkWarning", "-p", "no:timeout"],
], ids=lambda args: " ".join(args))
def test_every_help_and_listing_mode_exits_0(args, tmp_path):
    done = in_repo(*args, "--lvlm-cache", str(tmp_path / "cache"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback (most recent call last)" not in done.stdout + done.stderr


def test_collecting_the_suite_imports_neither_torch_nor_transformers(tmp_path):
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "pytest", "benchmarks", "--collect-only", "-q",
                           "-p", "no:cacheprovider", "--lvlm-cache", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "704 tests collected" in done.stdout   # 22 settings x 32 tasks
    assert {"torch", "transformers"} & imported == set()


def project(pytester, *extra_ini):
    """A project whose rootdir holds pytest.ini, with the suite one directory down in ``suite/``."""
    pytester.makeini("[pytest]\n" + "\n".join(extra_ini))
    suite = pytester.mkpydir("suite")
    (suite / "test_hallucination.py").write_text(SUITE)
    return suite


def test_cache_and_saved_runs_live_under_the_rootdir_whatever_the_current_directory(pytester, monkeypatch):
    suite = project(pytester)
    monkeypatch.chdir(suite)
    first = pytester.runpytest_subprocess(".", *POPE, "--kv-bits", "2", "--kv-method", "uniform", "--lvlm-save", "base")
    first.assert_outcomes(passed=2)
    assert (pytester.path / ".lvlmbench" / "runs" / "base.json").is_file()
    assert not (suite / ".lvlmbench").exists()
    monkeypatch.chdir(pytester.path)
    again = pytester.runpytest_subprocess("suite", *POPE, "--kv-bits", "2", "--kv-method", "uniform",
                                          "--lvlm-compare", "base", "--junitxml", "out.xml")
    again.assert_outcomes(passed=2)   # found base, and every answer in the same cache
    generated = {p.get("value") for p in ET.parse(pytester.path / "out.xml").iter("property")
                 if p.get("name") == "lvlm_generated"}
    assert generated == {"0"}


def test_records_reach_junit_xml_as_user_properties(pytester):
    project(pytester)
    result = pytester.runpytest_subprocess("suite", *POPE, "--kv-bits", "2", "--kv-method", "uniform",
                                           "--junitxml", "out.xml")
    result.assert_outcomes(passed=2)
    cases = {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
             for case in ET.parse(pytester.path / "out.xml").iter("testcase")}
    base = cases["test_hallucination[tiny-fp16-shapes_pope_random]"]
    quantized = cases["test_hallucination[tiny-kv2-uniform-shapes_pope_random]"]
    assert base["lvlm_metric"] == "accuracy" and base["lvlm_ci95"].startswith("[")
    assert quantized["lvlm_setting"] == "kv2-uniform" and quantized["lvlm_fp16"] == base["lvlm_value"]
    assert quantized["lvlm_verdict"] in ("non-inferior", "worse", "inconclusive")
    for name in ("lvlm_delta", "lvlm_delta_ci95", "lvlm_p_change", "lvlm_p_noninferior", "lvlm_agreement",
                 "lvlm_kv_ratio"):
        assert name in quantized


def test_a_rerun_from_the_cache_still_proves_the_weight_compression(pytester):
    project(pytester)
    args = ("suite", *POPE, "--weight-bits", "4", "--weight-method", "rtn", "--lvlm-report", "r.json")
    reports = []
    for _ in range(2):
        pytester.runpytest_subprocess(*args).assert_outcomes(passed=2)
        reports.append({r["setting"]: r for r in json.loads((pytester.path / "r.json").read_text())["records"]})
    first, again = (r["w4-rtn"] for r in reports)
    assert first["generated"] == 4 and again["generated"] == 0
    assert again["weight_bytes"] == first["weight_bytes"] > 0 and again["weight_ratio"] == first["weight_ratio"] < 0.5


def odd_tiny(tmp_path, head_dim):
    """tiny's checkpoint with a config whose head dimension KIVI's default groups cannot divide."""
    model = tmp_path / f"tiny-h{head_dim}"
    shutil.copytree(MODELS_DIR / "tiny", model)
    config = json.loads((model / "config.json").read_text())
    config["text_config"].update(head_dim=head_dim)
    (model / "config.json").write_text(json.dumps(config))
    return model


def test_an_asked_setting_that_cannot_apply_is_a_usage_error_naming_setting_model_and_fix(pytester, tmp_path):
    project(pytester)
    model = odd_tiny(tmp_path, 12)
    result = pytester.runpytest_subprocess("suite", "--collect-only", "--model", str(model), "--kv-bits", "4",
                                           "--kv-method", "group")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*kv4-group-g32-r128 on model '{model}': kv4-group-g32-r128: KIVI's group_size=32 "
                                 "must divide the model's head_dim=12*use --group-size 2, 4*"])
    assert "Traceback" not in result.stderr.str()


def test_a_default_grid_setting_that_cannot_apply_is_skipped_with_the_reason(pytester, tmp_path):
    project(pytester)
    model = odd_tiny(tmp_path, 12)
    result = pytester.runpytest_subprocess("suite", "-k", "shapes_pope_random and kv8-group", "--model", str(model),
                                           "-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*SKIPPED*kv8-group-g8-r0: KIVI's group_size=8 must divide the model's head_dim=12*"])


def test_k_selects_layered_setting_ids(pytester):
    project(pytester)
    result = pytester.runpytest_subprocess("suite", "--collect-only", "-q", "--kv-bits", "4", "--kv-method", "uniform",
                                           "--kv-layers", "0-1,3", "-k", "kv4-uniform@0-1,3 and shapes_pope_random")
    assert result.ret == 0, result.stderr.str()
    assert [line for line in result.stdout.lines if "::" in line] == [
        "suite/test_hallucination.py::test_hallucination[tiny-kv4-uniform@0-1,3-shapes_pope_random]"]


def test_the_json_report_keys_prompt_and_answer_by_item(pytester):
    project(pytester)
    pytester.runpytest_subprocess("suite", *POPE, "--lvlm-report", "r.json", "--lvlm-report-answers", "yes",
                                  "-m", "baseline").assert_outcomes(passed=1)
    [record] = json.loads((pytester.path / "r.json").read_text())["records"]
    assert "predictions" not in record and len(record["answers"]) == 4
    first = record["answers"][0]
    assert set(first) == {"id", "prompt", "answer"} and "is there" in first["prompt"].lower() and first["id"]


def record(model, setting, task):
    return Record(model, setting, task, "hallucination", "accuracy", {"accuracy": 0.5}, predictions=[])


def test_results_iterate_in_grid_and_registry_order_whatever_the_arrival_order():
    settings = ["fp16", "kv8-uniform", "kv4-uniform", "w4-rtn"]
    tasks = [name for name in TASKS if name.startswith("shapes_")][:4]   # registry order
    records = [record(m, s, t) for m in ("tiny", "tiny-next") for s in settings for t in tasks]
    expected = [r.key for r in records]
    for seed in range(5):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        assert [r.key for r in Results(shuffled, order=(["tiny", "tiny-next"], settings, list(TASKS)))] == expected


def test_progress_stays_on_one_line_inside_the_terminal_and_is_erased(monkeypatch):
    from _pytest._io import TerminalWriter

    from pytest_lvlmbench.plugin import ProgressLine

    out = io.StringIO()
    writer = TerminalWriter(out)
    writer.fullwidth = 40
    writer.write("benchmarks/test_hallucination.py ..")
    monkeypatch.setattr(sys, "stdout", out)
    from contextlib import nullcontext

    progress = ProgressLine(writer, nullcontext)
    for done in (8, 16, 150):
        progress(done, 150, 2.0)
    progress.clear()
    screen = render(out.getvalue())
    assert "\n" not in out.getvalue() and all(len(line) < 40 for line in screen)
    assert screen[-1].rstrip() == "benchmarks/test_hallucination.py .."
    assert writer.width_of_current_line == len("benchmarks/test_hallucination.py ..")


def render(text: str) -> list[str]:
    """What a terminal shows for text with backspaces (the cursor moves left, later text overwrites)."""
    line, cursor = [], 0
    for char in text:
        if char == "\b":
            cursor -= 1
            continue
        line[cursor:cursor + 1] = [char]
        cursor += 1
    return ["".join(line)]


def test_the_progress_never_reaches_captured_output_or_logs(pytester):
    project(pytester)
    result = pytester.runpytest_subprocess("suite", *POPE, "-m", "baseline", "-s")
    result.assert_outcomes(passed=1)
    assert "samples," not in result.stdout.str()   # not a terminal: no progress line at all


def _hold(path, parts, held, hold_s):
    from pytest_lvlmbench.engine.gencache import GenerationCache

    cache = GenerationCache(path)
    with cache.claim(*parts):
        held.set()
        time.sleep(hold_s)


def test_a_second_worker_waits_for_the_first_one_generating_the_same_record(tmp_path):
    from pytest_lvlmbench.engine.gencache import GenerationCache

    path = tmp_path / "generations.sqlite"
    GenerationCache(path).close()
    context = multiprocessing.get_context("spawn")
    held = context.Event()
    first = context.Process(target=_hold, args=(path, ("tiny", "fp16", "pope"), held, 1.5))
    first.start()
    assert held.wait(60)
    cache = GenerationCache(path)
    start = time.monotonic()
    with cache.claim("tiny", "kv4-uniform", "pope"):   # another record: no wait
        pass
    assert time.monotonic() - start < 0.5
    with cache.claim("tiny", "fp16", "pope"):
        waited = time.monotonic() - start
    first.join(30)
    assert waited > 0.5


@pytest.mark.parametrize("change, message", [
    ({"lvlm_save": ""}, "--lvlm-save '': a run name is 1-100 letters"),
    ({"lvlm_save": "../../outside"}, "--lvlm-save '../../outside': a run name is"),
    ({"lvlm_compare": "a/b"}, "--lvlm-compare 'a/b': a run name is"),
    ({"lvlm_compare": "base", "lvlm_compare_tolerance": -0.1}, "--lvlm-compare-tolerance -0.1: must be a finite"),
    ({"lvlm_compare": "base", "lvlm_compare_tolerance": float("nan")}, "--lvlm-compare-tolerance nan: must be"),
    ({"lvlm_compare_tolerance": 0.1}, "--lvlm-compare-tolerance 0.1 has no effect without --lvlm-compare NAME"),
])
def test_run_names_and_tolerances_are_checked(change, message):
    with pytest.raises(ValueError) as raised:
        options_from({**default_values(), **change})
    assert message in str(raised.value)


def test_the_cache_defaults_to_the_rootdir_and_an_ini_path_is_relative_to_it(tmp_path):
    def getini(name):
        return {"lvlm_cache": "state", "lvlm_report": "out/r.json"}.get(name)

    values = raw_values(lambda name: None, getini, root=tmp_path)
    options = options_from(values, root=tmp_path)
    assert options.cache_dir == tmp_path / "state" and options.report == tmp_path / "out" / "r.json"
    assert options_from(raw_values(lambda name: None, lambda name: None), root=tmp_path).cache_dir \
        == tmp_path / ".lvlmbench"


def test_an_empty_dataset_skips_naming_the_task_and_mentions_no_limit_that_was_not_set(tmp_path):
    from pytest_lvlmbench.tasks.data import DatasetUnavailable
    from pytest_lvlmbench.engine.session import Session
    from pytest_lvlmbench.tasks import get_task

    task = get_task("shapes_pope_random")
    empty = type(task)(**{**task.__dict__, "load": lambda limit: []})
    session = Session(options_from({**default_values(), "lvlm_cache": str(tmp_path)}))
    with pytest.raises(DatasetUnavailable) as raised:
        session.run("tiny", BASELINE, empty)
    assert "shapes_pope_random" in str(raised.value) and "--lvlm-limit" not in str(raised.value)
