"""Non-inferiority at a margin through a run: small n is inconclusive, 8-bit on 500 items is
non-inferior, an inferior setting is flagged worse (pytest_lvlmbench/analysis/noninferiority.py; the tests
themselves are pinned in tests/test_paired.py)."""

import pytest

from pytest_lvlmbench.analysis.noninferiority import ALPHA, verdicts
from pytest_lvlmbench.core.options import Options
from pytest_lvlmbench.report.tables import adjusted_p_values
from pytest_lvlmbench.engine.reruns import attach_noninferiority
from pytest_lvlmbench.engine.session import Session
from pytest_lvlmbench.core.settings import BASELINE, Setting
from pytest_lvlmbench.tasks import TASKS


def test_the_level_is_one_sided_2_5_percent_the_two_sided_95_percent_interval():
    assert ALPHA == 0.025


@pytest.fixture(scope="module")
def tiny_session(tmp_path_factory):
    settings = [BASELINE, Setting.from_id("kv8-uniform"), Setting.from_id("kv2-uniform")]
    return Session(Options(models=["tiny"], settings=settings, limit=500, cache_dir=tmp_path_factory.mktemp("c")))


def evaluate(session, task, limit=None):
    if limit is not None:
        session.options.limit = limit
    records = []
    for setting in session.options.settings:
        record = session.run("tiny", setting, task)
        record = attach_noninferiority(session, record, {task.primary: 0.02})
        records.append(record)
    return verdicts(records, adjusted_p_values(records), 0.05)


def test_8_bit_is_non_inferior_on_500_items_and_2_bit_per_tensor_is_worse(tiny_session):
    task = TASKS["shapes_gqa"]
    result = evaluate(tiny_session, task)
    assert result[("kv8-uniform", task.name, task.primary)] == "non-inferior"
    assert result[("kv2-uniform", task.name, task.primary)] == "worse"   # tiny's card: -0.250


def test_on_20_items_8_bit_is_inconclusive_not_safe(tiny_session):
    task = TASKS["shapes_vqa"]
    result = evaluate(tiny_session, task, limit=20)
    assert result[("kv8-uniform", task.name, task.primary)] == "inconclusive"


def test_markdown_and_csv_reports_from_a_run(pytester):
    """--lvlm-report-md: settings as rows, tasks as columns, for a PR comment; --lvlm-report-csv:
    every metric with its verdict; a margin of 0 is refused before the run."""
    pytester.makepyfile(test_hallucination="from pytest_lvlmbench.suite import capability_test\n"
                                           "test_hallucination = capability_test('hallucination')\n")
    common = ("-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "cache"), "--lvlm-limit", "8",
              "--kv-bits", "8", "--kv-method", "uniform", "-k", "shapes_pope_random or shapes_pope_popular")
    result = pytester.runpytest_subprocess(*common, "--lvlm-report-md", "report.md", "--lvlm-report-csv", "r.csv")
    result.assert_outcomes(passed=4)
    markdown = (pytester.path / "report.md").read_text().splitlines()
    assert markdown[0] == "### lvlmbench: tiny"
    assert "| setting | shapes_pope_random† (accuracy↑) | shapes_pope_popular† (accuracy↑) |" in markdown  # 8 items
    assert any(line.startswith("| kv8-uniform | ") for line in markdown)
    import csv

    rows = list(csv.DictReader((pytester.path / "r.csv").open()))
    ni = [r for r in rows if r["setting"] == "kv8-uniform" and r["metric"] == "accuracy"]
    assert len(ni) == 2 and all(r["verdict"] == "inconclusive" and r["margin"] == "0.02" for r in ni)  # 8 items
    refused = pytester.runpytest_subprocess(*common, "--lvlm-margin", "0")
    assert refused.ret != 0 and "--lvlm-margin 0.0: must be > 0" in refused.stderr.str()
