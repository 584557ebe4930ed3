"""Saved runs: ``--lvlm-save NAME`` stores a run as JSON under the cache directory
(``.lvlmbench/runs/NAME.json``), ``--lvlm-compare NAME`` fails tests whose metrics got worse than it.

Saving never loses data. A save *merges* into an existing run of that name: each record of this
run replaces the saved record of the same (model, setting, task), every other saved record is
kept, so a ``-k`` subset saved after a full run updates just its own records. The file's header
(machine and library versions, ``limit``, ``seed``, ``resamples``) stays the saved run's; its
``models`` list grows, and ``saves`` lists each save with its machine and counts. Records made at
another ``--lvlm-limit``, ``--lvlm-seed`` or dtype are not comparable, so such a merge is refused
(ValueError naming both values), as is overwriting a file that is not a readable saved run. The
file is written to a temporary file beside it and renamed over it (:func:`os.replace`), so an
interrupted save leaves the previous file whole. The plugin prints
``run saved as 'NAME' (N records: M new, K replaced, J kept)``.

Comparing refuses a saved run made at another ``--lvlm-limit``, seed or dtype (ValueError at
configure time naming both values) and a file that is not a saved run (bad JSON, no ``records``).
A test whose record the saved run lacks fails ("not compared"): a gate that cannot compare must
not pass silently; save the missing records with ``--lvlm-save NAME`` (saves merge). The terminal
summary lists every record and metric that was not compared.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..metrics import higher_is_better
from ..core.records import Record, worsening


def runs_dir(cache_dir: Path) -> Path:
    return cache_dir / "runs"


def run_path(cache_dir: Path, name: str) -> Path:
    return runs_dir(cache_dir) / f"{name}.json"


def entry_key(entry: dict) -> tuple[str, str, str]:
    """(model, setting, task) of a record as stored in JSON: the same key as ``Record.key``."""
    return entry["model"], entry["setting"], entry["task"]


def record_id(key: tuple[str, str, str]) -> str:
    """``model-setting-task``: the test id's parameter part."""
    return "-".join(key)


def read_saved(path: Path) -> dict:
    """The JSON of a saved run, checked; ValueError names the file and what is wrong with it."""
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise ValueError(f"cannot read saved run {path}: {error.strerror or error}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"saved run {path} is not valid JSON ({error}); delete it or save the run again") from None
    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise ValueError(f"saved run {path} has no 'records' list; it is not a run saved by --lvlm-save")
    for i, entry in enumerate(data["records"]):
        if not (isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("model", "setting", "task"))
                and isinstance(entry.get("metrics"), dict)):
            raise ValueError(f"saved run {path}: record {i} lacks model, setting, task or metrics")
    return data


def _shown(option: str, value) -> str:
    return f"no {option} (every sample)" if option == "--lvlm-limit" and value is None else f"{option} {value}"


def incomparable(data: dict, options, name: str, path: Path, doing: str) -> str | None:
    """Why this run cannot be compared with / merged into a saved run, naming both values; None if it can."""
    checks = [(option, key, data[key], now) for option, key, now in
              (("--lvlm-limit", "limit", options.limit), ("--lvlm-seed", "seed", options.seed)) if key in data]
    machine = data.get("machine")
    if isinstance(machine, dict) and "dtype" in machine:
        checks.append(("--lvlm-dtype", "dtype", machine["dtype"], options.dtype_name))
    for option, key, before, now in checks:
        if before != now:
            return (f"cannot {doing} saved run {name!r} ({path}): it was made with {_shown(option, before)}, "
                    f"this run uses {_shown(option, now)}; records at different {key}s are not comparable")
    return None


class SavedRun:
    """A run stored by ``--lvlm-save NAME`` (JSON under the cache directory), compared against by
    ``--lvlm-compare NAME``: like pytest-benchmark's --benchmark-compare-fail, but a metric fails
    when it got *worse* by its own direction, never merely because it moved."""

    @classmethod
    def load(cls, cache_dir: Path, name: str, tolerance: float = 0.0, options=None) -> SavedRun:
        """ValueError when there is no such run, it is malformed, or (given ``options``) it was made
        at another --lvlm-limit, seed or dtype."""
        return cls(name, run_path(cache_dir, name), tolerance, options)

    def __init__(self, name: str, path: Path, tolerance: float = 0.0, options=None) -> None:
        if not path.exists():
            saved = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.exists() else []
            raise ValueError(f"no saved run {name!r} at {path}; saved runs: {saved or 'none'} "
                             "(store one with --lvlm-save NAME)")
        data = read_saved(path)
        if options is not None:
            why = incomparable(data, options, name, path, "compare with")
            if why:
                raise ValueError(why)
        self.name, self.path, self.tolerance = name, path, tolerance
        self.metrics = {entry_key(r): r["metrics"] for r in data["records"]}

    def breaches(self, record: Record) -> list[str]:
        saved = self.metrics.get(record.key)
        if saved is None:
            return [f"{record.task}: not compared: saved run {self.name!r} has no record of "
                    f"{record_id(record.key)} (add it with --lvlm-save {self.name}; saves merge)"]
        out = []
        for metric, value in record.metrics.items():
            if metric not in saved or higher_is_better(metric) is None:
                continue
            drop = worsening(metric, saved[metric], value)
            if drop > self.tolerance + 1e-12:
                out.append(f"{record.task} {metric} = {value:.4f} is {drop:.4f} worse than saved run "
                           f"{self.name!r} ({saved[metric]:.4f}); allowed {self.tolerance:.4f}")
        return out

    def not_compared(self, records) -> list[str]:
        """One line per record the saved run has no record of (its test failed) and per directed
        metric its saved record lacks (not gated), for the terminal summary."""
        out = []
        for record in records:
            saved = self.metrics.get(record.key)
            if saved is None:
                out.append(f"not compared: {record_id(record.key)}: no record in saved run {self.name!r}")
                continue
            missing = [m for m in record.metrics if m not in saved and higher_is_better(m) is not None]
            if missing:
                out.append(f"not compared: {record_id(record.key)} {', '.join(missing)}: "
                           f"not in the saved record of run {self.name!r}")
        return out


