"""Real datasets: found on disk, read from their parquet files, checked against the schema a task needs.

A dataset is a Hugging Face hub dataset repository (``lmms-lab/POPE``) read the way ``datasets``
reads it (the ``configs`` of its README's YAML header name each config's data files per split), but
with pyarrow alone and never over the network, so a run on an offline machine is deterministic:

1. ``--lvlm-data-dir DIR`` (or ``LVLMBENCH_DATA_DIR``): ``DIR/<org>/<name>`` as written by
   ``huggingface-cli download --repo-type dataset <org>/<name> --local-dir DIR/<org>/<name>``;
2. the local Hugging Face hub cache (``huggingface-cli download --repo-type dataset <org>/<name>``,
   or an earlier ``datasets.load_dataset`` of the id; ``HF_HOME`` / ``HF_HUB_CACHE`` move it).

Each ``lmms-lab/`` id is also found under its ``lmms-lab-encoder/`` mirror (lmms-eval moved there in
2026). A dataset found nowhere makes its task skip with a reason that says how to get it (and where
it looked); a copy holding none of a task's samples (a subset without the rows the task selects)
skips naming the dataset and the filter; a dataset found but shaped differently from what the task
reads (a missing config, split or column, a column of another type, a picture that does not decode)
is an error naming the dataset, the column or file and the fix: never a silent wrong number.
"""

from __future__ import annotations

import bisect
import functools
import io
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MIRRORS = {"lmms-lab/": "lmms-lab-encoder/"}
KINDS = ("string", "int", "float", "bool", "image", "list<string>", "struct", "list<struct>", "any")
_data_dirs: list[Path] = []


class DatasetUnavailable(Exception):
    """The dataset is not on this machine: its tasks skip with this message."""


class DatasetSchemaError(ValueError):
    """The dataset is here but not in the shape its task reads."""


def set_data_dirs(paths: Sequence[str | Path]) -> None:
    """Directories searched before the hub cache (``--lvlm-data-dir``; ``LVLMBENCH_DATA_DIR`` is
    appended, ``os.pathsep``-separated)."""
    env = [p for p in os.environ.get("LVLMBENCH_DATA_DIR", "").split(os.pathsep) if p]
    _data_dirs[:] = [Path(p).expanduser() for p in [*paths, *env]]


def data_dirs() -> tuple[Path, ...]:
    return tuple(_data_dirs)


@dataclass(frozen=True)
class HubDataset:
    """One config and split of a hub dataset and the columns (name -> kind, see ``KINDS``) a task reads."""

    repo: str
    config: str
    split: str
    columns: Mapping[str, str]
    size_note: str = ""                 # e.g. "27 GB": said in the download advice

    def __post_init__(self) -> None:
        bad = {name: kind for name, kind in self.columns.items() if kind not in KINDS}
        if bad:
            raise ValueError(f"{self.repo}: unknown column kinds {bad}; allowed are {KINDS}")

    @property
    def repos(self) -> tuple[str, ...]:
        """The id and its mirror, in the order they are searched."""
        return (self.repo, *[self.repo.replace(org, mirror, 1) for org, mirror in MIRRORS.items()
                             if self.repo.startswith(org)])

    def __str__(self) -> str:
        return f"{self.repo} (config {self.config!r}, split {self.split!r})"

    def how_to_get(self) -> str:
        size = f" ({self.size_note})" if self.size_note else ""
        return (f"dataset {self.repo} is not downloaded{size}: run `huggingface-cli download --repo-type dataset "
                f"{self.repo}` where the hub is reachable (then HF_HUB_OFFLINE=1 / HF_DATASETS_OFFLINE=1 read it "
                f"from the cache), or pass --lvlm-data-dir DIR holding DIR/{self.repo}")


