"""Every lvlmbench option, parsed once into :class:`Options`: hooks and fixtures read only that.

Each option is a command-line flag and an ini key (``--kv-bits 4`` or ``lvlm_kv_bits = 4``); the
command line wins. :func:`options_from` is a plain function of the raw values, so tests check
validation without pytest; bad values raise ValueError naming the option, the value and what is
allowed, which the plugin turns into a usage error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from quant.layers import LayerSelection

from .core.capabilities import CAPABILITIES
from .core.options import Options
from .core.settings import settings_from_options, with_layers, with_weight_targets

DTYPES = ("auto", "float32", "float16", "bfloat16")
CALIBRATION_SOURCES = ("auto", "shapes", "coco")   # auto: shapes for the embedded models, coco otherwise
PUBLISHED_CHECKS = ("off", "warn", "fail")


def _csv(kind):
    def parse(text: str):
        return [kind(part) for part in text.split(",") if part]
    parse.__name__ = kind.__name__ + " list"
    return parse


LIST_OPTIONS = [  # (flag, ini name, type, help): repeatable or comma lists
    ("--model", "lvlm_model", str, "model alias, local directory or hub id (repeatable or comma list)"),
    ("--kv-bits", "lvlm_kv_bits", int, "KV-cache bits (2,3,4,8,16)"),
    ("--kv-method", "lvlm_kv_method", str, "KV method: uniform, group, outlier"),
    ("--weight-bits", "lvlm_weight_bits", int, "weight bits (2,3,4,8,16)"),
    ("--weight-method", "lvlm_weight_method", str, "weight method: rtn, group, awq, outlier, gptq"),
    ("--kv-evict", "lvlm_kv_evict", str, "KV eviction, alone and on each KV setting asked: <method>-b<percent kept>"
     "[-w<window>-k<kernel>...], methods streaming, h2o, snapkv, pyramidkv, adakv (e.g. snapkv-b40)"),
    ("--vtok", "lvlm_vtok", str, "visual-token pruning: fastv-k<layer>-r<percent removed>, visionzip-r<percent "
     "removed>, random-r<percent removed>, pool<factor> (e.g. fastv-k2-r50)"),
    ("--lvlm-include", "lvlm_include", str, "module name or .py file that registers extra tasks (repeatable)"),
    ("--lvlm-data-dir", "lvlm_data_dir", str, "directory with local copies of hub datasets as DIR/<org>/<name> "
     "(repeatable; searched before the Hugging Face cache)"),
    ("--lvlm-merge", "lvlm_merge", str, "saved runs (JSON files from --lvlm-save, e.g. one per shard or host) to "
     "combine into one report, then exit (repeatable or comma list)"),
]
SCALAR_OPTIONS = [  # (flag, ini name, type, default, help)
    ("--group-size", "lvlm_group_size", int, None, "group size (KIVI G / weight group)"),
    ("--residual-length", "lvlm_residual_length", int, None, "KV full-precision residual tokens"),
    ("--outlier-ratio", "lvlm_outlier_ratio", float, None, "GEAR outlier fraction (0.02 = 2%%)"),
    ("--lvlm-limit", "lvlm_limit", int, None, "samples per dataset"),
    ("--lvlm-batch-size", "lvlm_batch_size", int, 32, "generation batch size"),
    ("--lvlm-device", "lvlm_device", str, "cpu", "cpu, cuda or cuda:N"),
    ("--lvlm-dtype", "lvlm_dtype", str, "auto", "auto (float16 on GPU, float32 on CPU), float32, float16, bfloat16"),
    ("--lvlm-seed", "lvlm_seed", int, 0, "generation seed"),
    ("--lvlm-cache", "lvlm_cache", str, "ROOTDIR/.lvlmbench",
     "directory of the generation cache and saved runs (relative: to the current directory; as an ini key: to "
     "the rootdir)"),
    ("--lvlm-report", "lvlm_report", str, None, "write the JSON report here"),
    ("--lvlm-report-answers", "lvlm_report_answers", str, "no", "yes: the JSON report holds every answer"),
    ("--lvlm-report-md", "lvlm_report_md", str, None, "write a markdown report (settings x tasks, for a PR comment) here"),
    ("--lvlm-report-csv", "lvlm_report_csv", str, None, "write a CSV of every metric of every record here"),
    ("--lvlm-plot", "lvlm_plot", str, None, "write a PNG of metric vs bits per method here (needs matplotlib)"),
    ("--lvlm-thresholds", "lvlm_thresholds", str, None,
     "thresholds file (default: lvlm_thresholds.toml beside each test module)"),
    ("--lvlm-save", "lvlm_save", str, None, "store this run under NAME (in the cache directory)"),
    ("--lvlm-compare", "lvlm_compare", str, None, "fail tests whose metrics got worse than saved run NAME"),
    ("--lvlm-compare-tolerance", "lvlm_compare_tolerance", float, 0.0,
     "how much worse than the saved run a metric may get"),
    ("--lvlm-check-invariance", "lvlm_check_invariance", int, 0,
     "regenerate the first N items of every record alone and in a shuffled batch order; fail on any change"),
    ("--lvlm-judge-url", "lvlm_judge_url", str, None,
     "OpenAI-compatible endpoint of the LLM judge for MM-Vet and HallusionBench (key in LVLMBENCH_JUDGE_API_KEY)"),
    ("--lvlm-judge-model", "lvlm_judge_model", str, None, "judge model name (the official ones: gpt-4-0613)"),
    ("--lvlm-toxicity-model", "lvlm_toxicity_model", str, None,
     "local toxicity classifier directory (Detoxify-style); default: the documented lexicon scorer"),
    ("--lvlm-calibration", "lvlm_calibration", str, "auto",
     "AWQ calibration source: shapes, coco (COCO-Caption2017 test images), auto (shapes for the embedded models)"),
    ("--lvlm-published-tolerance", "lvlm_published_tolerance", float, 0.03,
     "relative gap allowed between a full-dataset FP16 baseline and its published score"),
    ("--kv-layers", "lvlm_kv_layers", str, None, "compress the KV cache of these decoder layers only: 0-7, 3, "
     "0-3,8-11, first4, last8 (the others stay full precision)"),
    ("--weight-layers", "lvlm_weight_layers", str, None, "quantize the weights of these decoder layers only"),
    ("--weight-targets", "lvlm_weight_targets", str, None,
     "parts of the model the weight settings quantize: language (default), vision (the vision tower), projector, "
     "a comma list, or all; the setting id says which (w4-group-g128-vision)"),
    ("--lvlm-layer-sweep", "lvlm_layer_sweep", int, 0,
     "N: also run every compressed setting on each block of N decoder layers alone, and rank the blocks "
     "by the drop they cause"),
    ("--lvlm-frontier", "lvlm_frontier", str, None,
     "search the cheapest settings non-inferior on these capabilities (comma list, or 'all') instead of "
     "running tests: 8, 4, 3, 2 bits in turn, stopping at the first unsafe; prints the Pareto front (--lvlm-plot draws it)"),
    ("--lvlm-shard", "lvlm_shard", str, None,
     "I/N: run only the I-th of N deterministic parts of the (model, setting, task) grid, for batch schedulers"),
    ("--lvlm-margin", "lvlm_margin", float, 0.02,
     "non-inferiority margin: how much worse than fp16 a metric may be and still count as safe "
     "(absolute; per task or metric in the thresholds file's [margin])"),
    ("--lvlm-published-check", "lvlm_published_check", str, "warn",
     "off, warn (flag in the report) or fail (fail the baseline test) when the baseline drifts from published"),
]
LISTINGS = [("--lvlm-list-tasks", "print the task registry and exit"),
            ("--lvlm-list-models", "print the model registry and exit")]


def add_options(parser) -> None:
    """Register every flag (in the ``lvlmbench`` group) and ini key on a pytest parser."""
    group = parser.getgroup("lvlmbench", "LVLM compression benchmark")
    for flag, ini, kind, help_text in LIST_OPTIONS:
        group.addoption(flag, action="extend", type=_csv(kind), default=None, help=help_text)
        parser.addini(ini, help_text, type="args")
    for flag, ini, kind, default, help_text in SCALAR_OPTIONS:
        group.addoption(flag, type=kind, default=None, help=f"{help_text} (default {default})")
        parser.addini(ini, help_text, default=None)
    for flag, help_text in LISTINGS:
        group.addoption(flag, action="store_true", default=False, help=help_text)


# ini keys naming files or directories: relative to the rootdir (where the ini file is), as pytest's
# own path keys are, so a run started from a subdirectory uses the same cache, runs and reports
INI_PATHS = ("lvlm_cache", "lvlm_merge", "lvlm_report", "lvlm_report_md", "lvlm_report_csv", "lvlm_plot", "lvlm_thresholds",
             "lvlm_data_dir", "lvlm_toxicity_model")
SAVE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def explicitly_used(getoption: Callable[[str], Any], getini: Callable[[str], Any]) -> bool:
    """Whether the command line or the ini file sets any lvlmbench option: then the run uses the
    plugin, which checks everything at configure time; otherwise it stays idle until a test uses it."""
    flags = [(flag, ini) for flag, ini, *_ in LIST_OPTIONS + SCALAR_OPTIONS] + [(flag, None) for flag, _ in LISTINGS]
    return any(getoption(_dest(flag)) not in (None, False) or (ini and getini(ini) not in (None, [], ""))
               for flag, ini in flags)


def raw_values(getoption: Callable[[str], Any], getini: Callable[[str], Any], root: Path | None = None
               ) -> dict[str, Any]:
    """{ini name: value}: the command line's value, else the ini key's (paths under ``root``), else
    the default (the cache's: None, placed under the rootdir by :func:`options_from`)."""
    values: dict[str, Any] = {}
    for flag, ini, kind, *rest in LIST_OPTIONS + SCALAR_OPTIONS:
        default = rest[0] if len(rest) == 2 else []
        value = getoption(_dest(flag))
        if value is None:
            raw = getini(ini)
            if raw in (None, [], ""):
                value = None if ini == "lvlm_cache" else default
            else:
                try:
                    value = ([kind(v) for part in raw for v in part.split(",") if v] if isinstance(raw, list)
                             else kind(raw))
                except ValueError:
                    raise ValueError(f"ini key {ini} = {raw!r} is not a valid {kind.__name__}") from None
                if ini in INI_PATHS and root is not None:
                    value = ([str(root / Path(v).expanduser()) for v in value] if isinstance(value, list)
                             else str(root / Path(value).expanduser()))
        values[ini] = value
    for flag, _ in LISTINGS:
        values[_dest(flag)] = bool(getoption(_dest(flag)))
    return values


def check_run_name(flag: str, name: str | None) -> None:
    """A saved run's name is a file name inside the runs folder, never a path."""
    if name is not None and not SAVE_NAME.fullmatch(name):
        raise ValueError(f"{flag} {name!r}: a run name is 1-100 letters, digits, '.', '_' or '-', starting with a "
                         "letter or digit (it names a file in the cache's runs/ folder, not a path)")


def options_from(values: Mapping[str, Any], worker: str | None = None, gpus: int | None = None,
                 root: Path = Path(".")) -> Options:
    """Validated Options from raw values (see :func:`raw_values`); ValueError names the bad one.
    ``root``: the rootdir, where the cache lives unless ``--lvlm-cache`` says otherwise."""
    settings = settings_from_options(values["lvlm_kv_bits"], values["lvlm_kv_method"], values["lvlm_weight_bits"],
                                     values["lvlm_weight_method"], values["lvlm_group_size"],
                                     values["lvlm_residual_length"], values["lvlm_outlier_ratio"],
                                     values["lvlm_kv_evict"], values["lvlm_vtok"])
    for flag, key in (("--kv-layers", "lvlm_kv_layers"), ("--weight-layers", "lvlm_weight_layers")):
        if values[key]:
            try:
                LayerSelection(values[key])
            except ValueError as error:
                raise ValueError(f"{flag} {values[key]!r}: {error}") from None
    settings = with_weight_targets(with_layers(settings, values["lvlm_kv_layers"], values["lvlm_weight_layers"]),
                                   values["lvlm_weight_targets"])
    if values["lvlm_layer_sweep"] < 0:
        raise ValueError(f"--lvlm-layer-sweep {values['lvlm_layer_sweep']}: must be 0 (off) or a block size >= 1")
    limit = values["lvlm_limit"]
    if limit is not None and limit < 1:
        raise ValueError(f"--lvlm-limit {limit}: must be a positive number of samples per dataset")
    if values["lvlm_check_invariance"] < 0:
        raise ValueError(f"--lvlm-check-invariance {values['lvlm_check_invariance']}: must be 0 (off) or a "
                         "positive number of items")
    if values["lvlm_seed"] < 0:
        raise ValueError(f"--lvlm-seed {values['lvlm_seed']}: must be a non-negative integer")
    if values["lvlm_batch_size"] < 1:
        raise ValueError(f"--lvlm-batch-size {values['lvlm_batch_size']}: must be positive")
    if values["lvlm_dtype"] not in DTYPES:
        raise ValueError(f"unknown --lvlm-dtype {values['lvlm_dtype']!r}: allowed are {', '.join(DTYPES)}")
    if values["lvlm_calibration"] not in CALIBRATION_SOURCES:
        raise ValueError(f"unknown --lvlm-calibration {values['lvlm_calibration']!r}: allowed are "
                         f"{', '.join(CALIBRATION_SOURCES)}")
    if values["lvlm_published_check"] not in PUBLISHED_CHECKS:
        raise ValueError(f"unknown --lvlm-published-check {values['lvlm_published_check']!r}: allowed are "
                         f"{', '.join(PUBLISHED_CHECKS)}")
    if not values["lvlm_published_tolerance"] >= 0:
        raise ValueError(f"--lvlm-published-tolerance {values['lvlm_published_tolerance']}: must be >= 0")
    shard = parse_shard(values["lvlm_shard"]) if values["lvlm_shard"] else None
    if not values["lvlm_margin"] > 0:
        raise ValueError(f"--lvlm-margin {values['lvlm_margin']}: must be > 0 (an absolute drop, e.g. 0.02)")
    if bool(values["lvlm_judge_url"]) != bool(values["lvlm_judge_model"]):
        missing = "--lvlm-judge-model" if values["lvlm_judge_url"] else "--lvlm-judge-url"
        raise ValueError(f"a judge needs both --lvlm-judge-url and --lvlm-judge-model; {missing} is missing")
    for directory in values["lvlm_data_dir"]:
        if not Path(directory).expanduser().is_dir():
            raise ValueError(f"--lvlm-data-dir {directory!r}: no such directory")
    if values["lvlm_toxicity_model"] and not Path(values["lvlm_toxicity_model"]).expanduser().is_dir():
        raise ValueError(f"--lvlm-toxicity-model {values['lvlm_toxicity_model']!r}: no such directory")
    check_run_name("--lvlm-save", values["lvlm_save"])
    check_run_name("--lvlm-compare", values["lvlm_compare"])
    tolerance = values["lvlm_compare_tolerance"]
    if not 0 <= tolerance < float("inf"):
        raise ValueError(f"--lvlm-compare-tolerance {tolerance}: must be a finite drop >= 0 (e.g. 0.01)")
    if tolerance and not values["lvlm_compare"]:
        raise ValueError(f"--lvlm-compare-tolerance {tolerance} has no effect without --lvlm-compare NAME "
                         "(the saved run it is a tolerance against)")
    if values["lvlm_report_answers"] not in ("yes", "no"):
        raise ValueError(f"--lvlm-report-answers {values['lvlm_report_answers']!r}: allowed are yes, no")
    frontier = [part.strip() for part in (values["lvlm_frontier"] or "").split(",") if part.strip()]
    frontier = list(CAPABILITIES) if frontier == ["all"] else frontier
    unknown = [c for c in frontier if c not in CAPABILITIES]
    if unknown:
        raise ValueError(f"--lvlm-frontier {unknown}: unknown capabilities; known are {', '.join(CAPABILITIES)}, all")
    device = values["lvlm_device"]
    if device.startswith("cuda"):
        if not gpus:
            raise ValueError(f"--lvlm-device {device} asked for, but CUDA is not available here")
        device = worker_device(device, worker, gpus)
    elif device != "cpu":
        raise ValueError(f"unknown --lvlm-device {device!r}: allowed are cpu, cuda, cuda:N")

    def path(key: str) -> Path | None:
        return Path(values[key]) if values[key] else None

    return Options(models=values["lvlm_model"] or ["tiny"], settings=settings, limit=limit,
                   batch_size=values["lvlm_batch_size"], device=device, dtype=values["lvlm_dtype"],
                   seed=values["lvlm_seed"],
                   cache_dir=Path(values["lvlm_cache"]).expanduser() if values["lvlm_cache"] else root / ".lvlmbench", report=path("lvlm_report"),
                   report_answers=values["lvlm_report_answers"] == "yes", plot=path("lvlm_plot"),
                   report_md=path("lvlm_report_md"), report_csv=path("lvlm_report_csv"),
                   thresholds=path("lvlm_thresholds"), save=values["lvlm_save"], compare=values["lvlm_compare"],
                   compare_tolerance=values["lvlm_compare_tolerance"], include=values["lvlm_include"],
                   check_invariance=values["lvlm_check_invariance"],
                   data_dirs=[Path(d).expanduser() for d in values["lvlm_data_dir"]],
                   judge_url=values["lvlm_judge_url"], judge_model=values["lvlm_judge_model"],
                   toxicity_model=path("lvlm_toxicity_model"), calibration=values["lvlm_calibration"],
                   published_tolerance=values["lvlm_published_tolerance"],
                   published_check=values["lvlm_published_check"], margin=values["lvlm_margin"], shard=shard,
                   layer_sweep=values["lvlm_layer_sweep"], frontier=frontier,
                   merge=[Path(p).expanduser() for p in values["lvlm_merge"]],
                   list_tasks=values.get("lvlm_list_tasks", False), list_models=values.get("lvlm_list_models", False),
                   settings_asked=any(values[key] for key in ("lvlm_kv_bits", "lvlm_kv_method", "lvlm_weight_bits",
                                                              "lvlm_weight_method", "lvlm_kv_layers", "lvlm_kv_evict",
                                                              "lvlm_vtok",
                                                              "lvlm_weight_layers", "lvlm_weight_targets")))


def usage_error(error: Exception):
    import pytest

    return pytest.UsageError(f"lvlmbench: {error}")


def read_options(config) -> Options:
    """The run's Options from a pytest config's command line and ini keys; a bad value is a usage error."""
    try:
        values = raw_values(config.getoption, config.getini, config.rootpath)
        gpus = None
        if str(values["lvlm_device"]).startswith("cuda"):
            import torch

            gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return options_from(values, getattr(config, "workerinput", {}).get("workerid"), gpus, root=config.rootpath)
    except ValueError as error:
        raise usage_error(error) from None


def prepare_tasks(options: Options) -> None:
    """Register the tasks of --lvlm-include modules and of installed entry points, and point dataset
    reading at the run's data directories: every mode (tests, merge, frontier, lists) goes through here."""
    from .tasks import include, load_entry_points
    from .tasks.data import set_data_dirs

    try:
        for spec in options.include:
            include(spec)
        load_entry_points()
    except ValueError as error:
        raise usage_error(error) from None
    set_data_dirs(options.data_dirs)


def parse_shard(text: str) -> tuple[int, int]:
    """'2/3' -> (2, 3); ValueError naming the value and the form allowed."""
    index, _, count = str(text).partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise ValueError(f"--lvlm-shard {text!r}: expected I/N with 1 <= I <= N (e.g. 2/3)")
    return int(index), int(count)


def worker_device(device: str, worker_id: str | None, gpus: int) -> str:
    """Under xdist with several GPUs and a bare ``cuda``, worker gwN pins GPU N mod #GPUs."""
    if device != "cuda" or worker_id is None or gpus < 2:
        return device
    return f"cuda:{int(worker_id.removeprefix('gw')) % gpus}"
