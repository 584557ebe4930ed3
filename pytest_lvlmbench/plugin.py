"""pytest hooks of the lvlmbench plugin. Hooks stay thin: options come parsed from :mod:`.options`,
the run lives in :mod:`.session`, tables and files in :mod:`.report`, gates in :mod:`.thresholds`."""

from __future__ import annotations

import platform
import sys

import pytest

from .options import add_options, explicitly_used, prepare_tasks, read_options, usage_error

SESSION_KEY = pytest.StashKey["object"]()
OPTIONS_KEY = pytest.StashKey["object"]()
RESULTS_KEY = pytest.StashKey["object"]()     # the controller's records (also under xdist)
GATES_KEY = pytest.StashKey["object"]()       # saved run to compare against, thresholds by path
PRODUCED_KEY = pytest.StashKey[list]()         # records a test produced, sent with its report
ACTIVE_KEY = pytest.StashKey[bool]()           # the run uses the plugin: checked, cache opened (see activate)
ERROR_KEY = pytest.StashKey[Exception]()       # activation failed during collection: raised once it ends
UNFIT_KEY = pytest.StashKey[dict]()            # (model, setting id) -> why that default-grid setting cannot apply


def environment_summary() -> str:
    """One line naming the library versions a benchmark result depends on."""
    import torch
    import transformers

    return (f"lvlmbench: python {platform.python_version()}, torch {torch.__version__}, "
            f"transformers {transformers.__version__}")


def pytest_report_header(config: pytest.Config) -> str | None:
    return environment_summary() if ACTIVE_KEY in config.stash else None


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config):
    """Options parsed once for the whole run; a non-test mode (``--lvlm-list-tasks``, ``--lvlm-merge``,
    ``--lvlm-frontier``, from the command line or an ini key) runs here and exits like --fixtures."""
    options = config.stash[OPTIONS_KEY] = read_options(config)
    if options.command is None:
        return None
    from .commands import run_command

    prepare_tasks(options)
    try:
        return run_command(options, verbose=config.get_verbosity() > 0)
    except ValueError as error:
        raise usage_error(error) from None


def pytest_configure(config: pytest.Config) -> None:
    """Cheap for every pytest run: options parsed, marks registered, -k taught layered ids. The rest
    (:func:`activate`) only when the run uses the plugin: an lvlm option or ini key, or a suite
    directory (a conftest.py with ``lvlmbench_suite = True``) among the run's initial conftests;
    otherwise on the first test that asks for a (model, setting)."""
    from .markers import marker_lines

    options = config.stash.get(OPTIONS_KEY, None) or read_options(config)   # xdist workers run no cmdline_main
    for line in marker_lines(with_xdist=config.pluginmanager.hasplugin("xdist")):
        config.addinivalue_line("markers", line)
    config.stash[OPTIONS_KEY] = options
    if "@" in (getattr(config.option, "keyword", "") or ""):
        config.option.keyword = keyword_form(config.option.keyword)
    config.pluginmanager.register(RecordCollector(config), "lvlmbench-records")
    if explicitly_used(config.getoption, config.getini) or any(
            getattr(plugin, "lvlmbench_suite", False) is True for plugin in config.pluginmanager.get_plugins()):
        activate(config)


def keyword_form(text: str) -> str:
    """Layered setting ids in a form pytest's ``-k`` grammar accepts (it rejects ``@`` and ``,``):
    ``kv2-uniform@0-3,8-11`` -> ``kv2-uniform:0-3/8-11``. Applied to ``-k`` and added to each test's
    keywords, so ``-k "kv4-uniform@0-1"`` selects what it names."""
    import re

    return re.sub(r"@([\w\-]+(?:,[\w\-]+)*)", lambda m: ":" + m.group(1).replace(",", "/"), text)


def activate(config: pytest.Config) -> None:
    """Everything a benchmark run needs, checked before any test (a bad value is a usage error):
    tasks included, models resolved, every setting fitted to every model, thresholds and the saved
    run read, output paths writable, the generation cache under the rootdir opened, the judge reached."""
    if ERROR_KEY in config.stash:
        raise config.stash[ERROR_KEY]
    if ACTIVE_KEY in config.stash:
        return
    try:
        _activate(config)
    except pytest.UsageError as error:
        config.stash[ERROR_KEY] = error
        raise
    config.stash[ACTIVE_KEY] = True


