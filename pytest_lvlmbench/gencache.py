"""A persistent generation cache: interrupted runs resume, re-runs cost nothing.

Answers are keyed by everything that decides them — model fingerprint, compression id, prompt,
image hash, generation config and code version — and stored in one SQLite file in WAL mode, so
several pytest-xdist workers can read and write it at once.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

from PIL import Image

BUSY_TIMEOUT_S = 120  # how long a writer waits for another one
CODE_VERSION = "1"  # bump when prompting or answer post-processing changes


def image_hash(image: Image.Image) -> str:
    digest = hashlib.sha256(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def model_fingerprint(directory: str | Path) -> str:
    """Config plus the size, head and tail of every weight file: cheap even for 7B checkpoints."""
    root = Path(directory)
    digest = hashlib.sha256((root / "config.json").read_bytes())
    for weights in sorted(root.glob("*.safetensors")):
        size = weights.stat().st_size
        digest.update(f"{weights.name}{size}".encode())
        with weights.open("rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, size - (1 << 20)))
            digest.update(handle.read())
    return digest.hexdigest()[:16]


def generation_key(model: str, compression: str, prompt: str, image: str, config: Mapping[str, object]) -> str:
    payload = json.dumps([model, compression, prompt, image, dict(sorted(config.items())), CODE_VERSION])
    return hashlib.sha256(payload.encode()).hexdigest()


class Generated(NamedTuple):
    """An answer and the KV cache of the batch that produced it: bytes as stored, and the
    bytes the same tokens take in the model's float dtype (their ratio is what the setting saved)."""

    answer: str
    kv_bytes: int = 0
    kv_float_bytes: int = 0


class GenerationCache:
    """key -> Generated, in SQLite; safe for concurrent writers."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        self._enable_wal()
        self._db.execute("CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, answer TEXT NOT NULL, "
                         "kv_bytes INTEGER NOT NULL, kv_float_bytes INTEGER NOT NULL)")

    def _enable_wal(self) -> None:
        """Switch to WAL, waiting out other processes doing the same on a fresh file: SQLite answers
        "database is locked" at once there (no busy wait: two connections each want the exclusive
        lock), so retry until the first switch is done or the busy timeout is spent."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def get_many(self, keys: Iterable[str]) -> dict[str, Generated]:
        keys = list(keys)
        found: dict[str, Generated] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows = self._db.execute("SELECT key, answer, kv_bytes, kv_float_bytes FROM generations "
                                    f"WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            found.update((key, Generated(*rest)) for key, *rest in rows.fetchall())
        return found

    def put_many(self, answers: Mapping[str, Generated]) -> None:
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO generations VALUES (?, ?, ?, ?)",
                                 [(key, *value) for key, value in answers.items()])

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]

    def close(self) -> None:
        self._db.close()
