"""pytest hooks of the lvlmbench plugin. Hooks stay thin; logic lives in session/report/settings."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

SESSION_KEY = pytest.StashKey["object"]()
OPTIONS_KEY = pytest.StashKey["object"]()
RESULTS_KEY = pytest.StashKey["object"]()     # the controller's records (also under xdist)
GATES_KEY = pytest.StashKey["object"]()       # saved run to compare against, thresholds by path
PRODUCED_KEY = pytest.StashKey[list]()         # records a test produced, sent with its report


def environment_summary() -> str:
    """One line naming the library versions a benchmark result depends on."""
    import torch
    import transformers

    return (f"lvlmbench: python {platform.python_version()}, torch {torch.__version__}, "
            f"transformers {transformers.__version__}")


def pytest_report_header(config: pytest.Config) -> str:
    return environment_summary()


def _csv(kind):
    def parse(text: str):
        return [kind(part) for part in text.split(",") if part]
    parse.__name__ = kind.__name__ + " list"
    return parse


OPTIONS = [  # (flag, ini name, type, help)
    ("--model", "lvlm_model", str, "model alias, local directory or hub id (repeatable or comma list)"),
    ("--kv-bits", "lvlm_kv_bits", int, "KV-cache bits (2,3,4,8,16)"),
    ("--kv-method", "lvlm_kv_method", str, "KV method: uniform, group, outlier"),
    ("--weight-bits", "lvlm_weight_bits", int, "weight bits (2,3,4,8,16)"),
    ("--weight-method", "lvlm_weight_method", str, "weight method: rtn, group, awq"),
]
SCALAR_OPTIONS = [
    ("--group-size", "lvlm_group_size", int, None, "group size (KIVI G / weight group)"),
    ("--residual-length", "lvlm_residual_length", int, None, "KV full-precision residual tokens"),
    ("--outlier-ratio", "lvlm_outlier_ratio", float, None, "GEAR outlier fraction (0.02 = 2%)"),
    ("--lvlm-limit", "lvlm_limit", int, None, "samples per dataset"),
    ("--lvlm-batch-size", "lvlm_batch_size", int, 32, "generation batch size"),
    ("--lvlm-device", "lvlm_device", str, "cpu", "cpu, cuda or cuda:N"),
    ("--lvlm-dtype", "lvlm_dtype", str, "auto", "auto (float16 on GPU, float32 on CPU), float32, float16, bfloat16"),
    ("--lvlm-seed", "lvlm_seed", int, 0, "generation seed"),
    ("--lvlm-cache", "lvlm_cache", str, ".lvlmbench", "directory of the generation cache"),
    ("--lvlm-report", "lvlm_report", str, None, "write the JSON report here"),
    ("--lvlm-report-answers", "lvlm_report_answers", str, "no", "yes: the JSON report holds every answer"),
    ("--lvlm-plot", "lvlm_plot", str, None, "write a PNG of metric vs bits per method here (needs matplotlib)"),
    ("--lvlm-thresholds", "lvlm_thresholds", str, None,
     "thresholds file (default: lvlm_thresholds.toml beside each test module)"),
    ("--lvlm-save", "lvlm_save", str, None, "store this run under NAME (in the cache directory)"),
    ("--lvlm-compare", "lvlm_compare", str, None, "fail tests whose metrics got worse than saved run NAME"),
    ("--lvlm-compare-tolerance", "lvlm_compare_tolerance", float, 0.0,
     "how much worse than the saved run a metric may get"),
]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lvlmbench", "LVLM compression benchmark")
    for flag, ini, kind, help_text in OPTIONS:
        group.addoption(flag, action="extend", type=_csv(kind), default=None, help=help_text)
        parser.addini(ini, help_text, type="args")
    for flag, ini, kind, default, help_text in SCALAR_OPTIONS:
        group.addoption(flag, type=kind, default=None, help=f"{help_text} (default {default})")
        parser.addini(ini, help_text, default=None)


def _value(config: pytest.Config, flag: str, ini: str, kind, default=None):
    value = config.getoption(flag.lstrip("-").replace("-", "_"))
    if value is None:
        raw = config.getini(ini)
        if raw in (None, [], ""):
            return default
        value = [kind(v) for part in raw for v in part.split(",") if v] if isinstance(raw, list) else kind(raw)
    return value


def read_options(config: pytest.Config):
    """Options from the command line, else ini keys; invalid values raise pytest.UsageError."""
    from .session import Options
    from .settings import settings_from_options

    lists = {ini: _value(config, flag, ini, kind) or [] for flag, ini, kind, _ in OPTIONS}
    scalars = {ini: _value(config, flag, ini, kind, default) for flag, ini, kind, default, _ in SCALAR_OPTIONS}
    try:
        settings = settings_from_options(lists["lvlm_kv_bits"], lists["lvlm_kv_method"], lists["lvlm_weight_bits"],
                                         lists["lvlm_weight_method"], scalars["lvlm_group_size"],
                                         scalars["lvlm_residual_length"], scalars["lvlm_outlier_ratio"])
    except ValueError as error:
        raise pytest.UsageError(f"lvlmbench: {error}") from None
    device = scalars["lvlm_device"]
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise pytest.UsageError(f"lvlmbench: --lvlm-device {device} asked for, but CUDA is not available here")
        device = worker_device(device, getattr(config, "workerinput", {}).get("workerid"), torch.cuda.device_count())
    if scalars["lvlm_dtype"] not in ("auto", "float32", "float16", "bfloat16"):
        raise pytest.UsageError(f"lvlmbench: unknown --lvlm-dtype {scalars['lvlm_dtype']!r}: "
                                "allowed are auto, float32, float16, bfloat16")
    return Options(models=lists["lvlm_model"] or ["tiny"], settings=settings, limit=scalars["lvlm_limit"],
                   batch_size=scalars["lvlm_batch_size"], device=device, dtype=scalars["lvlm_dtype"],
                   seed=scalars["lvlm_seed"], cache_dir=Path(scalars["lvlm_cache"]))


def worker_device(device: str, worker_id: str | None, gpus: int) -> str:
    """Under xdist with several GPUs and a bare ``cuda``, worker gwN pins GPU N mod #GPUs."""
    if device != "cuda" or worker_id is None or gpus < 2:
        return device
    return f"cuda:{int(worker_id.removeprefix('gw')) % gpus}"


