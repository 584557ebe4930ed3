"""The plugin end to end with pytester on the embedded tiny model (few samples)."""

import json

import pytest

def capability_module(capability):
    """The source of a benchmark module, as benchmarks/test_<capability>.py writes it."""
    return f"from pytest_lvlmbench.suite import capability_test\ntest_{capability} = capability_test({capability!r})\n"


def run(pytester, *args):
    pytester.makepyfile(test_hallucination=capability_module("hallucination"))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "cache"),
                                         *args)


def test_ids_name_model_setting_and_dataset(pytester):
    result = run(pytester, "--collect-only", "-q", "--kv-bits", "4", "--kv-method", "group")
    result.stdout.fnmatch_lines(["*test_hallucination[[]tiny-fp16-shapes_pope_random[]]",
                                 "*test_hallucination[[]tiny-kv4-group-g32-r128-shapes_pope_adversarial[]]"])


def test_default_grid_is_fp16_plus_kv_and_weight_grids(pytester):
    result = run(pytester, "--collect-only", "-q")
    ids = [line for line in result.stdout.lines if "test_hallucination[" in line]
    settings = {line.split("[tiny-")[1].rsplit("-", 1)[0] for line in ids}
    assert len(settings) == 1 + 9 + 10 + 2 and "fp16" in settings and "evict-snapkv-b40-w4" in settings
    assert "vtok-fastv-k2-r50" in settings and "w4-gptq-g128" in settings and "kv2-group-g8-r0" in settings


def test_marks_select_capability_and_what_a_setting_compresses(pytester):
    result = run(pytester, "--collect-only", "-q", "-k", "shapes_", "-m", "hallucination and kv_quant",
                 "-W", "error::pytest.PytestUnknownMarkWarning")
    ids = [line for line in result.stdout.lines if "test_hallucination[" in line]
    assert len(ids) == 9 * 3 and all("-kv" in i for i in ids)
    result = run(pytester, "--collect-only", "-q", "-k", "shapes_", "-m", "baseline or weight_quant")
    assert len([line for line in result.stdout.lines if "test_hallucination[" in line]) == (1 + 10) * 3


@pytest.mark.parametrize("args, message", [
    (["--model", "llama99"], "unknown model alias 'llama99': known aliases are*tiny*"),
    (["--kv-bits", "5"], "*invalid bits=5: allowed bits are (2, 3, 4, 8, 16)*"),
    (["--kv-method", "kivi", "--kv-bits", "2"], "*invalid method='kivi': allowed methods are*"),
    (["--model", "./missing-dir/model"], "*local path*does not exist*"),
    (["--lvlm-device", "cuda"], "*CUDA is not available*"),
    (["--weight-bits", "4", "--weight-method", "rtn", "--weight-targets", "tower"],
     "*--weight-targets 'tower': invalid targets=('tower',): must be a non-empty selection of ('language', "
     "'vision', 'projector')*, or 'all'"),
    (["--kv-bits", "4", "--weight-targets", "vision"], "*--weight-targets 'vision' has no effect: no setting "
                                                       "quantizes weights*"),
])
def test_bad_options_are_usage_errors(pytester, args, message):
    result = run(pytester, "--collect-only", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])


