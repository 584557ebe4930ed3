"""--lvlm-shard I/N and --lvlm-merge: a grid split for batch schedulers merges back to the unsharded records."""

import json

import pytest

from pytest_lvlmbench.options import parse_shard
from pytest_lvlmbench.storage.runs import merge_runs, shard_of

SAME = ("metrics", "intervals", "p_values", "samples", "noninferiority", "code", "fingerprint", "kv_ratio")


def test_shards_are_a_stable_partition():
    keys = [("tiny", s, t) for s in ("fp16", "kv4-uniform", "w4-rtn") for t in ("a", "b", "c", "d")]
    parts = [shard_of(k, 3) for k in keys]
    assert parts == [shard_of(k, 3) for k in keys] and set(parts) <= {0, 1, 2}
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError, match=rf"--lvlm-shard '{bad}': expected I/N with 1 <= I <= N"):
            parse_shard(bad)


def run(pytester, *args):
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "cache"),
                                         "--lvlm-limit", "6", "--kv-bits", "4,2", "--kv-method", "uniform",
                                         "-k", "shapes_pope_random or shapes_pope_popular", *args)


def test_the_grid_sharded_in_3_merges_to_exactly_the_unsharded_records(pytester):
    pytester.makepyfile(test_hallucination="from pytest_lvlmbench.suite import capability_test\n"
                                           "test_hallucination = capability_test('hallucination')\n")
    whole = run(pytester, "--lvlm-save", "whole")
    whole.assert_outcomes(passed=6)
    passed = 0
    for i in (1, 2, 3):
        shard = run(pytester, "--lvlm-shard", f"{i}/3", "--lvlm-save", f"shard{i}")
        passed += shard.parseoutcomes().get("passed", 0)
    assert passed == 6   # every test ran in exactly one shard
    runs = pytester.path / "cache" / "runs"
    _, merged = merge_runs([runs / f"shard{i}.json" for i in (1, 2, 3)])
    expected = {(r["model"], r["setting"], r["task"]): r for r in json.loads((runs / "whole.json").read_text())["records"]}
    assert {r.key for r in merged} == set(expected)
    for record in merged:
        assert all(getattr(record, f) == expected[record.key][f] for f in SAME), record.key
    report = run(pytester, "--lvlm-merge", ",".join(str(runs / f"shard{i}.json") for i in (1, 2, 3)),
                 "--lvlm-report-md", "merged.md")
    assert report.ret == 0
    report.stdout.fnmatch_lines(["*lvlmbench: tiny*", "*kv2-uniform*", "*merged 6 records from 3 runs*"])
    assert "| kv4-uniform |" in (pytester.path / "merged.md").read_text()


def test_runs_that_differ_are_refused_naming_both_files(tmp_path):
    record = {"model": "tiny", "setting": "fp16", "task": "t", "capability": "c", "primary": "accuracy",
              "metrics": {"accuracy": 1.0}, "code": "abc", "fingerprint": "f1"}
    header = {"limit": 6, "seed": 0, "resamples": 1000, "machine": {"dtype": "float32"}}
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps({**header, "records": [record]}))
    b.write_text(json.dumps({**header, "limit": 12, "records": [record]}))
    c.write_text(json.dumps({**header, "records": [{**record, "code": "xyz", "setting": "kv4-uniform"}]}))
    with pytest.raises(ValueError, match=r"cannot merge .*b.json with .*a.json: limit 12 vs 6"):
        merge_runs([a, b])
    with pytest.raises(ValueError, match=r"cannot merge .*c.json with .*a.json: .* another code version"):
        merge_runs([a, c])
    d = tmp_path / "d.json"
    d.write_text(json.dumps({**header, "records": [{**record, "metrics": {"accuracy": 0.5}}]}))
    with pytest.raises(ValueError, match=r"record tiny-fp16-t differs in metrics"):
        merge_runs([a, d])
