"""pytest hooks of the lvlmbench plugin. Hooks stay thin; logic lives in session/report/settings."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

SESSION_KEY = pytest.StashKey["object"]()
OPTIONS_KEY = pytest.StashKey["object"]()


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
    if scalars["lvlm_dtype"] not in ("auto", "float32", "float16", "bfloat16"):
        raise pytest.UsageError(f"lvlmbench: unknown --lvlm-dtype {scalars['lvlm_dtype']!r}: "
                                "allowed are auto, float32, float16, bfloat16")
    return Options(models=lists["lvlm_model"] or ["tiny"], settings=settings, limit=scalars["lvlm_limit"],
                   batch_size=scalars["lvlm_batch_size"], device=device, dtype=scalars["lvlm_dtype"],
                   seed=scalars["lvlm_seed"], cache_dir=Path(scalars["lvlm_cache"]))


def pytest_configure(config: pytest.Config) -> None:
    options = read_options(config)
    from .models import resolve_model

    for name in options.models:
        try:
            resolve_model(name)
        except ValueError as error:
            raise pytest.UsageError(f"lvlmbench: {error}") from None
    config.stash[OPTIONS_KEY] = options


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
    targets = [(model, setting) for model in options.models for setting in options.settings]
    metafunc.parametrize("lvlm_target", targets, ids=[f"{m}-{s.id}" for m, s in targets], scope="session")


@pytest.fixture
def lvlm_run(request: pytest.FixtureRequest, lvlm_target):
    """Evaluate a task for this test's (model, setting); returns the Record."""
    model, setting = lvlm_target
    session = session_of(request.config)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    quiet = request.config.get_verbosity() < 0

    def progress(done: int, total: int, seconds: float) -> None:
        if reporter is not None and not quiet:
            reporter.write(f"\r  {done}/{total} samples, {done / max(seconds, 1e-9):.1f}/s ", flush=True)

    def run(task):
        from .settings import BASELINE

        session.evaluate(model, BASELINE, task, progress)  # every delta needs it; evaluated once
        return session.evaluate(model, setting, task, progress)

    return run


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if SESSION_KEY not in config.stash:
        return
    from .report import tables, write_json

    session = config.stash[SESSION_KEY]
    if not session.records:
        return
    for table in tables(session):
        terminalreporter.write_sep("=", "lvlmbench degradation report")
        terminalreporter.write_line(table)
    path = _value(config, "--lvlm-report", "lvlm_report", str)
    if path:
        write_json(session, Path(path))
        terminalreporter.write_line(f"lvlmbench: JSON report written to {path}")