def test_an_unsupported_architecture_is_rejected(pytester):
    (pytester.path / "gpt").mkdir()
    (pytester.path / "gpt" / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    result = run(pytester, "--collect-only", "--model", str(pytester.path / "gpt"))
    result.stderr.fnmatch_lines(["*which the suite does not run*"])


def test_run_prints_the_table_writes_json_and_resumes_from_the_cache(pytester):
    report = pytester.path / "report.json"
    args = ["-k", "shapes_pope_random", "--kv-bits", "2", "--kv-method", "uniform", "--lvlm-limit", "12",
            "--lvlm-report", str(report), "-v"]   # -v: the full table, every metric
    first = run(pytester, *args)
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["*lvlmbench degradation report*", "*hallucination*shapes_pope_random*accuracy*"])
    data = json.loads(report.read_text())
    records = {(r["setting"], r["task"]): r for r in data["records"]}
    assert set(records) == {("fp16", "shapes_pope_random"), ("kv2-uniform", "shapes_pope_random")}  # the baseline ran once
    assert all(r["generated"] == 12 and r["samples"] == 12 for r in records.values())
    lines = [r["roofline"] for r in records.values()]   # decode timed now: bytes per step = weights + KV
    assert all(line["decode_steps"] > 0 and line["copy_gbps"] > 0 for line in lines)
    assert all(line["bytes_per_step"] == line["weight_bytes_per_step"] + line["kv_bytes_per_step"] for line in lines)
    accuracy = records[("kv2-uniform", "shapes_pope_random")]["metrics"]["accuracy"]
    assert f"{accuracy:.3f}" in first.stdout.str()
    second = run(pytester, *args)
    second.assert_outcomes(passed=2)
    again = {(r["setting"], r["task"]): r for r in json.loads(report.read_text())["records"]}
    assert all(r["generated"] == 0 for r in again.values())  # everything came from the cache
    assert all(r["roofline"] is None for r in again.values())   # nothing decoded, nothing timed
    assert {k: r["metrics"] for k, r in again.items()} == {k: r["metrics"] for k, r in records.items()}


def test_weight_targets_quantize_the_vision_tower_and_report_its_bytes(pytester):
    report = pytester.path / "report.json"
    result = run(pytester, "-k", "shapes_pope_random", "--weight-bits", "4", "--weight-method", "rtn",
                 "--weight-targets", "vision", "--lvlm-limit", "6", "--lvlm-report", str(report))
    result.assert_outcomes(passed=2)
    record = records_of(report)[("w4-rtn-vision", "shapes_pope_random")]
    (before, after), = record["weight_bytes_by_part"].values()
    assert list(record["weight_bytes_by_part"]) == ["vision"] and 0 < after < before / 4
    assert record["weight_bytes"] == after and record["weight_bytes_expected"] == after   # the closed form holds
    result.stdout.fnmatch_lines([f"*w4-rtn-vision: weights quantized in vision {after:,} of {before:,} bytes*"])


def test_ini_keys_set_the_grid(pytester):
    pytester.makeini("[pytest]\nlvlm_kv_bits = 8\nlvlm_kv_method = outlier\n")
    result = run(pytester, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*tiny-kv8-outlier-s2-shapes_pope_random*"])


POPE_2BIT = ["-k", "shapes_pope_random", "--kv-bits", "2", "--kv-method", "uniform", "--lvlm-limit", "12"]


def records_of(path):
    return {(r["setting"], r["task"]): r for r in json.loads(path.read_text())["records"]}


def test_a_threshold_breach_fails_exactly_that_test(pytester):
    # 2-bit settings may lose no recall, 8-bit ones too, significant or not; the baseline floor is met
    pytester.makefile(".toml", lvlm_thresholds='significance = 1.0\n[floor]\n"*" = 0.1\n[max_drop.2]\n'
                                               'recall = 0.0\n[max_drop.8]\nrecall = 0.0\n')
    result = run(pytester, *POPE_2BIT, "--kv-bits", "8", "--lvlm-report", str(pytester.path / "r.json"))
    records = records_of(pytester.path / "r.json")
    recall = {setting: records[(setting, "shapes_pope_random")]["metrics"]["recall"] for setting in ("fp16", "kv2-uniform")}
    assert recall["kv2-uniform"] < recall["fp16"]  # the tiny model does lose recall at 2 bits here
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*shapes_pope_random recall = * dropped * from fp16 * at 2 bits (p = *); allowed 0.0000*",
                                 "FAILED*tiny-kv2-uniform-shapes_pope_random*"])
    assert "kv8-uniform-shapes_pope_random] -" not in result.stdout.str()
    # by default only a significant drop breaches: 5 questions cannot show that this one is real
    pytester.makefile(".toml", lvlm_thresholds='[max_drop.2]\nrecall = 0.0\n')
    few = [*POPE_2BIT, "--lvlm-limit", "5", "--lvlm-report", str(pytester.path / "few.json")]  # last limit wins
    run(pytester, *few).assert_outcomes(passed=2)
    kv2 = records_of(pytester.path / "few.json")[("kv2-uniform", "shapes_pope_random")]
    assert kv2["metrics"]["recall"] < 1.0 and kv2["p_values"]["recall"] > 0.05


