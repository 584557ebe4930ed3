"""One command for the GPU table: every GPU check of the project in one run, one verdict table.

    PYTHONPATH=. benchmarks/perf/gpu_check.sh [OUT_DIR] [--device cuda|cpu] [--limit 20] [-k EXPR]

Without a GPU the kernel speeds, the kernels compiled by Triton and the suite on CUDA have never run;
this collects them in one command that needs no network (the tiny model ships with the package, and
``HF_HUB_OFFLINE=1`` is set) and writes everything under ``OUT_DIR`` (default ``gpu-check-out/``):

1. ``pytest tests -m "cuda or triton"``: the Triton kernels compiled on the GPU against the torch path
   (``kernel_tests.log``).
2. The tiny suite on CUDA at ``--lvlm-limit 20`` twice, once with quant/'s kernels (``cuda.json``) and
   once with ``LVLMBENCH_KERNELS=torch`` (``cuda-torch.json``), and on CPU (``cpu.json``, started first,
   in the background: it needs no GPU), each from its own empty generation cache so every answer is
   generated now. Answers are compared per setting (share of identical answers):
   - CUDA vs CPU: float16 vs float32 arithmetic, so differences are expected and shown as such;
   - kernels vs torch path on the same device: where the two paths do the same arithmetic (no KV
     quantization, weights float or 2/3-bit, which stay on the torch path) they must agree exactly;
     elsewhere the kernels agree with torch within float tolerance, so greedy answers may differ.
   Each report's records carry the decode roofline (``pytest_lvlmbench/engine/roofline.py``); a record
   decoding faster than its bytes allow fails its row.
3. ``benchmarks/perf/kernels_gpu.py`` (``kernels_gpu.txt``, ``kernels_gpu.json``), alone on the GPU so
   its timings are clean, restricted to the goals' shapes: GEMV on 4096x4096 and 11008x4096, decode at
   16k context.

The table (``table.txt``, and ``summary.json``) has one row per goal and per compared setting. The goals:
KV pack/unpack >= 70% of copy bandwidth; W4 GEMV >= 2.5x fp16 matmul at batch 1; 4-bit KV decode >= 2.5x
fp16 tokens/s at the same memory budget at 16k, and ahead of transformers' QuantizedCache (without
optimum-quanto that row says "not installed"). Every step has a time cap (:data:`LIMITS`) so the
whole run stays under 8 minutes on one H100; a step that hits its cap is shown as timed out.

``--device cpu`` is a smoke test: the GPU-only steps (1 and 3) are skipped with their reason, and the
suite runs on CPU twice (default path and ``LVLMBENCH_KERNELS=torch``: both the torch path, so every
answer must agree). Exit status 1 when a row fails or a goal is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tabulate import tabulate

from pytest_lvlmbench.core.settings import Setting

# Seconds each step may run (the CPU suite counts from the start, as it runs beside steps 1 and 2):
# worst case 100 + 90 + 90, the CPU suite done by 280, + 180 = 460 s, under 8 minutes with the comparison.
# The CPU smoke test has no 8-minute goal: its two suite runs get "suite cpu smoke" (size them with --limit, -k).
LIMITS = {"kernel tests": 100, "suite cuda": 90, "suite cuda torch": 90, "suite cpu": 280, "kernels_gpu": 180,
          "suite cpu smoke": 900}
KERNELS_GPU_ARGS = ["--contexts", "16384", "--gemv-shapes", "4096x4096,11008x4096", "--iters", "10",
                    "--steps", "16", "--budget-gib", "20"]
GPU_ONLY = {
    "kernel tests": "GPU only: compiles the Triton kernels on CUDA (without a GPU, `pytest tests -m triton` "
                    "runs them in Triton's interpreter)",
    "kernels_gpu": "GPU only: its goals are GPU speeds (`python benchmarks/perf/kernels_gpu.py --device cpu` "
                   "smoke-tests that script)",
}


@dataclass(eq=False)   # compared and hashed by identity: a run may serve as two roles
class Step:
    """One command of the check, its log and how it ended."""

    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    started: float = 0.0
    status: str = "not run"   # ok, failed (rc N), timed out after N s, skipped
    seconds: float = 0.0
    note: str = ""

    def start(self) -> None:
        self.started = time.monotonic()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT,
                                            env={**os.environ, **self.env})

    def wait(self, limit: float) -> None:
        """Wait until ``limit`` seconds after the start, then stop the step (its process only)."""
        assert self.process is not None
        try:
            rc = self.process.wait(timeout=max(limit - (time.monotonic() - self.started), 0.1))
            self.status = "ok" if rc == 0 else f"failed (rc {rc})"
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            self.status = f"timed out after {limit:.0f} s"
        self.seconds = time.monotonic() - self.started

    def skip(self, reason: str) -> None:
        self.status, self.note = "skipped", reason


def suite_step(name: str, out: Path, device: str, limit: int, select: str | None, kernels: str | None) -> Step:
    """The tiny suite with every answer in its JSON report, from an empty generation cache of its own."""
    stem = name.removeprefix("suite ").replace(" ", "-")
    argv = [sys.executable, "-m", "pytest", "benchmarks/", "-q", "-p", "no:cacheprovider",
            "--lvlm-device", device, "--lvlm-limit", str(limit), "--lvlm-report", str(out / f"{stem}.json"),
            "--lvlm-report-answers", "yes", "--lvlm-cache", str(out / "cache" / stem)]
    if select:
        argv += ["-k", select]
    return Step(name, argv, out / f"{stem}.log", {"LVLMBENCH_KERNELS": kernels} if kernels else {})


# ---------------------------------------------------------------- comparing answers


def load_report(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def answers_by_setting(report: Mapping) -> dict[tuple[str, str], dict[tuple[str, str], str]]:
    """(model, setting) -> {(task, item id): answer}, from a JSON report written with answers."""
    out: dict[tuple[str, str], dict[tuple[str, str], str]] = {}
    for record in report["records"]:
        if "answers" not in record:
            raise ValueError("the report holds no answers: write it with --lvlm-report-answers yes")
        found = out.setdefault((record["model"], record["setting"]), {})
        for answer in record["answers"]:
            found[record["task"], answer["id"]] = answer["answer"]
    return out


def agreement(a: Mapping, b: Mapping) -> dict[tuple[str, str], tuple[int, int]]:
    """(model, setting) -> (identical answers, answers both reports hold), over the settings both ran."""
    left, right = answers_by_setting(a), answers_by_setting(b)
    out = {}
    for key in left.keys() & right.keys():
        shared = left[key].keys() & right[key].keys()
        out[key] = (sum(left[key][item] == right[key][item] for item in shared), len(shared))
    return dict(sorted(out.items()))


def same_arithmetic(setting_id: str) -> bool:
    """Whether quant/'s kernels and its torch path compute a setting alike: no KV quantization (float
    caches go to SDPA on both paths) and weights float or 2/3-bit (those stay on the torch path)."""
    setting = Setting.from_id(setting_id)
    kv_float = setting.kv.is_float and setting.kv_rest.is_float
    return kv_float and all(spec.is_float or spec.bits < 4 for spec in (setting.weights, setting.weights_rest))


def must_agree(setting_id: str, a: Mapping, b: Mapping) -> bool:
    """Two runs must give identical answers when they ran on the same device in the same dtype and
    either took the same code path or the setting's arithmetic is the same on both paths."""
    ma, mb = a["machine"], b["machine"]
    same_place = ma["device"] == mb["device"] and ma["dtype"] == mb["dtype"]
    return same_place and (ma["quant_kernels"] == mb["quant_kernels"] or same_arithmetic(setting_id))