@dataclass(frozen=True)
class Saved:
    """What :func:`save_run` did."""

    name: str
    path: Path
    new: int
    replaced: int
    kept: int

    @property
    def records(self) -> int:
        return self.new + self.replaced + self.kept

    def message(self) -> str:
        return (f"run saved as {self.name!r} ({self.records} records: {self.new} new, {self.replaced} replaced, "
                f"{self.kept} kept) in {self.path}")


def check_save(options) -> None:
    """At configure time: ValueError if ``--lvlm-save NAME`` could not merge into the saved run of
    that name (malformed file; another limit, seed or dtype) or cannot write there."""
    if not options.save:
        return
    from .files import check_writable

    path = run_path(options.cache_dir, options.save)
    if path.exists() and not path.is_dir():
        why = incomparable(read_saved(path), options, options.save, path, "merge this run into")
        if why:
            raise ValueError(why + " (save under another name)")
    check_writable(path, "--lvlm-save")


def save_run(now: dict, machine: dict, options, name: str) -> Saved:
    """Merge a run's JSON report ``now`` (:func:`~..report.documents.report_json`) into saved run ``name``
    (see the module docstring), atomically; ``machine``: where this save was made."""
    from .files import atomic_write_text

    path = run_path(options.cache_dir, name)
    if not path.exists():
        data, new, replaced, kept = now, len(now["records"]), 0, 0
    else:
        data = read_saved(path)
        why = incomparable(data, options, name, path, "merge this run into")
        if why:
            raise ValueError(why + " (save under another name)")
        incoming = {entry_key(r): r for r in now["records"]}
        old = {entry_key(r): r for r in data["records"]}
        replaced = len(incoming.keys() & old.keys())
        new = len(incoming) - replaced
        kept = len(old) - replaced
        merged = dict(old)
        merged.update(incoming)   # replaced records keep their saved position, new ones go last
        data["records"] = list(merged.values())
        data["models"] = list(dict.fromkeys([*data.get("models", []), *now["models"]]))
    saves = data.setdefault("saves", [])
    if isinstance(saves, list):
        saves.append({"machine": machine, "new": new, "replaced": replaced, "kept": kept})
    atomic_write_text(path, json.dumps(data, indent=1))
    return Saved(name, path, new, replaced, kept)


def shard_of(key: tuple[str, str, str], count: int) -> int:
    """Which of ``count`` shards runs (model, setting, task): a hash of the key, so every host agrees
    without seeing the others' grids (``--lvlm-shard I/N`` runs shard I - 1)."""
    return int(hashlib.sha256("\0".join(key).encode()).hexdigest(), 16) % count


# what must agree between runs merged into one report, and between two copies of one record
MERGE_HEADER = ("limit", "seed", "resamples")
SAME_RECORD = ("metrics", "intervals", "p_values", "predictions", "samples", "code", "fingerprint")


def merge_runs(paths: list[Path]) -> tuple[dict, list[Record]]:
    """Saved runs (``--lvlm-save``, e.g. one per shard or host) combined into one: (the first run's
    header, every record once). ValueError, naming both files, when runs differ in limit, seed,
    resamples or dtype, in the code version or model fingerprint of their records, or hold two
    different versions of one record (a baseline that every shard evaluated must agree)."""
    if not paths:
        raise ValueError("--lvlm-merge needs at least one saved run (a JSON file written by --lvlm-save)")
    merged: dict[tuple[str, str, str], dict] = {}
    origin: dict[tuple[str, str, str], Path] = {}
    first, first_path = None, None
    codes: dict[str, tuple[str, Path]] = {}
    for path in map(Path, paths):
        data = read_saved(path)
        if first is None:
            first, first_path = data, path
        for key in MERGE_HEADER:
            if data.get(key) != first.get(key):
                raise ValueError(f"cannot merge {path} with {first_path}: {key} {data.get(key)!r} vs {first.get(key)!r}")
        dtypes = {d.get("machine", {}).get("dtype") for d in (data, first)}
        if len(dtypes) > 1:
            raise ValueError(f"cannot merge {path} with {first_path}: dtype {' vs '.join(map(str, dtypes))}")
        for entry in data["records"]:
            key = entry_key(entry)
            for field_name in ("code", "fingerprint"):
                value = entry.get(field_name, "")
                seen = codes.setdefault(f"{field_name} {entry['model'] if field_name == 'fingerprint' else ''}",
                                        (value, path))
                if value != seen[0]:
                    raise ValueError(f"cannot merge {path} with {seen[1]}: their records of {entry['model']} have "
                                     f"another {'code version' if field_name == 'code' else 'model fingerprint'} "
                                     f"({value[:12] or 'none'} vs {seen[0][:12] or 'none'})")
            if key in merged:
                different = [f for f in SAME_RECORD if merged[key].get(f) != entry.get(f)]
                if different:
                    raise ValueError(f"cannot merge {path} with {origin[key]}: record {record_id(key)} differs in "
                                     f"{', '.join(different)}")
                continue
            merged[key], origin[key] = entry, path
    fields = set(Record.__dataclass_fields__)
    return first, [Record(**{"predictions": [], **{k: v for k, v in entry.items() if k in fields}})
                   for entry in merged.values()]