def test_a_baseline_below_its_floor_fails(pytester):
    # tiny's captions score CIDEr-D about 6.7: a floor of 9 is above it, one of 1 below
    pytester.makefile(".toml", lvlm_thresholds='[floor]\n"shapes_captions.cider_d" = 1.0\n'
                                               '[floor.tiny]\n"shapes_captions.cider_d" = 9.0\n'
                                               '[floor.other]\nbleu_4 = 2.0\n')
    pytester.makepyfile(test_language_generation=capability_module("language_generation"))
    result = run(pytester, "-k", "shapes_captions and fp16", "--lvlm-limit", "12")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*shapes_captions cider_d = * is below the floor 9.0000 (*[[]floor.tiny[]]*"])
    assert "bleu_4 =" not in result.stdout.str()   # another model's floor


def test_a_bad_thresholds_file_is_a_usage_error(pytester):
    pytester.makefile(".toml", lvlm_thresholds='[max_drop.4]\nyes_ratio = 0.1\n')
    result = run(pytester, "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*metric 'yes_ratio' has no known direction*"])


def test_compare_fails_on_a_drop_and_passes_on_a_gain(pytester):
    saved_path = pytester.path / "cache" / "runs" / "main.json"
    run(pytester, *POPE_2BIT, "--lvlm-save", "main").assert_outcomes(passed=2)
    saved = json.loads(saved_path.read_text())
    run(pytester, *POPE_2BIT, "--lvlm-compare", "main").assert_outcomes(passed=2)  # same run: no change
    for record in saved["records"]:
        record["metrics"]["accuracy"] -= 0.1   # the saved run was worse: now is a gain
        record["metrics"]["yes_ratio"] += 0.5  # no direction: never compared
    saved_path.write_text(json.dumps(saved))
    run(pytester, *POPE_2BIT, "--lvlm-compare", "main").assert_outcomes(passed=2)
    for record in saved["records"]:
        record["metrics"]["accuracy"] += 0.2   # the saved run was better: now is a drop
    saved_path.write_text(json.dumps(saved))
    result = run(pytester, *POPE_2BIT, "--lvlm-compare", "main")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*accuracy = * is 0.1000 worse than saved run 'main'*"])
    missing = run(pytester, *POPE_2BIT, "--lvlm-compare", "nope")
    missing.stderr.fnmatch_lines(["*no saved run 'nope'*saved runs: ?'main'?*"])


def test_xdist_workers_give_the_same_records_as_one_process(pytester):
    args = ["-k", "shapes_pope_random or shapes_vqa", "--kv-bits", "4,2", "--kv-method", "uniform", "--lvlm-limit", "10"]
    pytester.makepyfile(test_recognition=capability_module("recognition"))
    one = run(pytester, *args, "--lvlm-report", str(pytester.path / "one.json"), "--lvlm-cache",
              str(pytester.path / "c2"))
    two = run(pytester, *args, "-n", "2", "--dist", "loadgroup", "--lvlm-report", str(pytester.path / "two.json"),
              "--lvlm-cache", str(pytester.path / "c3"))
    one.assert_outcomes(passed=6)
    two.assert_outcomes(passed=6)
    strip = {"seconds", "generated", "peak_memory_bytes", "samples_per_second", "roofline", "prefill"}   # timings
    a, b = records_of(pytester.path / "one.json"), records_of(pytester.path / "two.json")
    assert len(a) == 6 and set(a) == set(b)
    assert all(a[key]["prefill"]["kept_by_layer"] == b[key]["prefill"]["kept_by_layer"] for key in a)
    assert all({k: v for k, v in a[key].items() if k not in strip} == {k: v for k, v in b[key].items() if k not in strip}
               for key in a)
    assert "lvlmbench degradation report" in two.stdout.str()