def _hub_snapshot(repo: str) -> Path | None:
    """The local hub-cache snapshot of a dataset repository, without touching the network."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo, repo_type="dataset", local_files_only=True))
    except Exception:   # not cached (LocalEntryNotFoundError and kin), or no usable cache at all
        return None


def locate(dataset: HubDataset) -> Path:
    """The directory holding the dataset's files; DatasetUnavailable (with how to get it) if none."""
    for root in data_dirs():
        for repo in dataset.repos:
            if (root / repo).is_dir():
                return root / repo
    for repo in dataset.repos:
        snapshot = _hub_snapshot(repo)
        if snapshot is not None and snapshot.is_dir():
            return snapshot
    from huggingface_hub.constants import HF_HUB_CACHE

    searched = [*(str(root / repo) for root in data_dirs() for repo in dataset.repos),
                f"the Hugging Face cache {HF_HUB_CACHE}"]
    raise DatasetUnavailable(f"{dataset.how_to_get()} (looked in {', '.join(searched)}){_misplaced_hint(dataset)}")


def _misplaced_hint(dataset: HubDataset) -> str:
    """A data directory one level too deep (``data/lmms-lab`` for ``data``, so DIR/POPE exists) or the
    dataset's own folder: say which directory to pass instead, since the layout is DIR/<org>/<name>."""
    for root in data_dirs():
        for repo in dataset.repos:
            org, name = repo.split("/", 1)
            if (root / name).is_dir():
                return (f"; {root / name} exists, but copies are read from DIR/{org}/{name}: pass its parent "
                        f"({root.parent}) as --lvlm-data-dir")
            if root.name == name and root.parent.name == org:
                return (f"; {root} is the dataset itself, but --lvlm-data-dir takes the folder holding "
                        f"{org}/{name}: pass {root.parent.parent}")
    return ""


def unavailable_reason(dataset: HubDataset) -> str | None:
    """None when the dataset is on this machine, else why not and how to get it."""
    try:
        locate(dataset)
    except DatasetUnavailable as error:
        return str(error)
    return None


def readme_configs(root: Path) -> dict[str, dict[str, list[str]]] | None:
    """{config: {split: [glob patterns]}} from the README's YAML header; None if it declares none."""
    readme = root / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end < 0:
        return None
    import yaml

    try:
        header = yaml.safe_load(text[3:end]) or {}
    except yaml.YAMLError as error:
        raise DatasetSchemaError(f"{readme}: its YAML header does not parse ({error}); re-download the dataset") \
            from None
    configs = header.get("configs") if isinstance(header, dict) else None
    if not configs:
        return None
    found: dict[str, dict[str, list[str]]] = {}
    for entry in configs:
        files = entry.get("data_files", [])
        if isinstance(files, str):
            files = [{"split": "train", "path": files}]
        splits: dict[str, list[str]] = {}
        for item in files:
            if isinstance(item, str):   # a bare path: split "train", as ``datasets`` reads it
                item = {"split": "train", "path": item}
            paths = item.get("path", [])
            splits[str(item.get("split", "train"))] = [paths] if isinstance(paths, str) else list(paths)
        found[str(entry.get("config_name", "default"))] = splits
    return found


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A hub data-files pattern as a regex over posix relative paths: ``**/`` any folders (or none),
    ``*`` and ``?`` within one folder name, ``[...]`` a character class."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            out.append(pattern[i:end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def _glob(root: Path, pattern: str) -> list[Path]:
    """Files under ``root`` (hidden folders such as .cache skipped) matching a hub-style pattern."""
    regex = pattern_regex(pattern)
    return sorted(p for p in root.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(root).parts)
                  and regex.match(p.relative_to(root).as_posix()))


def data_files(dataset: HubDataset, root: Path) -> list[Path]:
    """The parquet files of the dataset's config and split, in name order."""
    configs = readme_configs(root)
    if configs is not None:
        if dataset.config not in configs:
            raise DatasetSchemaError(f"{dataset.repo} at {root} has no config {dataset.config!r} (it has "
                                     f"{sorted(configs)}); re-download it or pass the right --lvlm-data-dir copy")
        splits = configs[dataset.config]
        if dataset.split not in splits:
            raise DatasetSchemaError(f"{dataset.repo} config {dataset.config!r} at {root} has no split "
                                     f"{dataset.split!r} (it has {sorted(splits)}); re-download it")
        files = sorted({f for pattern in splits[dataset.split] for f in _glob(root, pattern)})
    else:   # no README configs: the hub's conventions, data/<split>-*.parquet or <config>/<split>-*.parquet
        folder = "data" if dataset.config == "default" else dataset.config
        files = [f for f in _glob(root, f"{folder}/{dataset.split}[-_.]*") if f.suffix == ".parquet"]
    files = [f for f in files if f.suffix == ".parquet"]
    if not files:
        raise DatasetSchemaError(f"{dataset} at {root}: no parquet files for this split; the copy is incomplete "
                                 f"or not a parquet dataset: re-download it (huggingface-cli download "
                                 f"--repo-type dataset {dataset.repo})")
    return files