def pytest_configure(config: pytest.Config) -> None:
    options = read_options(config)
    from .models import resolve_model
    from .results import Results
    from .thresholds import Gates

    for name in options.models:
        try:
            resolve_model(name)
        except ValueError as error:
            raise pytest.UsageError(f"lvlmbench: {error}") from None
    try:
        gates = Gates.from_options(options.cache_dir, _value(config, "--lvlm-compare", "lvlm_compare", str),
                                   _value(config, "--lvlm-compare-tolerance", "lvlm_compare_tolerance", float, 0.0),
                                   _value(config, "--lvlm-thresholds", "lvlm_thresholds", str))
    except ValueError as error:
        raise pytest.UsageError(f"lvlmbench: {error}") from None
    answers = _value(config, "--lvlm-report-answers", "lvlm_report_answers", str, "no")
    if answers not in ("yes", "no"):
        raise pytest.UsageError(f"lvlmbench: --lvlm-report-answers {answers!r}: allowed are yes, no")
    if _value(config, "--lvlm-plot", "lvlm_plot", str):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise pytest.UsageError("lvlmbench: --lvlm-plot needs matplotlib: "
                                    "pip install 'lvlm-compress-bench[plot]'") from None
    from .zoo.world import CAPABILITIES

    for name, text in [(c, f"tests of the {c} capability") for c in CAPABILITIES] + [
            ("baseline", "the uncompressed baseline"), ("kv_quant", "settings that quantize the KV cache"),
            ("weight_quant", "settings that quantize weights")]:
        config.addinivalue_line("markers", f"{name}: lvlmbench {text}")
    config.stash[OPTIONS_KEY] = options
    config.stash[GATES_KEY] = gates
    config.stash[RESULTS_KEY] = Results()
    config.pluginmanager.register(RecordCollector(config.stash[RESULTS_KEY]), "lvlmbench-records")