def test_plot_is_written(pytester):
    plot = pytester.path / "plot.png"
    run(pytester, *POPE_2BIT, "--lvlm-plot", str(plot)).assert_outcomes(passed=2)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


SWATCH_TASKS = '''
from dataclasses import dataclass, field

from PIL import Image

from pytest_lvlmbench.metrics import share_stats
from pytest_lvlmbench.tasks import Task


@dataclass
class Swatch:
    """A sample of a third-party dataset: nothing of the shapes world."""
    id: str
    question: str
    references: tuple
    meta: dict = field(default_factory=dict)

    def image(self):
        return Image.new("RGB", (48, 48), (220, 40, 40))


def load(limit):
    samples = [Swatch(f"swatch-{i}", "what color is the circle ?", ("red",)) for i in range(5)]
    return samples[:limit] if limit else samples


def named_a_colour(samples, answers):
    return {"accuracy": share_stats([a in ("red", "green", "blue", "yellow") for a in answers])}


def tasks():
    return [Task("colour_swatches", "recognition", "a lab's red swatches", load, named_a_colour, ("accuracy",),
                 "accuracy", post_prompt="")]
'''


def test_list_tasks_prints_the_registry_and_exits(pytester):
    result = pytester.runpytest_subprocess("--lvlm-list-tasks")
    assert result.ret == 0
    assert len([line for line in result.stdout.lines if line.startswith("shapes_")]) == 12
    assert len([line for line in result.stdout.lines if line.startswith("pope_")]) == 3
    result.stdout.fnmatch_lines(["*shapes_pope_random*hallucination*shapes world*accuracy↑*, precision↑*yes_ratio·*yes*",
                                 "*shapes_people_describe*toxicity*toxicity_rate↓**accuracy↑*"])
    assert "passed" not in result.stdout.str() and "collected" not in result.stdout.str()


def test_list_models_names_aliases_sources_and_architectures(pytester):
    result = pytester.runpytest_subprocess("--lvlm-list-models")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*alias*source*architecture*download*available here*",
                                 "*tiny *zoo/models/tiny*LlavaForConditionalGeneration*embedded*yes (local)*",
                                 "*tiny-next*LlavaNextForConditionalGeneration*",
                                 "*tiny-qwen*Qwen2VLForConditionalGeneration*embedded*",
                                 "*llava7b*llava-hf/llava-1.5-7b-hf*LlavaForConditionalGeneration*~14 GB*"
                                 "huggingface-cli download llava-hf/llava-1.5-7b-hf*",
                                 "*qwen2.5-vl-7b*Qwen/Qwen2.5-VL-7B-Instruct*Qwen2_5_VLForConditionalGeneration*~17 GB*",
                                 "*internvl3-8b*OpenGVLab/InternVL3-8B-hf*InternVLForConditionalGeneration*",
                                 "*gemma3-4b*google/gemma-3-4b-it*Gemma3ForConditionalGeneration*gated*"])


def test_a_task_from_an_included_module_registers_and_runs(pytester):
    pytester.makepyfile(lab_tasks=SWATCH_TASKS + "\nfrom pytest_lvlmbench.tasks import register_task\n"
                                                 "for task in tasks():\n    register_task(task)\n")
    pytester.makepyfile(test_recognition=capability_module("recognition"))
    report = pytester.path / "r.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lvlm-include", "lab_tasks.py", "-k",
                                           "colour_swatches", "--kv-bits", "2", "--kv-method", "uniform",
                                           "--lvlm-cache", str(pytester.path / "cache"), "--lvlm-report", str(report))
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["setting*colour_swatches†", "*accuracy↑*", "kv2-uniform *"])   # 5 items: † few clusters
    records = records_of(report)
    assert set(records) == {("fp16", "colour_swatches"), ("kv2-uniform", "colour_swatches")}
    assert records[("fp16", "colour_swatches")]["samples"] == 5
    listed = pytester.runpytest_subprocess("--lvlm-include", "lab_tasks.py", "--lvlm-list-tasks")
    listed.stdout.fnmatch_lines(["*colour_swatches*recognition*a lab's red swatches*accuracy↑*"])