def agreement_rows(label: str, a: Mapping | None, b: Mapping | None, why_missing: str) -> list[list[str]]:
    """One row per setting: share of identical answers, FAIL where the two runs must agree exactly
    and do not; where they may differ, the row says why (dtype, code path)."""
    if a is None or b is None:
        return [[f"answers {label}", "", "no report", f"not measured ({why_missing})"]]
    ma, mb = a["machine"], b["machine"]
    rows = []
    for (model, setting), (same, total) in agreement(a, b).items():
        share = f"{same}/{total} identical ({same / total:.0%})" if total else "no shared items"
        if must_agree(setting, a, b):
            goal, result = "identical (same arithmetic)", "pass" if same == total else "FAIL"
        elif ma["dtype"] != mb["dtype"]:
            goal, result = "may differ", f"expected: {ma['dtype']} vs {mb['dtype']}"
        else:
            goal, result = "may differ", f"expected: {ma['quant_kernels']} vs {mb['quant_kernels']} within float tolerance"
        rows.append([f"answers {label}: {model} {setting}", goal, share, result])
    return rows or [[f"answers {label}", "", "no setting in both reports", "not measured"]]


# ---------------------------------------------------------------- the other rows


def roofline_row(label: str, report: Mapping | None) -> list[str]:
    """Records decoding faster than their bytes allow (the JSON's per-record ``roofline``)."""
    if report is None:
        return [f"roofline {label}", "no record above copy bandwidth", "no report", "not measured"]
    lines = [r["roofline"] for r in report["records"] if r.get("roofline")]
    if not lines:
        return [f"roofline {label}", "no record above copy bandwidth", "no decode step timed", "not measured"]
    flagged = sum(line["flagged"] for line in lines)
    shares = sorted(line["share_of_copy"] for line in lines)
    measured = (f"{flagged}/{len(lines)} flagged; share of {lines[0]['copy_gbps']:.0f} GB/s copy: "
                f"median {shares[len(shares) // 2]:.1%}, max {shares[-1]:.1%}")
    return [f"roofline {label}", "no record above copy bandwidth", measured, "FAIL" if flagged else "pass"]


