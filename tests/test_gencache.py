"""The generation cache shared by pytest-xdist workers: complete keys, memoised model hashes,
checksummed entries and named errors for every fault."""

import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_lvlmbench.engine import gencache
from pytest_lvlmbench.engine.gencache import (GenerationCache, GenerationCacheError, Generated, code_hash,
                                              generation_key, model_fingerprint)
from pytest_lvlmbench.engine.models import MODELS_DIR

CODE = "test-code"   # a fixed code hash: other engineers editing quant/ must not change it mid-test


def _open_and_write(path, barrier, worker, errors):
    barrier.wait()  # every worker opens the fresh file at the same moment, as xdist workers do
    try:
        GenerationCache(path, code=CODE).put_many({f"key-{worker}": Generated(f"answer {worker}")})
    except Exception as error:  # noqa: BLE001 - reported to the parent, which asserts there are none
        errors.put(repr(error))


def test_workers_opening_a_fresh_cache_at_once_all_succeed(tmp_path):
    context = multiprocessing.get_context("fork")
    workers, rounds = 4, 10
    for round_ in range(rounds):
        path = tmp_path / f"round{round_}" / "generations.sqlite"
        barrier, errors = context.Barrier(workers), context.Queue()
        processes = [context.Process(target=_open_and_write, args=(path, barrier, w, errors)) for w in range(workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        assert errors.empty(), errors.get()
        stored = GenerationCache(path, code=CODE).get_many(f"key-{w}" for w in range(workers))
        assert {key: value.answer for key, value in stored.items()} == {f"key-{w}": f"answer {w}" for w in range(workers)}


# ------------------------------------------------------------------ the key
@pytest.fixture
def model_dir(tmp_path):
    return shutil.copytree(MODELS_DIR / "tiny", tmp_path / "tiny")


def test_a_checkpoint_edited_in_the_middle_with_its_mtime_restored_gets_a_new_fingerprint(model_dir, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setattr(gencache, "RACY_WINDOW_NS", -10**12)   # memoise the fresh copy as if it were old
    cache = GenerationCache(tmp_path / "cache" / "generations.sqlite", code=CODE)
    before = model_fingerprint(model_dir, memo=cache)
    weights = model_dir / "model.safetensors"
    stat = weights.stat()
    time.sleep(0.05)   # past the filesystem's coarse clock tick, so the edit's ctime differs (RACY_WINDOW_NS)
    with weights.open("r+b") as handle:
        handle.seek(stat.st_size // 2)
        middle = handle.read(16)
        handle.seek(stat.st_size // 2)
        handle.write(bytes(b ^ 0xFF for b in middle))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert (weights.stat().st_size, weights.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    after = model_fingerprint(model_dir, memo=cache)
    assert after != before and after == model_fingerprint(model_dir)   # memo and a full hash agree


def test_tokenizer_and_chat_template_are_in_the_fingerprint_but_not_the_model_card(model_dir):
    before = model_fingerprint(model_dir)
    (model_dir / "card.json").write_text("{}")
    (model_dir / "README.md").write_text("regenerated card")
    assert model_fingerprint(model_dir) == before
    template = model_dir / "chat_template.jinja"
    template.write_text(template.read_text() + " ")
    assert model_fingerprint(model_dir) != before


def test_the_memo_hashes_each_file_once_until_it_changes(model_dir, tmp_path, monkeypatch):
    hashed = []
    full_hash = gencache.sha256_file
    monkeypatch.setattr(gencache, "sha256_file", lambda path: hashed.append(path.name) or full_hash(path))
    path = tmp_path / "cache" / "generations.sqlite"
    files = len(gencache.model_files(model_dir))
    model_fingerprint(model_dir, memo=GenerationCache(path, code=CODE))
    model_fingerprint(model_dir, memo=GenerationCache(path, code=CODE))
    assert len(hashed) == 2 * files   # just written: too fresh to trust its ctime, not memoised

    monkeypatch.setattr(gencache, "RACY_WINDOW_NS", -10**12)
    hashed.clear()
    first = model_fingerprint(model_dir, memo=GenerationCache(path, code=CODE))
    assert len(hashed) == files
    hashed.clear()
    assert model_fingerprint(model_dir, memo=GenerationCache(path, code=CODE)) == first   # a new run: memo on disk
    assert hashed == []
    os.utime(model_dir / "config.json")
    assert model_fingerprint(model_dir, memo=GenerationCache(path, code=CODE)) == first
    assert hashed == ["config.json"]


def test_code_versions_dtype_and_device_each_change_the_key():
    versions = {"torch": "2.5.0", "transformers": "5.24.0"}
    config = {"max_new_tokens": 8, "do_sample": False, "dtype": "torch.float32", "device": "cpu"}

    def key(source="a", config=config, **changed):
        return generation_key("model", "kv4", "prompt", "image", config, code_hash(source, {**versions, **changed}))

    keys = [key(), key(source="b"), key(torch="2.6.0"), key(transformers="5.25.0"),
            key(config={**config, "dtype": "torch.float16"}), key(config={**config, "device": "cuda:NVIDIA H200"})]
    assert len(set(keys)) == len(keys)
    assert key() == key()


def test_the_code_hash_covers_every_generating_module_and_no_report_module(tmp_path):
    """A copy of the two packages, hashed in a fresh process after each edit: a new file or an edit under
    quant/kernels/, in the engine or in the shapes world (AWQ's calibration scenes) moves the hash; an
    edit to the report does not."""
    root = Path(__file__).resolve().parents[1]
    for package in ("quant", "pytest_lvlmbench"):
        shutil.copytree(root / package, tmp_path / package, ignore=shutil.ignore_patterns("models", "__pycache__"))

    def source_hash() -> str:
        return subprocess.run([sys.executable, "-c", "from pytest_lvlmbench.engine.gencache import source_hash; "
                               "print(source_hash())"], cwd=tmp_path, capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONPATH": str(tmp_path)}).stdout.strip()

    def edited(relative: str) -> str:
        with open(tmp_path / relative, "a") as out:
            out.write("\n# edited\n")
        return source_hash()

    seen = [source_hash()]
    for relative in ("quant/kernels/decode_attention.py", "pytest_lvlmbench/engine/session.py",
                     "pytest_lvlmbench/tasks/shapes/world.py"):
        seen.append(edited(relative))
    (tmp_path / "quant" / "kernels" / "new_kernel.py").write_text("X = 1\n")
    seen.append(source_hash())
    assert len(set(seen)) == len(seen)
    assert edited("pytest_lvlmbench/report/tables.py") == seen[-1]


# ------------------------------------------------------------------ integrity
def test_a_tampered_entry_is_rejected_and_counted(tmp_path):
    path = tmp_path / "generations.sqlite"
    cache = GenerationCache(path, code=CODE)
    cache.put_many({f"k{i}": Generated(f"answer {i}", 10, 20) for i in range(4)})
    with sqlite3.connect(path) as db:
        db.execute("UPDATE generations SET answer = 'forged' WHERE key = 'k0'")
        db.execute("UPDATE generations SET kv_bytes = 11 WHERE key = 'k1'")
        db.execute("UPDATE generations SET answer = CAST(X'FF00' AS TEXT) WHERE key = 'k2'")   # not UTF-8
    assert set(cache.get_many(["k0", "k1", "k2", "k3"])) == {"k3"} and cache.rejected == 3
    other_code = GenerationCache(path, code="another code hash")
    assert other_code.get_many(["k3"]) == {} and other_code.rejected == 1


# ------------------------------------------------------------------ faults
def _raises(match, *args, **kwargs):
    with pytest.raises(GenerationCacheError, match=match) as caught:
        GenerationCache(*args, **kwargs)
    error = caught.value   # a ValueError with no sqlite3 traceback chained to it
    assert isinstance(error, ValueError) and error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    return str(caught.value)


def test_a_file_where_the_cache_directory_should_be_is_named(tmp_path):
    (tmp_path / "cache").write_text("not a directory")
    message = _raises("is a file where a directory is needed", tmp_path / "cache" / "generations.sqlite")
    assert str(tmp_path / "cache") in message and "--lvlm-cache DIR" in message


def test_a_directory_where_the_cache_file_should_be_is_named(tmp_path):
    (tmp_path / "generations.sqlite").mkdir()
    assert "delete it or pass --lvlm-cache DIR" in _raises("is a directory", tmp_path / "generations.sqlite")


def test_a_file_that_is_not_sqlite_is_corrupt(tmp_path):
    path = tmp_path / "generations.sqlite"
    path.write_bytes(b"these are not the answers you are looking for" * 100)
    assert str(path) in _raises("corrupt or truncated.*delete it", path)


def test_a_truncated_cache_is_refused_at_open(tmp_path):
    path = tmp_path / "generations.sqlite"
    cache = GenerationCache(path, code=CODE)
    cache.put_many({f"key {i}": Generated("an answer of some length " * 4, i, i) for i in range(2000)})
    cache.close()   # the last connection checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    _raises("corrupt or truncated", path)


def test_the_previous_versions_table_is_migrated_with_a_warning(tmp_path):
    path = tmp_path / "generations.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE generations (key TEXT PRIMARY KEY, answer TEXT NOT NULL, "
                   "kv_bytes INTEGER NOT NULL, kv_float_bytes INTEGER NOT NULL)")
        db.execute("INSERT INTO generations VALUES ('k', 'yes', 0, 0)")
    with pytest.warns(UserWarning, match="older version of lvlmbench.*migrated, its 1 answers dropped"):
        cache = GenerationCache(path, code=CODE)
    assert len(cache) == 0 and cache.get_many(["k"]) == {}
    cache.put_many({"k": Generated("no")})
    assert cache.get_many(["k"])["k"].answer == "no"


def test_a_foreign_table_of_the_same_name_is_refused(tmp_path):
    path = tmp_path / "generations.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE generations (id INTEGER, payload BLOB)")
    message = _raises("has a table 'generations' with columns.*not migrated.*delete it", path)
    assert str(path) in message and "--lvlm-cache DIR" in message


def test_a_read_only_cache_is_refused_with_the_fix(tmp_path, monkeypatch):
    path = tmp_path / "cache" / "generations.sqlite"
    GenerationCache(path, code=CODE).close()
    path.chmod(0o444)
    if os.geteuid() == 0:   # root writes through permission bits: let access() answer as for a user
        access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, **kw: access(p, mode, **kw) and not (
            mode & os.W_OK and os.fspath(p) == os.fspath(path)))
    try:
        _raises("read-only.*make it writable.*--lvlm-cache DIR", path)
    finally:
        path.chmod(0o644)


def test_a_lock_held_past_the_busy_timeout_is_named(tmp_path):
    path = tmp_path / "generations.sqlite"
    GenerationCache(path, code=CODE).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        cache = GenerationCache(path, code=CODE, busy_timeout=0.2)   # readers are not blocked in WAL mode
        start = time.monotonic()
        with pytest.raises(GenerationCacheError, match=r"locked by another process for more than 0.2 s.*"
                                                       r"--lvlm-cache DIR") as caught:
            cache.put_many({"k": Generated("yes")})
        assert time.monotonic() - start < 5 and str(path) in str(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