def test_an_installed_entry_point_registers_tasks_and_a_broken_one_is_named(pytester):
    pytester.makepyfile(lab_tasks=SWATCH_TASKS)
    info = pytester.mkdir("lab_tasks-0.1.dist-info")
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-tasks\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lvlmbench.tasks]\nlab = lab_tasks:tasks\n")
    result = pytester.runpytest_subprocess("--lvlm-list-tasks")
    result.stdout.fnmatch_lines(["*colour_swatches*recognition*"])
    (info / "entry_points.txt").write_text("[lvlmbench.tasks]\nlab = lab_tasks:no_such_function\n")
    broken = pytester.runpytest_subprocess("--lvlm-list-tasks")
    assert broken.ret == pytest.ExitCode.USAGE_ERROR
    broken.stderr.fnmatch_lines(["*entry point 'lab' (lab_tasks:no_such_function)*lvlmbench.tasks*failed*"])


def test_an_include_that_does_not_exist_is_a_usage_error(pytester):
    result = pytester.runpytest_subprocess("--lvlm-include", "nowhere/lab.py", "--collect-only")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--lvlm-include 'nowhere/lab.py': no such Python file*"])


def test_saves_merge_and_compare_fails_and_lists_what_it_could_not_compare(pytester):
    run(pytester, *POPE_2BIT, "--lvlm-save", "main").stdout.fnmatch_lines(
        ["lvlmbench: run saved as 'main' (2 records: 2 new, 0 replaced, 0 kept) in */cache/runs/main.json"])
    subset = run(pytester, *POPE_2BIT, "--kv-bits", "4", "-k", "shapes_pope_random and not kv2", "--lvlm-save", "main")
    subset.assert_outcomes(passed=2)   # a -k subset replaces its own records and keeps the others
    subset.stdout.fnmatch_lines(["lvlmbench: run saved as 'main' (3 records: 1 new, 1 replaced, 1 kept) in *"])
    result = run(pytester, *POPE_2BIT, "--kv-bits", "8", "--lvlm-compare", "main")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*shapes_pope_random: not compared: saved run 'main' has no record of tiny-kv8-uniform-shapes_pope_random "
        "(add it with --lvlm-save main; saves merge)",
        "*lvlmbench: not compared with saved run 'main'*",
        "not compared: tiny-kv8-uniform-shapes_pope_random: no record in saved run 'main'",
        "FAILED*tiny-kv8-uniform-shapes_pope_random*"])


@pytest.mark.parametrize("saved, args, message", [
    ('{"machine": {"dtype": "float32"}, "limit": 12, "seed": 0, "records": []}', ["--lvlm-compare", "main"],
     "lvlmbench: cannot compare with saved run 'main' (*main.json): it was made with --lvlm-limit 12, this run "
     "uses --lvlm-limit 5; records at different limits are not comparable"),
    ('{"machine": {"dtype": "float32"}, "limit": 5, "seed": 0, "records": []}',
     ["--lvlm-seed", "1", "--lvlm-save", "main"],
     "lvlmbench: cannot merge this run into saved run 'main' (*main.json): it was made with --lvlm-seed 0, this run "
     "uses --lvlm-seed 1; records at different seeds are not comparable (save under another name)"),
    ('{"limit": 5', ["--lvlm-compare", "main"], "lvlmbench: saved run *main.json is not valid JSON (*)*"),
    (None, ["--lvlm-thresholds", "t.toml"], "lvlmbench: t.toml: [[]max_drop.4[]] key 'shapes_pope_randm.accuracy': no "
                                          "registered task 'shapes_pope_randm'; registered are *shapes_pope_random*"),
])
def test_incomparable_saved_runs_and_keys_that_never_fire_are_usage_errors(pytester, saved, args, message):
    if saved is not None:
        (pytester.path / "cache" / "runs").mkdir(parents=True)
        (pytester.path / "cache" / "runs" / "main.json").write_text(saved)
    (pytester.path / "t.toml").write_text('[max_drop.4]\n"shapes_pope_randm.accuracy" = 0.1\n')
    result = run(pytester, "--collect-only", "--lvlm-limit", "5", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_check_invariance_regenerates_alone_and_shuffled_and_reports_it(pytester):
    report = pytester.path / "r.json"
    result = run(pytester, *POPE_2BIT, "--lvlm-limit", "6", "--lvlm-check-invariance", "4", "--lvlm-report", str(report),
                 "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*shapes_pope_random*changed alone / shuffled*0.000 / 0.000*0.000 / 0.000*"])
    data = json.loads(report.read_text())
    assert data["machine"]["quant_kernels"] == "torch" and data["machine"]["dtype"] == "float32"
    assert all(r["invariance"]["samples"] == 4 and r["invariance"]["changed_batch_1"] == [] for r in data["records"])