def pytest_counts(log: Path) -> str:
    """pytest's closing summary (``12 passed, 3 skipped in 40.1s``), or empty when it never got there."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    found = re.findall(r"^=*\s*(\d+ (?:passed|failed|skipped|error|deselected).*?) in [\d.]+s", text, re.MULTILINE)
    return found[-1] if found else ""


def step_row(step: Step, goal: str) -> list[str]:
    if step.status == "skipped":
        return [step.name, goal, "", f"skipped: {step.note}"]
    counts = pytest_counts(step.log) if step.argv[1:3] == ["-m", "pytest"] else ""
    measured = f"{counts} ({step.seconds:.0f} s)" if counts else f"{step.seconds:.0f} s"
    return [step.name, goal, measured, "pass" if step.status == "ok" else step.status.upper()]


def kernel_rows(step: Step, path: Path) -> list[list[str]]:
    """The goals of kernels_gpu.py, from its ``--json``."""
    if step.status == "skipped":
        return [["kernels_gpu.py", "KV pack, W4 GEMV, decode goals", "", f"skipped: {step.note}"]]
    if not path.is_file():
        return [["kernels_gpu.py", "KV pack, W4 GEMV, decode goals", f"{step.seconds:.0f} s",
                 f"not measured ({step.status}; see {step.log.name})"]]
    rows = []
    for entry in json.loads(path.read_text())["verdicts"]:
        value = "" if entry["value"] is None else f"{entry['value']:.2f}"
        result = entry["status"] if not entry["note"] else f"{entry['status']} ({entry['note']})"
        rows.append([f"kernels_gpu {entry['key']}", entry["goal"].removeprefix("goal "), value,
                     "pass" if entry["status"] in ("met", "ok") else result])
    return rows


def failed(rows: Sequence[Sequence[str]]) -> bool:
    return any(row[3] in ("FAIL", "missed") or row[3].startswith(("FAILED", "TIMED OUT", "missed", "flagged"))
               for row in rows)


# ---------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="gpu-check-out", help="where every file goes")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (a smoke test)")
    parser.add_argument("--limit", type=int, default=20, help="--lvlm-limit of the suite runs")
    parser.add_argument("-k", dest="select", default=None, help="pytest -k of the suite runs (default: all)")
    args = parser.parse_args(argv)
    if args.device not in ("cuda", "cpu"):
        parser.error(f"--device {args.device}: cuda or cpu")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")   # nothing here needs the network
    begun = time.monotonic()

    tests = Step("kernel tests", [sys.executable, "-m", "pytest", "tests", "-m", "cuda or triton", "-q",
                                  "-p", "no:cacheprovider"], out / "kernel_tests.log")
    bench = Step("kernels_gpu", [sys.executable, "benchmarks/perf/kernels_gpu.py", *KERNELS_GPU_ARGS,
                                 "--json", str(out / "kernels_gpu.json")], out / "kernels_gpu.txt")
    if args.device == "cuda":
        cpu = suite_step("suite cpu", out, "cpu", args.limit, args.select, None)
        runs = [suite_step("suite cuda", out, "cuda", args.limit, args.select, None),
                suite_step("suite cuda torch", out, "cuda", args.limit, args.select, "torch")]
        cpu.start()   # CPU only: beside the GPU steps, done before kernels_gpu.py times anything
        for step in (tests, *runs):
            print(f"gpu_check: {step.name} ...", file=sys.stderr, flush=True)
            step.start()
            step.wait(LIMITS[step.name])
        cpu.wait(LIMITS[cpu.name])
        print("gpu_check: kernels_gpu ...", file=sys.stderr, flush=True)
        bench.start()
        bench.wait(LIMITS[bench.name])
        device_run, torch_run = runs
    else:
        for step in (tests, bench):
            step.skip(GPU_ONLY[step.name])
        cpu = suite_step("suite cpu", out, "cpu", args.limit, args.select, None)
        torch_run = suite_step("suite cpu torch", out, "cpu", args.limit, args.select, "torch")
        for step in (cpu, torch_run):   # side by side: both CPU-only
            step.start()
        for step in (cpu, torch_run):
            step.wait(LIMITS["suite cpu smoke"])
        device_run = cpu

    reports = {step.name: load_report(out / f"{step.name.removeprefix('suite ').replace(' ', '-')}.json")
               for step in dict.fromkeys((device_run, cpu, torch_run))}
    suite_goal = "every test passes; JSON written"
    rows = [step_row(tests, "every cuda/triton test passes")]
    rows += [step_row(step, suite_goal) for step in dict.fromkeys((device_run, torch_run, cpu))]
    if args.device == "cuda":
        rows += agreement_rows("cuda vs cpu", reports[device_run.name], reports[cpu.name], "a run has no report")
    rows += agreement_rows(f"{args.device} default path vs LVLMBENCH_KERNELS=torch", reports[device_run.name], reports[torch_run.name],
                           "a run has no report")
    rows += [roofline_row(name.removeprefix("suite "), report) for name, report in reports.items()]
    rows += kernel_rows(bench, out / "kernels_gpu.json")

    header = (f"gpu_check --device {args.device}, --lvlm-limit {args.limit}"
              f"{f', -k {args.select!r}' if args.select else ''}: {time.monotonic() - begun:.0f} s; files in {out}/")
    table = tabulate(rows, headers=["check", "goal", "measured", "verdict"])
    print(f"{header}\n{table}")
    (out / "table.txt").write_text(f"{header}\n{table}\n")
    (out / "summary.json").write_text(json.dumps(
        {"device": args.device, "limit": args.limit, "select": args.select,
         "seconds": time.monotonic() - begun, "steps": {s.name: {"status": s.status, "seconds": s.seconds,
                                                                 "note": s.note, "log": s.log.name}
                                                        for s in (tests, device_run, torch_run, cpu, bench)},
         "rows": [dict(zip(("check", "goal", "measured", "verdict"), row)) for row in rows]}, indent=1))
    return 1 if failed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
