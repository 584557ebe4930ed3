"""Saved runs as plain functions: saves merge atomically, incomparable runs are refused with both
values named, malformed files are named, and unwritable output paths are refused up front."""

import json
import os
import re

import pytest

from pytest_lvlmbench.core.options import Options
from pytest_lvlmbench.storage.files import atomic_write_text, check_writable
from pytest_lvlmbench.core.records import Record, Results
from pytest_lvlmbench.report.documents import save_report
from pytest_lvlmbench.storage.runs import SavedRun, check_save, run_path
from pytest_lvlmbench.core.settings import BASELINE


def record(setting, task="shapes_pope_random", accuracy=0.9):
    return Record("tiny", setting, task, "hallucination", "accuracy", {"accuracy": accuracy, "recall": 0.8},
                  predictions=["yes"])


def options(tmp_path, **changes):
    return Options(**{"models": ["tiny"], "settings": [BASELINE], "limit": 12, "cache_dir": tmp_path, **changes})


def saved_keys(tmp_path):
    data = json.loads(run_path(tmp_path, "main").read_text())
    return {(r["setting"], r["task"]): r["metrics"]["accuracy"] for r in data["records"]}, data


def test_a_save_merges_this_runs_records_into_the_saved_run_and_keeps_its_header(tmp_path):
    full = Results([record("fp16"), record("kv2-uniform"), record("fp16", "shapes_pope_popular")])
    assert save_report(full, options(tmp_path), "main").message() == (
        f"run saved as 'main' (3 records: 3 new, 0 replaced, 0 kept) in {run_path(tmp_path, 'main')}")
    subset = Results([record("kv2-uniform", accuracy=0.5), record("kv4-uniform")])   # a -k subset
    saved = save_report(subset, options(tmp_path, models=["tiny-next", "tiny"]), "main")
    assert saved.message().startswith("run saved as 'main' (4 records: 1 new, 1 replaced, 2 kept)")
    records, data = saved_keys(tmp_path)
    assert records == {("fp16", "shapes_pope_random"): 0.9, ("kv2-uniform", "shapes_pope_random"): 0.5,
                       ("fp16", "shapes_pope_popular"): 0.9, ("kv4-uniform", "shapes_pope_random"): 0.9}
    assert data["limit"] == 12 and data["seed"] == 0 and data["models"] == ["tiny", "tiny-next"]
    assert [(s["new"], s["replaced"], s["kept"]) for s in data["saves"]] == [(3, 0, 0), (1, 1, 2)]
    assert [p.name for p in run_path(tmp_path, "main").parent.iterdir()] == ["main.json"]  # no temporary left


@pytest.mark.parametrize("changes, message", [
    ({"limit": 5}, "it was made with --lvlm-limit 12, this run uses --lvlm-limit 5; records at different limits"),
    ({"limit": None}, "it was made with --lvlm-limit 12, this run uses no --lvlm-limit (every sample); "
                      "records at different limits"),
    ({"seed": 3}, "it was made with --lvlm-seed 0, this run uses --lvlm-seed 3; records at different seeds"),
    ({"dtype": "bfloat16"}, "it was made with --lvlm-dtype float32, this run uses --lvlm-dtype bfloat16; "
                            "records at different dtypes"),
])
def test_runs_at_another_limit_seed_or_dtype_are_neither_merged_nor_compared(tmp_path, changes, message):
    save_report(Results([record("fp16")]), options(tmp_path), "main")
    before = run_path(tmp_path, "main").read_text()
    path = run_path(tmp_path, "main")
    with pytest.raises(ValueError, match=re.escape(f"cannot merge this run into saved run 'main' ({path}): {message} "
                                                      "are not comparable (save under another name)") + "$"):
        check_save(options(tmp_path, save="main", **changes))
    with pytest.raises(ValueError, match=re.escape(f"cannot merge this run into saved run 'main' ({path}): {message} "
                                                      "are not comparable (save under another name)") + "$"):
        save_report(Results([record("kv2-uniform")]), options(tmp_path, **changes), "main")
    assert run_path(tmp_path, "main").read_text() == before
    compare = re.escape(f"cannot compare with saved run 'main' ({path}): {message} are not comparable") + "$"
    with pytest.raises(ValueError, match=compare):
        SavedRun.load(tmp_path, "main", 0.0, options(tmp_path, **changes))
    check_save(options(tmp_path, save="main"))          # the same limit, seed and dtype: fine
    SavedRun.load(tmp_path, "main", 0.0, options(tmp_path))