def _activate(config: pytest.Config) -> None:
    from .engine.fit import fit_grid
    from .engine.gencache import GenerationCache
    from .storage.files import check_writable
    from .core.records import Results
    from .tasks import TASKS
    from .thresholds import Gates

    options = config.stash[OPTIONS_KEY]
    prepare_tasks(options)
    try:
        config.stash[UNFIT_KEY] = fit_grid(options)
        gates = Gates.from_options(options)
        for path, flag in ((options.report, "--lvlm-report"), (options.plot, "--lvlm-plot"),
                           (options.report_md, "--lvlm-report-md"), (options.report_csv, "--lvlm-report-csv"),
                           (options.generations_path, "--lvlm-cache")):
            if path:   # fail now, not after the whole run
                check_writable(path, flag)
        GenerationCache(options.generations_path).close()   # corrupt, read-only, wrong schema
        if options.judge_url and not hasattr(config, "workerinput"):   # a down judge: one error, before any test
            from .engine.judges import OpenAIJudge, check_judge

            check_judge(OpenAIJudge(options.judge_url, options.judge_model, retries=1, timeout=15.0))
        if options.toxicity_model:
            from .engine.judges import ClassifierToxicity

            ClassifierToxicity(options.toxicity_model)   # a directory that is no classifier: now, not mid-run
    except (ValueError, RuntimeError) as error:   # JudgeError is a RuntimeError
        raise usage_error(error) from None
    if options.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise pytest.UsageError("lvlmbench: --lvlm-plot needs matplotlib: "
                                    "pip install 'lvlm-compress-bench[plot]'") from None
    config.stash[GATES_KEY] = gates
    config.stash[RESULTS_KEY] = Results(order=(options.models, [setting.id for setting in options.settings], list(TASKS)))


def session_of(config: pytest.Config):
    """The run's Session, created on first use so test runs that do not benchmark pay nothing."""
    if SESSION_KEY not in config.stash:
        from .engine.session import Session

        config.stash[SESSION_KEY] = Session(config.stash[OPTIONS_KEY])
    return config.stash[SESSION_KEY]


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "lvlm_target" not in metafunc.fixturenames:
        return
    config = metafunc.config
    try:
        activate(config)
    except pytest.UsageError:   # a collection error would print a traceback: raised after collection instead
        metafunc.parametrize("lvlm_target", [], scope="session")
        return
    options, unfit = config.stash[OPTIONS_KEY], config.stash[UNFIT_KEY]
    targets = [pytest.param((model, setting), id=f"{model}-{setting.id}",
                            marks=setting_marks(model, setting, unfit.get((model, setting.id))))
               for model in options.models for setting in options.settings]
    metafunc.parametrize("lvlm_target", targets, scope="session")


def setting_marks(model: str, setting, unfit: str | None = None) -> list[pytest.MarkDecorator]:
    """``-m baseline`` / ``kv_quant`` / ``weight_quant`` / ``kv_evict`` / ``vtok_prune`` select by what a
    setting compresses; the
    xdist group keeps each (model, weight spec) on one worker under ``--dist loadgroup``; a
    default-grid setting that cannot apply to the model is skipped, saying why."""
    marks = [pytest.mark.xdist_group(f"{model}-{setting.weights_id}")]
    if unfit:
        marks.append(pytest.mark.skip(reason=f"lvlmbench: {unfit}"))
    if setting.is_baseline:
        marks.append(pytest.mark.baseline)
    if not setting.kv.is_float:
        marks.append(pytest.mark.kv_quant)
    if not setting.weights.is_float:
        marks.append(pytest.mark.weight_quant)
    if setting.evict is not None:
        marks.append(pytest.mark.kv_evict)
    if setting.vtok is not None:
        marks.append(pytest.mark.vtok_prune)
    return marks


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items) -> None:
    """Read every thresholds file the collected benchmarks use now: a bad one is a usage error;
    ``--lvlm-shard I/N`` deselects the benchmarks of the other shards; layered ids answer ``-k``."""
    if ERROR_KEY in config.stash:
        raise config.stash[ERROR_KEY]
    if ACTIVE_KEY not in config.stash:
        return
    for item in items:
        if "@" in item.name:
            item.extra_keyword_matches.add(keyword_form(item.name))
    shard = config.stash[OPTIONS_KEY].shard
    if shard:
        from .storage.runs import shard_of

        kept, dropped = [], []
        for item in items:
            params = getattr(getattr(item, "callspec", None), "params", {})
            if "lvlm_target" in params and "task" in params:
                model, setting = params["lvlm_target"]
                mine = shard_of((model, setting.id, str(params["task"])), shard[1]) == shard[0] - 1
                (kept if mine else dropped).append(item)
            else:
                kept.append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = kept
    gates = config.stash[GATES_KEY]
    for item in items:
        if "lvlm_target" in getattr(item, "fixturenames", ()):
            try:
                gates.thresholds_for(item.path.parent)
            except ValueError as error:
                raise usage_error(error) from None


class ProgressLine:
    """``37/150 samples, 4.1/s`` after what pytest has written on the current terminal line, cut to
    the terminal's width, written with output capture suspended (capture would swallow it), the
    cursor moved back after it so pytest's own line bookkeeping stays true; erased by :meth:`clear`.
    Only on a terminal: in logs and on xdist workers there is no line to rewrite."""

    def __init__(self, writer, suspended) -> None:
        self.writer, self.suspended = writer, suspended
        self.shown = 0

    def _show(self, text: str) -> None:
        with self.suspended():   # sys.stdout is the terminal again in here
            sys.stdout.write(text + "\b" * len(text))
            sys.stdout.flush()

    def __call__(self, done: int, total: int, seconds: float) -> None:
        room = self.writer.fullwidth - 1 - self.writer.width_of_current_line
        text = f" {done}/{total} samples, {done / max(seconds, 1e-9):.1f}/s"[:max(room, 0)]
        self._show(text.ljust(self.shown))
        self.shown = len(text)

    def clear(self) -> None:
        if self.shown:
            self._show(" " * self.shown)
            self.shown = 0


