"""Do weight and KV compression add up? (pytest_lvlmbench/analysis/interaction.py)"""

import numpy as np
import pytest

from pytest_lvlmbench.analysis.interaction import interaction
from pytest_lvlmbench.metrics import bootstrap_weights, share_stats

N = 400
ITEMS = list(range(N))   # each item its own cluster


def broken(*ranges):
    """Per-item correctness: every item right except those in the ranges."""
    correct = np.ones(N)
    for begin, end in ranges:
        correct[begin:end] = 0
    return share_stats(correct)


@pytest.mark.parametrize("combined, verdict, value", [
    (broken((0, 80)), "no interaction detected", 0.0),    # W breaks 0-39, KV 40-79: together exactly both,
                                                          # so no item carries an interaction to measure
    (broken((0, 60), (80, 100)), "no interaction detected", 0.0),   # as many, other items: 400 cannot show < 0.02
    (broken((0, 200)), "super-additive", 0.3),            # together they break far more than the sum
    (broken((0, 40)), "sub-additive", -0.1),              # the same items break: the drops overlap
])
def test_additive_super_additive_and_sub_additive_cases_are_told_apart(combined, verdict, value):
    weights = bootstrap_weights(list(range(N)), 1000, seed=0)
    found = interaction("accuracy", broken(), broken((0, 40)), broken((40, 80)), combined, weights, 0.02, ITEMS)
    assert found.weights == pytest.approx(0.1) and found.kv == pytest.approx(0.1)
    assert found.value == pytest.approx(value) and found.verdict == verdict
    assert found.low <= found.value <= found.high


def test_no_verdict_from_a_handful_of_interacting_items():
    """Three items where the combination breaks what neither part did: too few to tell anything."""
    weights = bootstrap_weights(ITEMS, 1000, seed=0)
    found = interaction("accuracy", broken(), broken((0, 40)), broken((40, 80)), broken((0, 83)), weights, 0.02,
                        ITEMS)
    assert found.changed_clusters == 3 and found.verdict == "no interaction detected"


def test_lower_is_better_metrics_count_a_rise_as_the_drop():
    weights = bootstrap_weights(list(range(N)), 200, seed=0)
    flagged = lambda *r: share_stats(1 - np.asarray(broken(*r).rows[:, 0]))   # noqa: E731  toxic items
    found = interaction("toxicity_rate", flagged(), flagged((0, 40)), flagged((40, 80)), flagged((0, 200)), weights,
                        0.02, ITEMS)
    assert found.verdict == "super-additive" and found.value == pytest.approx(0.3)
    assert interaction("yes_ratio", broken(), broken(), broken(), broken(), weights, 0.02, ITEMS) is None


def test_additive_needs_the_whole_interval_inside_the_margin():
    """Two one-sided tests: a combination that breaks as many items as its parts, but not the same ones,
    reads "additive" at a margin its interval fits in, "no interaction detected" at one it does not."""
    weights = bootstrap_weights(list(range(N)), 1000, seed=0)
    parts = broken(), broken((0, 40)), broken((40, 80)), broken((0, 60), (80, 100))
    wide = interaction("accuracy", *parts, weights, 0.2, ITEMS)
    narrow = interaction("accuracy", *parts, weights, 0.02, ITEMS)
    assert wide.verdict == "additive" and -0.2 < wide.low and wide.high < 0.2
    assert narrow.verdict == "no interaction detected" and (narrow.low <= -0.02 or narrow.high >= 0.02)


def test_a_combined_setting_reports_its_interaction(pytester):
    pytester.makepyfile(test_hallucination="from pytest_lvlmbench.suite import capability_test\n"
                                           "test_hallucination = capability_test('hallucination')\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "cache"), "--lvlm-limit", "6",
        "--kv-bits", "2", "--kv-method", "uniform", "--weight-bits", "4", "--weight-method", "rtn",
        "-k", "shapes_pope_random", "--lvlm-report", "r.json")
    result.assert_outcomes(passed=4)   # fp16, w4-rtn, kv2-uniform, w4-rtn+kv2-uniform
    result.stdout.fnmatch_lines(["*weights + KV: does the drop add up?*",
                                 "*w4-rtn+kv2-uniform shapes_pope_random accuracy: *: combined drop*"])
    import json

    records = json.loads((pytester.path / "r.json").read_text())["records"]
    combined = next(r for r in records if r["setting"] == "w4-rtn+kv2-uniform")
    assert combined["interaction"]["accuracy"]["verdict"] in ("additive", "super-additive", "sub-additive",
                                                              "no interaction detected")
