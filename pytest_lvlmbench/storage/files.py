"""Writing the run's files: atomically (a temporary file beside the target, then :func:`os.replace`),
so a crash never leaves half a report or saved run; :func:`check_writable` lets the plugin refuse an
unwritable ``--lvlm-report`` / ``--lvlm-plot`` / ``--lvlm-save`` path at configure time, before the run.
Standard library only: the plugin checks paths without importing torch."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def check_writable(path: Path, option_name: str) -> None:
    """ValueError naming the option, the path and why a file cannot be written there; a missing
    directory is created (that is what a later write would do)."""
    path = Path(path)

    def fail(why: str):
        return ValueError(f"{option_name} {path}: cannot write there: {why}")

    if path.is_dir():
        raise fail("it is a directory; give a file path")
    existing = next(p for p in [path.parent, *path.parent.parents] if p.exists() or p == p.parent)
    if existing.exists() and not existing.is_dir():
        raise fail(f"{existing} is a file, not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise fail(f"cannot create directory {path.parent} ({error.strerror or error})") from None
    try:
        handle, probe = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".probe")
    except OSError as error:
        raise fail(f"directory {path.parent} is not writable ({error.strerror or error})") from None
    os.close(handle)
    os.unlink(probe)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``: readers see
    the old file or the new one, never half of one. Missing directories are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)   # what a plain open() would have made, not mkstemp's 0600
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())
