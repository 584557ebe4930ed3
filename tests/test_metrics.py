"""Worked examples for pytest_lvlmbench.metrics: every expected number is derived by hand
in the comments, so a definitional slip (wrong denominator, missing clipping, wrong
brevity rule, ...) fails a test."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_lvlmbench.metrics import (
    METRICS,
    MetricInfo,
    bleu,
    all_correct_stats,
    benjamini_hochberg,
    bleu_statistics,
    bootstrap_interval,
    bootstrap_weights,
    cider_d,
    hallusion_scores,
    max_skew,
    max_skew_over_values,
    max_skew_statistics,
    mcnemar_p,
    mme_scores,
    normalize_answer,
    pope_scores,
    pope_statistics,
    ratio_stats,
    share_stats,
    register_metric,
    higher_is_better,
    undefined_notes,
    toxicity_rate,
    vqa_accuracy,
)

# ----------------------------------------------------------------------------- bias


def test_max_skew_balanced_is_zero():
    groups = {"man": ["doctor", "nurse"], "woman": ["nurse", "Doctor."]}
    assert max_skew(groups, "doctor") == pytest.approx(0.0, abs=1e-9)
    assert max_skew_over_values(groups) == pytest.approx(0.0, abs=1e-9)
    # a value that never occurs is balanced too
    assert max_skew(groups, "pilot") == pytest.approx(0.0, abs=1e-9)


def test_max_skew_skewed_is_positive():
    # value only ever produced for one of 2 groups: ln(2 * 1) = ln 2
    groups = {"man": ["doctor"] * 4, "woman": ["nurse"] * 4}
    assert max_skew(groups, "doctor") == pytest.approx(math.log(2), abs=1e-5)
    assert max_skew_over_values(groups) == pytest.approx(math.log(2), abs=1e-5)
    # 3 of 4 vs 1 of 4: shares 0.75 / 0.25 -> ln(2 * 0.75) = ln 1.5
    groups = {"man": ["a doctor"] * 3 + ["nurse"], "woman": ["doctor"] + ["nurse"] * 3}
    assert max_skew(groups, "doctor") == pytest.approx(math.log(1.5), abs=1e-5)


def test_max_skew_uses_rates_not_raw_counts():
    # same rate (1/2) in both groups although group sizes differ -> no skew
    groups = {"a": ["doctor", "nurse"], "b": ["doctor", "doctor", "nurse", "nurse"]}
    assert max_skew(groups, "doctor") == pytest.approx(0.0, abs=1e-9)


def test_toxicity_rate_whole_words():
    lexicon = frozenset({"idiot", "shut up"})
    texts = ["You idiot!", "an idiotic plan", "Please shut up.", "fine", "shut the door up"]
    # hits: "idiot" (whole word), "shut up" (phrase); "idiotic" and split phrase do not
    assert toxicity_rate(texts, lexicon) == pytest.approx(2 / 5)
    assert toxicity_rate([], lexicon) == 0.0


# ----------------------------------------------------------------------------- statistics


def test_cluster_bootstrap_draws_whole_clusters_deterministically():
    clusters = ["a", "a", "b", "c", "c", "c"]
    weights = bootstrap_weights(clusters, n_resamples=500, seed=7)
    assert weights.shape == (500, 6)
    assert np.array_equal(weights, bootstrap_weights(clusters, n_resamples=500, seed=7))
    assert not np.array_equal(weights, bootstrap_weights(clusters, n_resamples=500, seed=8))
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 3] == weights[:, 5]).all()
    # three clusters drawn three times per resample
    assert (weights[:, [0, 2, 3]].sum(1) == 3).all()


def test_bootstrap_interval_of_a_share_contains_it_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small = share_stats(rng.random(50) < 0.7)
    large = share_stats(rng.random(2000) < 0.7)
    lo_s, hi_s = bootstrap_interval(small, bootstrap_weights(range(50), seed=1))
    lo_l, hi_l = bootstrap_interval(large, bootstrap_weights(range(2000), seed=1))
    assert lo_s <= small.value() <= hi_s and lo_l <= large.value() <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 3          # width ~ 1/sqrt(n): sqrt(40) = 6.3
    # binomial standard error at n=2000: sqrt(.21/2000) = .0102 -> 95% width ~ .040
    assert hi_l - lo_l == pytest.approx(0.040, abs=0.008)
    constant = share_stats([1.0] * 10)
    assert bootstrap_interval(constant, bootstrap_weights(range(10))) == (1.0, 1.0)


def test_sample_stats_resample_equals_recomputation_on_the_resampled_corpus():
    # a resample drawing sample 0 twice, sample 2 once and sample 1 never must give the
    # official score of the corpus [c0, c0, c2]: corpus-level metrics included
    cands = ["a red circle", "a blue square and a cross", "a green triangle"]
    refs = [["a red circle", "a small red circle"], ["a blue square"], ["a green triangle", "there is a triangle"]]
    w = np.array([[2.0, 0.0, 1.0]])
    assert bleu_statistics(cands, refs).resampled(w)[0] == pytest.approx(
        bleu([cands[0], cands[0], cands[2]], [refs[0], refs[0], refs[2]]))
    preds, labels = ["yes", "no", "yes", "maybe"], ["yes", "yes", "no", "yes"]
    stats = pope_statistics(preds, labels)
    w = np.array([[1.0, 2.0, 1.0, 0.0]])
    expected = pope_scores(["yes", "no", "no", "yes"], ["yes", "yes", "yes", "no"])
    assert {k: float(v.resampled(w)[0]) for k, v in stats.items()} == pytest.approx(expected)
    groups, jobs = ["x", "x", "y", "y"], ["doctor", "doctor", "chef", "doctor"]
    w = np.array([[1.0, 1.0, 1.0, 0.0]])
    assert max_skew_statistics(groups, jobs).resampled(w)[0] == pytest.approx(
        max_skew_over_values({"x": ["doctor", "doctor"], "y": ["chef"]}, jobs))


def test_benjamini_hochberg_worked_example():
    # m = 4: sorted p .01 .02 .03 .5 -> .04 .04 .04 .5 (each p * 4 / rank, then running minimum from the top)
    assert benjamini_hochberg([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.04, 0.5, 0.04, 0.04])
    assert benjamini_hochberg([0.9, 0.8]) == pytest.approx([0.9, 0.9])
    assert benjamini_hochberg([]) == []


def test_ratio_and_group_stats():
    assert ratio_stats([1, 0, 1], [1, 1, 0]).value() == 1.0
    assert ratio_stats([], []).value() == 0.0
    # groups g1 (both right) and g2 (one wrong): one of two groups all correct
    stats = all_correct_stats([True, True, True, False], ["g1", "g1", "g2", "g2"])
    assert stats.value() == 0.5 and not share_stats([0.5, 1.0]).binary and share_stats([0, 1]).binary


def test_mcnemar_exact():
    # b = 5 right->wrong, c = 0: p = 2 * C(5,0) / 2^5 = 0.0625
    before = [True] * 5 + [True, False]
    after = [False] * 5 + [True, False]
    assert mcnemar_p(before, after) == pytest.approx(0.0625)
    assert mcnemar_p(after, before) == pytest.approx(0.0625)
    # b = 1, c = 9: p = 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024
    before = [True] + [False] * 9
    after = [False] + [True] * 9
    assert mcnemar_p(before, after) == pytest.approx(22 / 1024)
    assert mcnemar_p([True, False], [True, False]) == 1.0      # no discordant pairs
    assert mcnemar_p([True, False], [False, True]) == 1.0      # b = c -> capped at 1
    with pytest.raises(ValueError):
        mcnemar_p([True], [True, False])


# ----------------------------------------------------------------------------- registry


def test_metric_registry_has_one_name_per_metric_with_its_direction():
    assert {"accuracy", "vqa_accuracy", "precision", "recall", "f1", "yes_ratio", "accuracy_plus", "mme_score",
            "figure_accuracy", "pair_accuracy", "bleu_4", "rouge_l", "cider_d", "max_skew", "max_skew_excess",
            "toxicity_rate", "consistency", "stereotype_rate"} <= set(METRICS)
    assert not {"acc", "aAcc", "fAcc", "qAcc", "exact_match", "toxicity", "cider", "bleu", "score"} & set(METRICS)
    assert METRICS["figure_accuracy"].official == "fAcc" and METRICS["cider_d"].official == "CIDEr"
    assert [higher_is_better(m) for m in ("consistency", "stereotype_rate", "yes_ratio", "max_skew", "max_skew_excess",
                                          "toxicity_rate")] == [True, False, None, False, False, False]
    assert all(m.kind in ("accuracy", "score") for m in METRICS.values())
    with pytest.raises(ValueError, match="already registered"):
        register_metric(MetricInfo("bleu_4", True, "score"))
    with pytest.raises(ValueError, match="unknown kind 'ratio'"):
        register_metric(MetricInfo("tmp_metric", True, "ratio"))
    try:
        assert register_metric(MetricInfo("tmp_metric", True, "score")).name == "tmp_metric"
        assert "tmp_metric" in METRICS
    finally:
        METRICS.pop("tmp_metric", None)


def test_a_ratio_over_nothing_is_zero_and_says_so():
    stats = ratio_stats([0.0, 0.0], [0.0, 0.0], "no 'yes' predictions")
    assert stats.value() == 0.0 and stats.undefined == "no 'yes' predictions: 0/0, reported as 0.0"
    assert undefined_notes({"precision": stats, "accuracy": share_stats([1.0])}) == {"precision": stats.undefined}
