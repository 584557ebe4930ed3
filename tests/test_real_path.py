"""The real-checkpoint path end to end, offline: every real-dataset task on fixture copies of the ten
datasets (their public schema and hub layout), with random-init LLaVA-1.5 (Vicuna template) and
LLaVA-NeXT (Mistral template, anyres) checkpoints, a KV and an AWQ weight setting, a fake judge
endpoint, through the pytest plugin exactly as a GPU user runs it."""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dataset_fixtures import write_all, write_dataset
from pytest_lvlmbench.tasks import TASKS
from random_llava import build_random_llavas, stop_early

REAL_TASKS = sorted(name for name, task in TASKS.items() if task.dataset != "shapes world (generated)")
JUDGED = {"mmvet", "mmvet_knowledge", "mmvet_generation", "mmvet_spatial"}
BENCHMARKS = {f"test_{c}": f"from pytest_lvlmbench.suite import capability_test\ntest_{c} = capability_test({c!r})\n"
              for c in ("recognition", "knowledge", "language_generation", "spatial", "visual_reasoning",
                        "hallucination", "visual_illusion", "toxicity", "stereotypes", "bias")}


class JudgeHandler(BaseHTTPRequestHandler):
    """An OpenAI-compatible judge that grades every MM-Vet answer 0.5 and every HallusionBench answer correct."""

    prompts: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][0]["content"]
        type(self).prompts.append(prompt)
        reply = "correct" if "Imagine you are an intelligent teacher" in prompt else "0.5"
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), JudgeHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture(scope="module")
def real_world(tmp_path_factory):
    data = write_all(tmp_path_factory.mktemp("data"))
    models = build_random_llavas(tmp_path_factory.mktemp("models"), variants=("llava-1.5", "llava-next-mistral"))
    for directory in models.values():
        stop_early(directory)
    return data, models


def run(pytester, *args):
    pytester.makepyfile(**BENCHMARKS)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "cache"),
                                         "-k", "not shapes_", *args)


def test_every_real_task_runs_end_to_end_on_both_architectures(pytester, real_world, judge_url, monkeypatch):
    data, models = real_world
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    report = pytester.path / "real.json"
    (pytester.path / "none.toml").write_text("")   # random weights: no quality gate
    result = run(pytester, "--model", f"{models['llava-1.5']},{models['llava-next-mistral']}",
                 "--lvlm-data-dir", str(data), "--kv-bits", "4", "--kv-method", "uniform",
                 "--weight-bits", "4", "--weight-method", "awq", "--group-size", "32", "--lvlm-limit", "4",
                 "--lvlm-batch-size", "4", "--lvlm-judge-url", judge_url, "--lvlm-judge-model", "fake-gpt",
                 "--lvlm-report", str(report), "--lvlm-thresholds", str(pytester.path / "none.toml"))
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert "skipped" not in result.stdout.lines[-1]
    records = json.loads(report.read_text())["records"]
    for model in models.values():
        for setting in ("fp16", "kv4-uniform", "w4-awq-g32"):
            ran = {r["task"]: r for r in records if r["model"] == str(model) and r["setting"] == setting}
            assert sorted(ran) == REAL_TASKS, (model, setting)
            for name, record in ran.items():
                assert record["samples"] > 0 and all(math.isfinite(v) for v in record["metrics"].values()), name
                assert record["peak_memory_bytes"] > 0
    by_key = {(r["model"], r["setting"], r["task"]): r for r in records}
    mistral = str(models["llava-next-mistral"])
    assert by_key[(mistral, "kv4-uniform", "pope_random")]["kv_ratio"] < 0.5   # the cache was compressed
    assert by_key[(mistral, "w4-awq-g32", "gqa")]["calibration"] == "coco"
    assert by_key[(mistral, "fp16", "gqa")]["calibration"] == ""
    assert by_key[(mistral, "fp16", "mmvet")]["judge"].startswith("fake-gpt at http://127.0.0.1")
    assert by_key[(mistral, "fp16", "mmvet")]["metrics"]["mmvet_total"] == pytest.approx(50.0)
    assert "fake-gpt" in by_key[(mistral, "fp16", "hallusionbench")]["judge"]
    assert by_key[(mistral, "fp16", "hallusionbench")]["metrics"]["accuracy"] == 1.0   # the judge said correct
    assert "toxicity scored by lexicon" in by_key[(mistral, "fp16", "social_toxicity")]["judge"]
    text = result.stdout.str()
    assert "calibrated on: coco" in text and "judged by: fake-gpt" in text


def test_without_data_or_judge_every_real_task_skips_naming_what_is_missing(pytester, real_world):
    _, models = real_world
    result = run(pytester, "--model", str(models["llava-1.5"]), "-rs", "-m", "baseline")
    result.assert_outcomes(skipped=len(REAL_TASKS))
    text = result.stdout.str()
    for repo in ("lmms-lab/POPE", "lmms-lab/GQA", "lmms-lab/textvqa", "lmms-lab/VizWiz-VQA", "lmms-lab/ScienceQA",
                 "lmms-lab/MME", "lmms-lab/HallusionBench", "lmms-lab/COCO-Caption2017", "Intel/SocialCounterfactuals"):
        assert f"dataset {repo} is not downloaded" in text and f"huggingface-cli download --repo-type dataset {repo}" \
            in text
    assert "scored by a model judge and none is configured: pass --lvlm-judge-url" in text
    assert "--lvlm-data-dir" in text


def test_list_tasks_says_which_real_tasks_run_offline(pytester, real_world):
    data, _ = real_world
    absent = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lvlm-list-tasks")
    absent.stdout.fnmatch_lines(["*pope_random*hallucination*lmms-lab/POPE*f1↑**no (not downloaded)*",
                                 "*mmvet *recognition*lmms-lab/MMVet*no (not downloaded)*"])
    present = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lvlm-list-tasks", "--lvlm-data-dir", str(data))
    present.stdout.fnmatch_lines(["*pope_random*hallucination*lmms-lab/POPE*yes*",
                                  "*mmvet *recognition*lmms-lab/MMVet*no (needs a judge)*"])


def test_a_dataset_in_the_wrong_shape_fails_naming_dataset_and_column(pytester, tmp_path, real_world):
    _, models = real_world
    data = tmp_path / "broken"
    write_dataset("lmms-lab/POPE", data, drop_column="answer")
    result = run(pytester, "--model", str(models["llava-1.5"]), "--lvlm-data-dir", str(data), "-k", "pope_random",
                 "--lvlm-limit", "2")
    result.stdout.fnmatch_lines(["*lmms-lab/POPE*column 'answer'*missing*re-download*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