def progress_line(config: pytest.Config) -> ProgressLine | None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not reporter.isatty or config.get_verbosity() < 0 \
            or hasattr(config, "workerinput"):
        return None
    return ProgressLine(reporter._tw, capture.global_and_fixture_disabled)


@pytest.fixture
def lvlm_run(request: pytest.FixtureRequest, lvlm_target):
    """Evaluate a task for this test's (model, setting); returns the Record. Fails the test when
    the record breaks a threshold or got worse than the saved run compared against. The primary
    metric, its change and verdict go to the test's ``user_properties`` (JUnit XML, pytest-html)."""
    model, setting = lvlm_target
    session = session_of(request.config)
    gates = request.config.stash[GATES_KEY]
    progress = progress_line(request.config)

    def run(task):
        try:
            return _run(task)
        finally:
            if progress is not None:
                progress.clear()

    def _run(task):
        from .tasks.data import DatasetSchemaError, DatasetUnavailable
        from .analysis.proof import compression_failures
        from .report.tables import user_properties_of
        from .core.settings import BASELINE
        from .engine.reruns import attach_interaction, attach_invariance, attach_noninferiority, attach_published

        reason = task.unavailable(session.scorers)
        if not reason and setting.needs_calibration:
            from .engine.calibration import calibration_unavailable

            reason = calibration_unavailable(session.calibration_source(model))
        if reason:
            pytest.skip(reason)
        try:
            baseline = session.evaluate(model, BASELINE, task, progress)  # every delta needs it; evaluated once
            record = session.evaluate(model, setting, task, progress)
        except DatasetUnavailable as error:
            pytest.skip(str(error))
        except DatasetSchemaError as error:
            pytest.fail(f"lvlmbench: {error}", pytrace=False)
        options = request.config.stash[OPTIONS_KEY]
        margins = gates.margins(record, request.path.parent, options.margin)
        record = attach_noninferiority(session, record, margins)
        record = attach_interaction(session, record, task, margins, progress)
        baseline, published = attach_published(session, baseline)   # kept on the record; fails only the FP16 test
        if setting.is_baseline:
            record = baseline
        request.node.user_properties.extend(user_properties_of(record, baseline))
        breaches = gates.breaches(record, baseline, request.path.parent) + compression_failures(record)
        if setting.is_baseline:
            breaches += published
        checked = options.check_invariance
        if checked:
            record, invariance = attach_invariance(session, model, setting, task, checked)
            if not invariance.ok:
                breaches.append(f"{task.name}: not batch-invariant: {invariance.message()}")
        request.node.stash[PRODUCED_KEY] = [record] if setting.is_baseline else [baseline, record]   # own last
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
    """Keeps the records of every test report it sees: on an xdist controller, the workers' (a
    controller that collected nothing activates the plugin on the first record)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        records = getattr(report, "lvlmbench_records", ())
        if not records:
            return
        from .core.records import Record

        activate(self.config)
        *others, own = records   # a test's own record replaces an earlier copy; the baseline it used is kept once
        results = self.config.stash[RESULTS_KEY]
        for record in others:
            results.add(Record(**record))
        results.replace(Record(**own))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or not len(config.stash.get(RESULTS_KEY, ())):
        return
    from .report.tables import tables
    from .report.documents import save_report, write_json, write_tables
    from .report.plots import write_plot

    results = config.stash[RESULTS_KEY]
    options = config.stash[OPTIONS_KEY]
    for table in tables(results, options, full=config.get_verbosity() > 0,
                        width=max(80, terminalreporter._tw.fullwidth)):
        terminalreporter.write_sep("=", "lvlmbench degradation report")
        terminalreporter.write_line(table)
    saved = config.stash[GATES_KEY].saved
    missing = saved.not_compared(results) if saved is not None else []
    if missing:
        terminalreporter.write_sep("=", f"lvlmbench: not compared with saved run {saved.name!r}", red=True)
        for line in missing:
            terminalreporter.write_line(line, red=True)
    if options.report:
        write_json(results, options, options.report, options.report_answers)
        terminalreporter.write_line(f"lvlmbench: JSON report written to {options.report}")
    if options.plot:
        write_plot(results, options.plot)
        terminalreporter.write_line(f"lvlmbench: plot written to {options.plot}")
    for line in write_tables(results, options):
        terminalreporter.write_line(line)
    if options.save:
        try:
            terminalreporter.write_line(f"lvlmbench: {save_report(results, options, options.save).message()}")
        except (ValueError, OSError) as error:   # checked at configure; the file changed since
            terminalreporter.write_line(f"lvlmbench: run NOT saved: {error}", red=True)