def _kind_matches(kind: str, arrow_type) -> bool:
    import pyarrow as pa

    t = pa.types
    if kind == "any":
        return True
    if kind == "string":
        return t.is_string(arrow_type) or t.is_large_string(arrow_type)
    if kind == "int":
        return t.is_integer(arrow_type)
    if kind == "float":
        return t.is_floating(arrow_type) or t.is_integer(arrow_type)
    if kind == "bool":
        return t.is_boolean(arrow_type)
    if kind == "image":
        return t.is_struct(arrow_type) and arrow_type.get_field_index("bytes") >= 0
    if kind == "struct":
        return t.is_struct(arrow_type)
    if t.is_list(arrow_type) or t.is_large_list(arrow_type):
        inner = arrow_type.value_type
        return _kind_matches(kind.removeprefix("list<").removesuffix(">"), inner)
    return False


def check_schema(dataset: HubDataset, schema, path: Path) -> None:
    """Every column the task reads is in the file with the kind it reads; else an error naming it."""
    for name, kind in dataset.columns.items():
        index = schema.get_field_index(name)
        if index < 0:
            raise DatasetSchemaError(f"{dataset}: column {name!r} ({kind}) is missing from {path.name} (it has "
                                     f"{schema.names}); the copy does not have the public schema: re-download "
                                     f"{dataset.repo}")
        if not _kind_matches(kind, schema.field(index).type):
            raise DatasetSchemaError(f"{dataset}: column {name!r} is {schema.field(index).type} in {path.name}, "
                                     f"the task reads it as {kind}; re-download {dataset.repo}")


def read_rows(dataset: HubDataset, where: Callable[[dict], bool] | None = None,
              limit: int | None = None) -> Iterator[dict]:
    """The split's rows (only the declared columns) in file order, filtered by ``where``, at most ``limit``.
    Files are read in batches, so the first rows of a 27 GB dataset cost what they weigh."""
    import pyarrow.parquet as pq

    root = locate(dataset)
    count = 0
    for path in data_files(dataset, root):
        try:
            parquet = pq.ParquetFile(path)
        except Exception as error:
            raise DatasetSchemaError(f"{dataset}: {path} is not a readable parquet file ({error}); re-download "
                                     f"{dataset.repo}") from None
        check_schema(dataset, parquet.schema_arrow, path)
        images = [name for name, kind in dataset.columns.items() if kind == "image"]
        index = -1
        for batch in parquet.iter_batches(batch_size=64, columns=list(dataset.columns)):
            for row in batch.to_pylist():
                index += 1
                if where is not None and not where(row):
                    continue
                for name in images:   # a reference, not the bytes: 27 GB of pictures stay on disk
                    if row[name] is not None:
                        row[name] = ImageRef(str(path), index, name)
                yield row
                count += 1
                if limit is not None and count >= limit:
                    return


@dataclass(frozen=True)
class ImageRef:
    """Where a row's picture is: read (and decoded) only when the picture is asked for."""

    path: str
    row: int        # the row's index in its parquet file
    column: str

    def value(self) -> Any:
        """The hub Image value ({'bytes', 'path'}) of the row."""
        start, values = _row_group_values(self.path, self.row, self.column)
        return values[self.row - start]


@functools.lru_cache(maxsize=2)
def _row_group_of(path: str) -> tuple[int, ...]:
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    starts, total = [], 0
    for group in range(metadata.num_row_groups):
        starts.append(total)
        total += metadata.row_group(group).num_rows
    return tuple(starts)


def _row_group_values(path: str, row: int, column: str) -> tuple[int, list]:
    starts = _row_group_of(path)
    group = bisect.bisect_right(starts, row) - 1
    return starts[group], _read_row_group(path, group, column)