def session_of(config: pytest.Config):
    """The run's Session, created on first use so test runs that do not benchmark pay nothing."""
    if SESSION_KEY not in config.stash:
        from .session import Session

        config.stash[SESSION_KEY] = Session(config.stash[OPTIONS_KEY])
    return config.stash[SESSION_KEY]


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "lvlm_target" not in metafunc.fixturenames:
        return
    options = metafunc.config.stash[OPTIONS_KEY]
    targets = [pytest.param((model, setting), id=f"{model}-{setting.id}", marks=setting_marks(model, setting))
               for model in options.models for setting in options.settings]
    metafunc.parametrize("lvlm_target", targets, scope="session")


def setting_marks(model: str, setting) -> list[pytest.MarkDecorator]:
    """``-m baseline`` / ``kv_quant`` / ``weight_quant`` select by what a setting compresses; the
    xdist group keeps each (model, weight spec) on one worker under ``--dist loadgroup``."""
    marks = [pytest.mark.xdist_group(f"{model}-{setting.weights.id}")]
    if setting.is_baseline:
        marks.append(pytest.mark.baseline)
    if not setting.kv.is_float:
        marks.append(pytest.mark.kv_quant)
    if not setting.weights.is_float:
        marks.append(pytest.mark.weight_quant)
    return marks


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items) -> None:
    """Read every thresholds file the collected benchmarks use now: a bad one is a usage error."""
    gates = config.stash[GATES_KEY]
    for item in items:
        if "lvlm_target" in getattr(item, "fixturenames", ()):
            try:
                gates.thresholds_for(item.path.parent)
            except ValueError as error:
                raise pytest.UsageError(f"lvlmbench: {error}") from None


@pytest.fixture
def lvlm_run(request: pytest.FixtureRequest, lvlm_target):
    """Evaluate a task for this test's (model, setting); returns the Record. Fails the test when
    the record breaks a threshold or got worse than the saved run compared against."""
    model, setting = lvlm_target
    session = session_of(request.config)
    gates = request.config.stash[GATES_KEY]
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    quiet = request.config.get_verbosity() < 0

    def progress(done: int, total: int, seconds: float) -> None:
        if reporter is not None and not quiet:
            reporter.write(f"\r  {done}/{total} samples, {done / max(seconds, 1e-9):.1f}/s ", flush=True)

    def run(task):
        from .settings import BASELINE

        baseline = session.evaluate(model, BASELINE, task, progress)  # every delta needs it; evaluated once
        record = session.evaluate(model, setting, task, progress)
        request.node.stash[PRODUCED_KEY] = [baseline, record]
        breaches = gates.breaches(record, baseline, request.path.parent)
        if breaches:
            pytest.fail("lvlmbench: " + "\n".join(breaches), pytrace=False)
        return record

    return run


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Records travel with the test's report, so an xdist controller receives them."""
    report = yield
    if call.when == "call" and PRODUCED_KEY in item.stash:
        report.lvlmbench_records = [record.as_dict() for record in item.stash[PRODUCED_KEY]]
    return report


class RecordCollector:
    """Keeps the records of every test report it sees: on an xdist controller, the workers'."""

    def __init__(self, results) -> None:
        self.results = results

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        from .results import Record

        for record in getattr(report, "lvlmbench_records", ()):
            self.results.add(Record(**record))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or RESULTS_KEY not in config.stash:
        return
    from .report import tables, write_json, write_plot
    from .thresholds import save_run

    results = config.stash[RESULTS_KEY]
    if not len(results):
        return
    options = config.stash[OPTIONS_KEY]
    for table in tables(results, options):
        terminalreporter.write_sep("=", "lvlmbench degradation report")
        terminalreporter.write_line(table)
    path = _value(config, "--lvlm-report", "lvlm_report", str)
    if path:
        answers = _value(config, "--lvlm-report-answers", "lvlm_report_answers", str, "no") == "yes"
        write_json(results, options, Path(path), answers)
        terminalreporter.write_line(f"lvlmbench: JSON report written to {path}")
    plot = _value(config, "--lvlm-plot", "lvlm_plot", str)
    if plot:
        write_plot(results, Path(plot))
        terminalreporter.write_line(f"lvlmbench: plot written to {plot}")
    name = _value(config, "--lvlm-save", "lvlm_save", str)
    if name:
        terminalreporter.write_line(f"lvlmbench: run saved as {name!r} in {save_run(results, options, name)}")