def test_eviction_and_pruning_settings_run_with_agreement_tokens_kept_and_prefill_time(pytester):
    """--kv-evict adds each method alone and on each KV setting asked; --vtok adds each pruning method;
    the report shows agreement, the prompt's KV kept and the prefill time, and per layer what was kept."""
    report = pytester.path / "r.json"
    result = run(pytester, "-k", "shapes_pope_random", "--kv-bits", "4", "--kv-method", "uniform", "--kv-evict",
                 "pyramidkv-b40-w4", "--vtok", "pool2", "--lvlm-limit", "10", "--lvlm-report", str(report))
    result.assert_outcomes(passed=5)   # fp16, kv4, evict, kv4+evict, pool
    out = result.stdout.str()
    for header in ("agree", "kept", "prefill ms"):
        assert header in out
    # POPE prompts of 20 tokens: 8 kept, window 4, PyramidKV's B = 4 spread 8, 6, 4, 2 (+ the window)
    result.stdout.fnmatch_lines(["*kv4-uniform+evict-pyramidkv-b40-w4 *0.06* *1.000 *0.450 *",
                                 "tokens dropped (share of the prompt's KV entries each decoder layer kept*",
                                 "  evict-pyramidkv-b40-w4: kept per layer 0.60 0.50 0.40 0.30 (mean 0.450); TTFT * ms "
                                 "per batch, prefill * ms per prompt, *x the same batches' without dropping (fp16: *",
                                 "  vtok-pool2: kept per layer 0.75 0.75 0.75 0.75 (mean 0.750)*"])   # 9 image tokens -> 4
    records = records_of(report)
    pyramid = records[("kv4-uniform+evict-pyramidkv-b40-w4", "shapes_pope_random")]
    assert pyramid["prefill"]["kept_by_layer"] == pytest.approx([0.6, 0.5, 0.4, 0.3])
    assert pyramid["kv_ratio"] < records[("evict-pyramidkv-b40-w4", "shapes_pope_random")]["kv_ratio"] / 4
    assert records[("fp16", "shapes_pope_random")]["prefill"]["kept_by_layer"] == [1.0] * 4
    assert "prefill_vs_undropped" not in records[("fp16", "shapes_pope_random")]["prefill"]
    assert pyramid["prefill"]["prefill_vs_undropped"] > 0   # timed beside the same batches without dropping


def test_eviction_and_pruning_marks_select_them(pytester):
    result = run(pytester, "--collect-only", "-q", "-k", "shapes_pope_random", "-m", "kv_evict or vtok_prune",
                 "-W", "error::pytest.PytestUnknownMarkWarning")
    ids = [line for line in result.stdout.lines if "test_hallucination[" in line]
    assert [i.split("[tiny-")[1] for i in ids] == ["evict-snapkv-b40-w4-shapes_pope_random]",
                                                   "vtok-fastv-k2-r50-shapes_pope_random]"]


def test_a_bad_eviction_or_pruning_option_is_a_usage_error_naming_it(pytester):
    result = run(pytester, "--kv-evict", "snapkv-b140")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--kv-evict 'snapkv-b140': invalid budget=140: must be an integer in 1..99*"])
    result = run(pytester, "--vtok", "visionzip-r50", "--model", "tiny-qwen")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*vtok-visionzip-r50 on model 'tiny-qwen': vtok-visionzip-r50: VisionZip reads the CLS "
                                 "attention of LLaVA's CLIP tower*"])
