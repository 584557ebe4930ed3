"""A persistent generation cache: interrupted runs resume, re-runs cost nothing, and a stale or
corrupt answer is never served.

**The key** (:func:`generation_key`) covers everything that decides an answer:

- the model fingerprint (:func:`model_fingerprint`): a full SHA-256 of every file transformers reads
  to build the model and its prompts (``MODEL_FILES``: config, generation config, every
  ``*.safetensors`` shard, tokenizer, processor and chat-template files; not README/card/training
  notes). Each file's digest is memoised in the cache's ``file_hashes`` table (see
  :meth:`GenerationCache.file_sha256`), so a 14 GB checkpoint is read once. A hub id (not a local
  directory) is its id plus the commit of the locally cached snapshot when there is one
  (``owner/name@<sha>``), else the bare id (:func:`hub_fingerprint`);
- the compression id, the prompt text, the image's pixels, the generation config (max new tokens,
  sampling, dtype, device kind incl. GPU name: :func:`device_kind`);
- the code hash (:func:`code_hash`): sources that run between the prompt and the stored answer
  (:func:`source_hash`) plus the versions of the libraries doing it (:func:`runtime_versions`).

The previous version's table (no code hash, no checksum) is migrated with a warning: dropped and
recreated, since no key of this version can match its rows.

**Integrity**: each row stores the code hash and a SHA-256 of (key, answer, kv bytes, code hash).
A row whose checksum or code hash does not match (bit rot, hand edits, an undecodable answer) is
treated as missing, so it is regenerated and overwritten, and counted in
:attr:`GenerationCache.rejected`.

**Faults** raise :class:`GenerationCacheError` (a ValueError naming the path and the fix), never a raw
sqlite3 error: a file where a directory must be (or the reverse), a corrupt or truncated file
(``PRAGMA quick_check`` at open, and any later SQLite corruption error), a table of the same name
with other columns (refused, not migrated: not a cache this version wrote), a read-only file or
directory (refused, not used read-only: a run that cannot store answers loses resume and
regenerates everything on every re-run without saying so), and ``database is locked``
beyond the busy timeout.

One SQLite file in WAL mode, so several pytest-xdist workers can read and write it at once.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import sqlite3
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

from PIL import Image

BUSY_TIMEOUT_S = 120  # how long a writer waits for another one
FIX = "delete it (answers are regenerated) or pass --lvlm-cache DIR"

# Files of a local model directory that can change an answer: weights and config build the model,
# generation_config its defaults, tokenizer/processor/chat-template files the prompt's tokens and pixels.
MODEL_FILES = ("config.json", "generation_config.json", "*.safetensors", "*.safetensors.index.json",
               "tokenizer*", "special_tokens_map.json", "added_tokens.json", "vocab.*", "merges.txt", "*.model",
               "*processor_config.json", "chat_template*", "additional_chat_templates/*")
HASH_CHUNK = 8 << 20
# A file changed within this long before it was hashed may change again without a new ctime (coarse
# filesystem clocks): its digest is used but not memoised, as git treats "racily clean" entries.
RACY_WINDOW_NS = 2_000_000_000

# The modules that turn a prompt into a stored answer (see source_hash): hashed with every package-internal
# module they import, found through the ast; quant/ and engine/ are hashed whole, recursively.
GENERATION_ROOTS = ("engine/generation.py", "engine/calibration.py", "engine/models.py", "engine/gencache.py")
VERSIONED = ("torch", "transformers", "tokenizers", "pillow", "numpy")

GENERATIONS_COLUMNS = ("key", "answer", "kv_bytes", "kv_float_bytes", "code", "checksum")
FILE_HASH_COLUMNS = ("path", "size", "mtime_ns", "ctime_ns", "inode", "device", "sha256")
SCHEMA = {
    "generations": "CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, answer TEXT NOT NULL, "
                   "kv_bytes INTEGER NOT NULL, kv_float_bytes INTEGER NOT NULL, code TEXT NOT NULL, "
                   "checksum TEXT NOT NULL)",
    "file_hashes": "CREATE TABLE IF NOT EXISTS file_hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                   "mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, "
                   "device INTEGER NOT NULL, sha256 TEXT NOT NULL)",
    "measurements": "CREATE TABLE IF NOT EXISTS measurements (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
                    "code TEXT NOT NULL)",
}
COLUMNS = {"generations": GENERATIONS_COLUMNS, "file_hashes": FILE_HASH_COLUMNS,
           "measurements": ("key", "value", "code")}
V1_COLUMNS = ("key", "answer", "kv_bytes", "kv_float_bytes")   # the table before code hash and checksum


class GenerationCacheError(ValueError):
    """The generation cache cannot be used; the message names the file and what to do."""


# ------------------------------------------------------------------ key parts
def image_hash(image: Image.Image | None) -> str:
    """SHA-256 of a picture's mode, size and pixels; "no image" for a text-only question."""
    if image is None:
        return "no image"
    digest = hashlib.sha256(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """Streaming SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def model_files(directory: str | Path) -> list[Path]:
    root = Path(directory)
    return sorted({path for pattern in MODEL_FILES for path in root.glob(pattern) if path.is_file()})


def model_fingerprint(directory: str | Path, memo: GenerationCache | None = None) -> str:
    """SHA-256 over the name and full SHA-256 of every file in ``MODEL_FILES``; with ``memo``, each
    file's digest comes from the cache's memo table when the file is unchanged."""
    root = Path(directory)
    digest = hashlib.sha256()
    for path in model_files(root):
        file_digest = memo.file_sha256(path) if memo is not None else sha256_file(path)
        digest.update(f"{path.relative_to(root).as_posix()}\0{file_digest}\n".encode())
    return digest.hexdigest()


def hub_fingerprint(repo_id: str) -> str:
    """``owner/name@<commit>`` of the snapshot the local Hugging Face cache resolves ``main`` to, or
    the bare id when it has none (no download here). Cheap but not complete: if the hub's ``main``
    moves after this and the run downloads the new one, that run's answers carry the old commit."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - no hub library or a malformed cache: the id alone
        found = None
    return f"{repo_id}@{Path(found).parent.name}" if isinstance(found, str) else repo_id


def device_kind(device: str) -> str:
    """What of the device can change an answer: its type and, on CUDA, the GPU model (kernels
    differ across architectures); not its index, so xdist workers on identical GPUs share answers."""
    if device.startswith("cuda"):
        import torch

        return f"cuda:{torch.cuda.get_device_name(device)}"
    return device


def runtime_versions() -> dict[str, str]:
    """Versions of the libraries that compute an answer: torch (kernels), transformers (model code,
    generate), tokenizers (prompt tokens), pillow and numpy (image preprocessing)."""
    versions = {}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def _imported_files(path: Path, package: Path) -> set[Path]:
    """The package-internal modules ``path`` imports (module level or inside functions), read with ast."""
    here = path.relative_to(package.parent).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(here[:len(here) - (node.level - 1)]) + (node.module.split(".") if node.module else [])
            for target in [base] + [base + [alias.name] for alias in node.names]:
                for candidate in (Path(package.parent, *target).with_suffix(".py"),
                                  Path(package.parent, *target, "__init__.py")):
                    if candidate.is_file():
                        found.add(candidate)
    return found


def generation_files() -> list[Path]:
    """Every file between the prompt text and the stored answer: quant/ and pytest_lvlmbench/engine/
    recursively (compression, kernels, models, prompts, batching, the generate call), and every module
    of the package that the generation roots import, transitively (e.g. the shapes world that draws
    AWQ's calibration scenes). No hand-kept list: a new module under quant/kernels/ is in at once."""
    package = Path(__file__).resolve().parents[1]
    spec = importlib.util.find_spec("quant")   # located, not imported (that would import torch)
    quant_dir = Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None
    files = set(quant_dir.rglob("*.py")) if quant_dir else set()
    files |= set((package / "engine").rglob("*.py"))
    todo = [package / root for root in GENERATION_ROOTS]
    while todo:
        path = todo.pop()
        for found in _imported_files(path, package) - files:
            files.add(found)
            todo.append(found)
    return sorted(files)


@functools.cache
def source_hash() -> str:
    """SHA-256 of the code between a prompt and its stored answer (:func:`generation_files`), each file
    named by its path under its package's parent. Task prompt text and images need no code hash: they
    are in the key themselves. Scoring, records and reports are outside it: editing them keeps the cache."""
    digest = hashlib.sha256()
    for path in generation_files():
        digest.update(f"{path.parent.name}/{path.name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def code_hash(source: str | None = None, versions: Mapping[str, str] | None = None) -> str:
    """The code version of an answer: :func:`source_hash` plus :func:`runtime_versions`."""
    payload = [source if source is not None else source_hash(),
               dict(sorted((versions if versions is not None else runtime_versions()).items()))]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()


def generation_key(model: str, compression: str, prompt: str, image: str, config: Mapping[str, object],
                   code: str | None = None) -> str:
    """``config`` holds the generation settings and the runtime (dtype, :func:`device_kind`);
    ``code`` is :func:`code_hash` unless given."""
    payload = json.dumps([model, compression, prompt, image, dict(sorted(config.items())),
                          code if code is not None else code_hash()])
    return hashlib.sha256(payload.encode()).hexdigest()


def entry_checksum(key: str, answer: str, kv_bytes: int, kv_float_bytes: int, code: str) -> str:
    return hashlib.sha256(json.dumps([key, answer, kv_bytes, kv_float_bytes, code]).encode()).hexdigest()


class Generated(NamedTuple):
    """An answer and the KV cache of the batch that produced it: bytes as stored, and the
    bytes the same tokens take in the model's float dtype (their ratio is what the setting saved)."""

    answer: str
    kv_bytes: int = 0
    kv_float_bytes: int = 0


# ------------------------------------------------------------------ the cache
def enable_wal(db: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch a connection to WAL, waiting out other processes doing the same on a fresh file: SQLite
    answers "database is locked" at once there (no busy wait: two connections each want the exclusive
    lock), so retry until the first switch is done or the busy timeout is spent."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class GenerationCache:
    """key -> Generated, in SQLite; safe for concurrent writers. ``code`` is the code hash each
    entry carries (:func:`code_hash` unless given); ``rejected`` counts entries found corrupt."""

    def __init__(self, path: str | Path, code: str | None = None, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._code = code
        self.rejected = 0
        self._check_path()
        with self._translated():
            self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None)
        self._db.text_factory = bytes   # decoded here: an undecodable answer is a rejected entry, not a crash
        try:
            with self._translated():
                enable_wal(self._db, self.busy_timeout)
                self._check_integrity()
                self._check_schema()
        except GenerationCacheError:
            self._db.close()
            raise

    @property
    def code(self) -> str:
        if self._code is None:
            self._code = code_hash()
        return self._code

    # -------------------------------------------------------------- faults
    def _check_path(self) -> None:
        for parent in reversed(self.path.parents):
            if parent.exists() and not parent.is_dir():
                raise GenerationCacheError(f"generation cache {self.path}: {parent} is a file where a directory is "
                                           "needed; delete it or pass --lvlm-cache DIR")
        if self.path.is_dir():
            raise GenerationCacheError(f"generation cache {self.path} is a directory, not an SQLite file; "
                                       "delete it or pass --lvlm-cache DIR")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise GenerationCacheError(f"generation cache {self.path}: cannot create {self.path.parent} "
                                       f"({error.strerror or error}); pass --lvlm-cache DIR on a writable disk") from None
        for target in (self.path.parent, self.path):
            if target.exists() and not os.access(target, os.W_OK):
                raise GenerationCacheError(self._read_only_message(target))

    def _read_only_message(self, target: Path | None = None) -> str:
        what = f"{target} is read-only" if target is not None else "it is read-only"
        return (f"generation cache {self.path}: {what}; the cache must be writable (answers are stored as they "
                f"are generated, for resume): make it writable (chmod u+w) or pass --lvlm-cache DIR on a writable disk")

    def _message(self, error: sqlite3.Error) -> str:
        text = str(error)
        lowered = text.lower()
        if "locked" in lowered or "busy" in lowered:
            return (f"generation cache {self.path}: database is locked by another process for more than "
                    f"{self.busy_timeout:g} s (a hung run or pytest-xdist worker on the same cache?); stop it, "
                    "or pass --lvlm-cache DIR for a separate cache")
        if "readonly" in lowered or "read-only" in lowered:
            return self._read_only_message()
        if any(word in lowered for word in ("not a database", "malformed", "corrupt", "disk image")):
            return f"generation cache {self.path} is corrupt or truncated ({text}); {FIX}"
        if "no such column" in lowered or "has no column" in lowered or "no such table" in lowered:
            return f"generation cache {self.path} has an unexpected schema ({text}); {FIX}"
        if "unable to open" in lowered:
            return (f"generation cache {self.path} cannot be opened ({text}); check it is a file in a writable "
                    "directory, or pass --lvlm-cache DIR")
        return f"generation cache {self.path}: SQLite error ({text}); {FIX}"

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise GenerationCacheError(self._message(error)) from None

    def _check_integrity(self) -> None:
        """``PRAGMA quick_check``: a truncated or damaged file is refused at open (linear in the file:
        about 0.1 s for 200,000 entries), not half-way through a run."""
        problems = [row[0].decode(errors="replace") for row in self._db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise GenerationCacheError(f"generation cache {self.path} is corrupt or truncated "
                                       f"({'; '.join(problems[:3])}); {FIX}")

    def _columns(self, table: str) -> list[str]:
        return [row[1].decode() for row in self._db.execute(f"PRAGMA table_info({table})").fetchall()]

    def _check_schema(self) -> None:
        """Create the tables of a fresh file; migrate the previous version's ``generations`` table
        (:meth:`_migrate_v1`); refuse any other table of the same name without this version's columns."""
        for table, create in SCHEMA.items():
            columns = self._columns(table)
            if not columns:
                self._db.execute(create)
            elif table == "generations" and set(columns) == set(V1_COLUMNS):
                self._migrate_v1()
            elif missing := [c for c in COLUMNS[table] if c not in columns]:
                raise GenerationCacheError(f"generation cache {self.path} has a table {table!r} with columns "
                                           f"{columns}, not those of this version (missing {missing}); it is not "
                                           f"a cache this version wrote and is not migrated: {FIX}")

    def _migrate_v1(self) -> None:
        """The previous version's table (no code hash, no checksum) is dropped and recreated: its rows
        were keyed with a hand-bumped CODE_VERSION and a partial model fingerprint, so no key of this
        version can ever hit them; keeping them would only keep unverifiable answers. Warns with the count."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")   # another worker may be migrating the same file
            if set(self._columns("generations")) != set(V1_COLUMNS):
                return
            dropped = self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
            self._db.execute("DROP TABLE generations")
            self._db.execute(SCHEMA["generations"])
        warnings.warn(f"generation cache {self.path} was written by an older version of lvlmbench (answers keyed "
                      f"without code hash or checksum): migrated, its {dropped} answers dropped (no key of this "
                      "version can match them); they are regenerated as needed", stacklevel=3)

    # -------------------------------------------------------------- answers
    def get_many(self, keys: Iterable[str]) -> dict[str, Generated]:
        """The verified entries among ``keys``; corrupt ones are left out and counted in ``rejected``."""
        keys = list(keys)
        found: dict[str, Generated] = {}
        with self._translated():
            for start in range(0, len(keys), 500):
                chunk = keys[start:start + 500]
                rows = self._db.execute("SELECT key, answer, kv_bytes, kv_float_bytes, code, checksum FROM generations "
                                        f"WHERE key IN ({','.join('?' * len(chunk))})", chunk).fetchall()
                for row in rows:
                    entry = self._verified(*row)
                    if entry is None:
                        self.rejected += 1
                    else:
                        found[entry[0]] = entry[1]
        return found

    def _verified(self, key, answer, kv_bytes, kv_float_bytes, code, checksum) -> tuple[str, Generated] | None:
        try:
            key, answer, code, checksum = (v.decode() for v in (key, answer, code, checksum))
        except (AttributeError, UnicodeDecodeError):
            return None
        if not isinstance(kv_bytes, int) or not isinstance(kv_float_bytes, int) or code != self.code:
            return None
        if checksum != entry_checksum(key, answer, kv_bytes, kv_float_bytes, code):
            return None
        return key, Generated(answer, kv_bytes, kv_float_bytes)

    def put_many(self, answers: Mapping[str, Generated]) -> None:
        code = self.code
        rows = [(key, g.answer, g.kv_bytes, g.kv_float_bytes, code,
                 entry_checksum(key, g.answer, g.kv_bytes, g.kv_float_bytes, code)) for key, g in answers.items()]
        with self._translated(), self._db:
            self._db.execute("BEGIN IMMEDIATE")   # one transaction per batch: all of it is stored or none
            self._db.executemany("INSERT OR REPLACE INTO generations (key, answer, kv_bytes, kv_float_bytes, code, "
                                 "checksum) VALUES (?, ?, ?, ?, ?, ?)", rows)

    # -------------------------------------------------------------- measurements
    def put_measurement(self, key: str, value: Mapping) -> None:
        """A JSON value measured beside the answers (a quantized model's bytes), valid for this code."""
        with self._translated(), self._db:
            self._db.execute("INSERT OR REPLACE INTO measurements VALUES (?, ?, ?)",
                             (key, json.dumps(value, sort_keys=True), self.code))

    def get_measurement(self, key: str) -> dict | None:
        """The value stored under ``key`` by this code version, else None."""
        with self._translated():
            row = self._db.execute("SELECT value, code FROM measurements WHERE key = ?", (key,)).fetchone()
        if row is None or row[1].decode() != self.code:
            return None
        try:
            return json.loads(row[0].decode())
        except (UnicodeDecodeError, ValueError):
            return None

    @contextlib.contextmanager
    def claim(self, *parts: str) -> Iterator[None]:
        """Hold an exclusive lock on one piece of work (a record) across processes: the xdist worker
        that comes second waits, then finds the first one's answers in the cache instead of generating
        them again. A lock file per piece under ``locks/`` beside the database (POSIX; elsewhere no lock)."""
        try:
            import fcntl
        except ImportError:   # Windows: workers may duplicate work, never corrupt it (SQLite transactions)
            yield
            return
        locks = self.path.parent / "locks"
        locks.mkdir(exist_ok=True)
        name = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
        with open(locks / f"{name}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -------------------------------------------------------------- file digest memo
    def file_sha256(self, path: str | Path) -> str:
        """SHA-256 of a file, memoised by (path, size, mtime_ns, ctime_ns, inode, device): ctime moves on
        every write and on os.utime, so a file edited in place with its mtime put back is re-hashed.
        A file changed less than ``RACY_WINDOW_NS`` before hashing is hashed but not memoised."""
        path = Path(path).resolve()
        before = path.stat()
        identity = (before.st_size, before.st_mtime_ns, before.st_ctime_ns, before.st_ino, before.st_dev)
        with self._translated():
            row = self._db.execute("SELECT size, mtime_ns, ctime_ns, inode, device, sha256 FROM file_hashes "
                                   "WHERE path = ?", (str(path),)).fetchone()
        if row is not None and tuple(row[:5]) == identity and isinstance(row[5], bytes):
            return row[5].decode()
        started = time.time_ns()
        digest = sha256_file(path)
        after = path.stat()
        settled = max(after.st_mtime_ns, after.st_ctime_ns) < started - RACY_WINDOW_NS
        if settled and (after.st_size, after.st_mtime_ns, after.st_ctime_ns, after.st_ino, after.st_dev) == identity:
            with self._translated(), self._db:
                self._db.execute("INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?, ?, ?, ?)",
                                 (str(path), *identity, digest))
        return digest

    def __len__(self) -> int:
        with self._translated():
            return self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]

    def close(self) -> None:
        self._db.close()