@functools.lru_cache(maxsize=2)   # samples are read in order: one row group is decoded from at a time
def _read_row_group(path: str, group: int, column: str) -> list:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).read_row_group(group, columns=[column]).column(0).to_pylist()


def decode_image(value: Any, where: str):
    """An RGB PIL image from a hub Image value ({'bytes', 'path'}) or a reference to one. Bytes that are
    not a picture are a DatasetSchemaError naming ``where`` and, for a reference, the parquet file and
    row: pictures are decoded lazily, during generation, where the file would otherwise be unknown."""
    from PIL import Image, UnidentifiedImageError

    found = ""
    if isinstance(value, ImageRef):
        found = f" in {value.path} (row {value.row}, column {value.column!r})"
        value = value.value()
    data = value.get("bytes") if isinstance(value, Mapping) else value
    if not data:
        path = value.get("path") if isinstance(value, Mapping) else None
        raise DatasetSchemaError(f"{where}: the image{found} has no bytes (path {path!r}); the dataset must embed "
                                 "its images, as the hub's parquet files do")
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as error:
        raise DatasetSchemaError(f"{where}: the image{found} is not a readable picture ({type(error).__name__}: "
                                 f"{error}); the file is corrupt: re-download the dataset") from None
    return image.convert("RGB")


@dataclass(frozen=True)
class HubSample:
    """A :class:`~pytest_lvlmbench.tasks.Sample` read from a hub dataset; its picture is decoded when asked
    for (``image()`` is None for a text-only question, such as HallusionBench's non_image split)."""

    id: str
    question: str
    references: tuple[str, ...]
    meta: Mapping[str, Any]
    image_value: Any = field(default=None, repr=False, compare=False)
    source: str = ""

    @property
    def has_image(self) -> bool:
        return self.image_value is not None

    def image(self):
        if self.image_value is None:
            return None
        return decode_image(self.image_value, f"{self.source} item {self.id!r}")


def require_samples(samples: list[HubSample], dataset: HubDataset, selects: str,
                    limit: int | None = None) -> list[HubSample]:
    """The samples, or DatasetUnavailable when there are none: the copy on this machine holds nothing the
    task selects (a subset, another version), so the task skips naming the dataset and the filter.
    ``limit`` is the ``--lvlm-limit`` that cut the read short, named only then."""
    if samples:
        return samples
    where = f"{dataset} at {locate(dataset)}"
    if limit is not None:
        raise DatasetUnavailable(f"{where}: the rows read under --lvlm-limit {limit} hold no {selects}; "
                                 "raise --lvlm-limit or drop it")
    raise DatasetUnavailable(f"{where} holds no {selects}, so the task has nothing to evaluate: this copy is "
                             f"a subset or another version of {dataset.repo}; download the full dataset "
                             f"(huggingface-cli download --repo-type dataset {dataset.repo}) or pass "
                             "--lvlm-data-dir DIR holding a complete copy")


def hub_loader(dataset: HubDataset, to_sample: Callable[[dict], HubSample | None],
               where: Callable[[dict], bool] | None = None,
               prepare: Callable[[list[HubSample]], list[HubSample]] | None = None,
               selects: str = "rows") -> Callable[[int | None], list[HubSample]]:
    """A task's ``load``: the first ``limit`` rows (those ``where`` keeps) as samples, memoised per
    (limit, data directories). ``prepare`` sees the whole list (e.g. to keep only complete pairs).
    ``selects`` says in words what ``where`` keeps: a copy without any is DatasetUnavailable naming it
    (the limit counts kept rows, so it never causes an empty load)."""
    memo: dict[tuple, list[HubSample]] = {}

    def load(limit: int | None) -> list[HubSample]:
        key = (limit, data_dirs())
        if key not in memo:
            samples = [s for s in (to_sample(row) for row in read_rows(dataset, where, limit)) if s is not None]
            memo[key] = require_samples(prepare(samples) if prepare else samples, dataset, selects)
        return memo[key]

    return load


def available_check(*datasets: HubDataset) -> Callable[[], str | None]:
    """A task's ``available``: None when every dataset it reads is here, else the first reason."""
    def available() -> str | None:
        for dataset in datasets:
            reason = unavailable_reason(dataset)
            if reason:
                return reason
        return None
    return available