@pytest.mark.parametrize("text, message", [
    ("{\"records\": [", "is not valid JSON"),
    ("{\"limit\": 12}", "has no 'records' list; it is not a run saved by --lvlm-save"),
    ("{\"records\": [{\"model\": \"tiny\"}]}", "record 0 lacks model, setting, task or metrics"),
])
def test_a_malformed_saved_run_is_named_and_never_overwritten(tmp_path, text, message):
    path = run_path(tmp_path, "main")
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.raises(ValueError, match=f"saved run {path}:? {message}"):
        SavedRun.load(tmp_path, "main", 0.0, options(tmp_path))
    with pytest.raises(ValueError, match=f"saved run {path}:? {message}"):
        check_save(options(tmp_path, save="main"))
    with pytest.raises(ValueError, match=f"saved run {path}:? {message}"):
        save_report(Results([record("fp16")]), options(tmp_path), "main")
    assert path.read_text() == text


def test_records_the_saved_run_lacks_fail_and_are_listed(tmp_path):
    save_report(Results([record("fp16")]), options(tmp_path), "main")
    saved = SavedRun.load(tmp_path, "main", 0.0, options(tmp_path))
    assert saved.breaches(record("fp16")) == []
    assert saved.breaches(record("kv2-uniform")) == [
        "shapes_pope_random: not compared: saved run 'main' has no record of tiny-kv2-uniform-shapes_pope_random "
        "(add it with --lvlm-save main; saves merge)"]
    more = Record("tiny", "fp16", "shapes_pope_random", "hallucination", "accuracy",
                  {"accuracy": 0.9, "recall": 0.8, "precision": 0.7, "yes_ratio": 0.5}, predictions=[])
    assert saved.not_compared([more, record("kv2-uniform")]) == [
        "not compared: tiny-fp16-shapes_pope_random precision: not in the saved record of run 'main'",
        "not compared: tiny-kv2-uniform-shapes_pope_random: no record in saved run 'main'"]


def test_check_writable_creates_missing_directories_and_names_option_path_and_reason(tmp_path):
    check_writable(tmp_path / "new" / "dir" / "report.json", "--lvlm-report")
    assert (tmp_path / "new" / "dir").is_dir() and not list((tmp_path / "new" / "dir").iterdir())
    with pytest.raises(ValueError, match=f"--lvlm-plot {tmp_path}: cannot write there: it is a directory; "
                                         "give a file path"):
        check_writable(tmp_path, "--lvlm-plot")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=f"--lvlm-report {tmp_path}/file/r.json: cannot write there: "
                                         f"{tmp_path}/file is a file, not a directory"):
        check_writable(tmp_path / "file" / "r.json", "--lvlm-report")


def test_check_writable_refuses_a_read_only_directory(tmp_path, monkeypatch):
    (tmp_path / "ro").mkdir(mode=0o555)
    if os.geteuid() == 0:   # root writes into read-only directories: let the probe fail as it would for a user
        import tempfile

        def refuse(**_):
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(ValueError, match=re.escape(f"--lvlm-report {tmp_path}/ro/r.json: cannot write there: "
                                                   f"directory {tmp_path}/ro is not writable (Permission denied)")):
        check_writable(tmp_path / "ro" / "r.json", "--lvlm-report")


def test_atomic_writes_leave_the_old_file_whole_when_they_fail(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    atomic_write_text(path, "old")
    assert oct(path.stat().st_mode & 0o777) != oct(0o600)   # a plain file's mode, not mkstemp's
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space left"):
        atomic_write_text(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]
