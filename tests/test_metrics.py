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
    paired_p,
    parse_yes_no,
    pope_scores,
    pope_statistics,
    ratio_stats,
    share_stats,
    register_metric,
    toxicity_rate,
    vqa_accuracy,
)

# ----------------------------------------------------------------------------- VQA


@pytest.mark.parametrize("raw, expected", [
    ("Two dogs.", "2 dogs"),          # number word -> digit, final period dropped
    ("the Cat", "cat"),               # lowercase, article removed
    ("An apple", "apple"),
    ("  Yes!\n", "yes"),              # '!' inside no spaces -> space, then stripped
    ("dont", "don't"),                # contraction map
    ("1,000", "1000"),                # digit,digit: punctuation deleted, not spaced
    ("3.5", "3.5"),                   # a period before a digit is kept
    ("red-white", "red white"),       # in-word hyphen -> space
    ("left , right", "left right"),   # mark touching a space -> deleted
    ("none", "0"),
])
def test_normalize_answer(raw, expected):
    assert normalize_answer(raw) == expected


@pytest.mark.parametrize("matches, expected", [
    # 10 humans, m of them say the prediction. Leave-one-out over the 10 humans:
    # dropping a matching human leaves m-1 matches, dropping another leaves m.
    (0, 0.0),
    (1, (1 * 0 + 9 * (1 / 3)) / 10),            # 0.3
    (2, (2 * (1 / 3) + 8 * (2 / 3)) / 10),      # 0.6
    (3, (3 * (2 / 3) + 7 * 1) / 10),            # 0.9
    (4, 1.0),                                   # min(1, 3/3) everywhere
])
def test_vqa_accuracy_leave_one_out(matches, expected):
    refs = ["two"] * matches + ["three"] * (10 - matches)
    # "2." normalises to "2", as does every "two" reference
    assert vqa_accuracy("2.", refs) == pytest.approx(expected)


def test_vqa_accuracy_known_values():
    refs = ["2"] * 2 + ["3"] * 8
    assert vqa_accuracy("2", refs) == pytest.approx(0.6)
    assert vqa_accuracy("3", refs) == pytest.approx(1.0)


def test_vqa_accuracy_few_references_is_exact_match():
    assert vqa_accuracy("The cat", ["cat"]) == 1.0
    assert vqa_accuracy("dog", ["cat", "kitten"]) == 0.0
    assert vqa_accuracy("Kitten.", ["cat", "kitten"]) == 1.0
    with pytest.raises(ValueError):
        vqa_accuracy("cat", [])


# ----------------------------------------------------------------------------- yes / no


@pytest.mark.parametrize("text, expected", [
    ("Yes.", "yes"), ("yes, there is a dog", "yes"), ("YES", "yes"), ("y", "yes"),
    ("No", "no"), ("no.", "no"), ("N", "no"), ("No, there is not.", "no"),
    ("Not sure", "other"), ("There is a dog", "other"), ("", "other"), ("nothing", "other"),
])
def test_parse_yes_no(text, expected):
    assert parse_yes_no(text) == expected


def test_pope_worked_confusion_matrix():
    # 6 'yes' items: 4 answered yes (TP), 1 no (FN), 1 unparseable ('other' -> miss).
    # 4 'no' items: 1 answered yes (FP), 3 no (TN).
    labels = ["yes"] * 6 + ["no"] * 4
    preds = ["Yes.", "yes", "Yes, there is.", "yes", "No.", "I cannot tell",
             "Yes", "No", "no", "No, there is not."]
    s = pope_scores(preds, labels)
    assert s["accuracy"] == pytest.approx(7 / 10)      # TP + TN = 4 + 3
    assert s["precision"] == pytest.approx(4 / 5)      # TP / (TP + FP)
    assert s["recall"] == pytest.approx(4 / 6)         # TP / #label-yes (other = miss)
    assert s["f1"] == pytest.approx(8 / 11)            # 2*(4/5)*(2/3) / (4/5 + 2/3)
    # predicted yes = 5 of 10; lmms-eval's ground-truth count would give 0.6
    assert s["yes_ratio"] == pytest.approx(0.5)
    assert set(s) == {"accuracy", "precision", "recall", "f1", "yes_ratio"}


def test_pope_zero_division_and_errors():
    s = pope_scores(["no", "no"], ["no", "no"])
    assert s == {"accuracy": 1.0, "precision": 0.0, "recall": 0.0, "f1": 0.0, "yes_ratio": 0.0}
    assert pope_scores([], []) == {"accuracy": 0.0, "precision": 0.0, "recall": 0.0,
                                   "f1": 0.0, "yes_ratio": 0.0}
    with pytest.raises(ValueError):
        pope_scores(["yes"], ["yes", "no"])
    with pytest.raises(ValueError):
        pope_scores(["yes"], ["maybe"])


def test_mme_acc_and_acc_plus():
    records = [
        # image A: both right; image B: one right; image C: both wrong
        dict(image_id="A", prediction="Yes.", label="yes"),
        dict(image_id="A", prediction="No", label="no"),
        dict(image_id="B", prediction="yes", label="yes"),
        dict(image_id="B", prediction="yes", label="no"),
        dict(image_id="C", prediction="no", label="yes"),
        dict(image_id="C", prediction="maybe", label="no"),
    ]
    s = mme_scores(records)
    assert s["acc"] == pytest.approx(3 / 6)
    assert s["acc_plus"] == pytest.approx(1 / 3)
    assert s["score"] == pytest.approx((0.5 + 1 / 3) * 100)   # 83.33


def test_hallusion_two_figure_toy_set():
    # Figure f0 (original) and f1 (edited), the same 3 questions asked on each.
    # f0: q1 right, q2 right, q3 wrong; f1: all right.
    rec = lambda fig, q, pred, label: dict(figure_id=fig, question_pair_id=q,  # noqa: E731
                                           prediction=pred, label=label)
    records = [
        rec("f0", "q1", "Yes", "1"), rec("f0", "q2", "No.", "0"), rec("f0", "q3", "yes", "0"),
        rec("f1", "q1", "No", "0"), rec("f1", "q2", "no", "no"), rec("f1", "q3", "Yes.", "yes"),
    ]
    s = hallusion_scores(records)
    assert s["aAcc"] == pytest.approx(5 / 6)   # 5 of 6 questions
    assert s["fAcc"] == pytest.approx(1 / 2)   # only f1 is all right
    assert s["qAcc"] == pytest.approx(2 / 3)   # pairs q1, q2 right on both figures; q3 not


# ----------------------------------------------------------------------------- BLEU


def test_bleu_identical_is_one():
    cands = ["a dog runs on the grass", "two cats sleep"]
    assert bleu(cands, [[c] for c in cands]) == pytest.approx(1.0, rel=1e-6)
    # case and punctuation are stripped before tokenising
    assert bleu(["A Dog, runs."], [["a dog runs"]], n=3) == pytest.approx(1.0, rel=1e-6)


def test_bleu_brevity_penalty_hand_computed():
    # cand "the cat sat on the" (c=5) vs ref "the cat sat on the mat" (r=6):
    # precisions 5/5, 4/4, 3/3, 2/2 -> 1; BP = exp(1 - 6/5) = exp(-0.2)
    assert bleu(["the cat sat on the"], [["the cat sat on the mat"]]) == pytest.approx(
        math.exp(-0.2), rel=1e-6)
    # cand "cat sat on mat" (c=4) vs the same ref (r=6):
    # 1-grams 4/4; 2-grams {cat sat, sat on, on mat}: 2/3; 3-grams {cat sat on,
    # sat on mat}: 1/2 -> BLEU-3 = (1 * 2/3 * 1/2)^(1/3) * exp(1 - 6/4)
    expected = (1 / 3) ** (1 / 3) * math.exp(-0.5)
    assert bleu(["cat sat on mat"], [["the cat sat on the mat"]], n=3) == pytest.approx(
        expected, rel=1e-6)
    # no 4-gram matches -> BLEU-4 collapses to ~0 (only the 1e-15 smoothing is left)
    assert bleu(["cat sat on mat"], [["the cat sat on the mat"]]) < 1e-3


def test_bleu_closest_reference_tie_goes_to_shorter():
    # c=5, refs of length 4 and 6 are equally close -> r=4 -> no brevity penalty;
    # clipping uses the max count over refs ("the" x2 from the longer ref).
    refs = [["the cat sat on", "the cat sat on the mat"]]
    assert bleu(["the cat sat on the"], refs) == pytest.approx(1.0, rel=1e-6)


def test_bleu_is_corpus_level():
    # all n-gram matches are exact; c = 5 + 6 = 11, r = 6 + 6 = 12 -> BP = exp(1 - 12/11).
    # (The mean of sentence BLEUs would be (exp(-0.2) + 1) / 2 instead.)
    cands = ["the cat sat on the", "a dog runs in the park"]
    refs = [["the cat sat on the mat"], ["a dog runs in the park"]]
    assert bleu(cands, refs) == pytest.approx(math.exp(1 - 12 / 11), rel=1e-6)


def test_bleu_clips_repeated_words():
    # "the the the" vs "the cat": clipped 1-gram precision 1/3, BLEU-1 with
    # BP = 1 (c=3 > r=2)
    assert bleu(["the the the"], [["the cat"]], n=1) == pytest.approx(1 / 3, rel=1e-6)


# ----------------------------------------------------------------------------- CIDEr-D


def test_cider_identical_corpus_pattern():
    # identical candidate/reference: every order with a non-zero vector has cosine 1 and
    # no length penalty, so an image scores 10 * (#orders present) / 4.
    caps = ["a dog runs on the grass", "a cat sleeps on a sofa", "two birds fly over the sea"]
    assert cider_d(caps, [[c] for c in caps]) == pytest.approx(10.0)
    # a 3-word caption has no 4-grams: 10 * 3/4 = 7.5; mean with a 10.0 image = 8.75
    caps = ["a dog runs on the grass", "cat sleeps now"]
    assert cider_d(caps, [[c] for c in caps]) == pytest.approx(8.75)


def test_cider_single_image_and_disjoint_candidates_score_zero():
    # one image: idf = log(1) - log(1) = 0 for every reference n-gram
    assert cider_d(["a dog runs"], [["a dog runs"]]) == 0.0
    # candidates sharing no n-gram with their references
    cands = ["zebra grazes quietly", "purple rain"]
    refs = [["dog runs fast"], ["cat sleeps"]]
    assert cider_d(cands, refs) == 0.0


def test_cider_two_image_hand_example():
    # Refs: A "dog runs fast", B "cat sleeps". N = 2, no n-gram is shared between the two
    # images, so every reference n-gram has df = 1 and weight L = log 2 - log 1 = log 2.
    # Candidate n-grams absent from all refs have df = 0 -> max(1, 0) = 1 -> weight L too.
    #
    # Image A, cand "dog runs fast" (identical): orders 1, 2, 3 have equal vectors ->
    #   cosine 1; order 4 has no 4-grams -> 0. Bigram lengths 2 vs 2 -> penalty 1.
    #   score = 10 * (1 + 1 + 1 + 0) / 4 = 7.5
    # Image B, cand "cat eats":
    #   order 1: cand {cat: L, eats: L}, ref {cat: L, sleeps: L}
    #            sum min(c, r) * r = L*L (cat) + min(L, 0)*0 (eats) = L^2
    #            / (|c| |r|) = L^2 / (sqrt2 L * sqrt2 L) = 1/2
    #   order 2: {cat eats} vs {cat sleeps} -> 0; orders 3, 4: empty -> 0
    #   bigram lengths 1 vs 1 -> penalty 1.  score = 10 * 0.5 / 4 = 1.25
    # corpus = (7.5 + 1.25) / 2 = 4.375
    refs = [["dog runs fast"], ["cat sleeps"]]
    assert cider_d(["dog runs fast", "cat eats"], refs) == pytest.approx(4.375)


def test_cider_length_penalty_hand_example():
    # Same refs; image B cand "cat sleeps now" (3 words: 2 bigrams vs the ref's 1).
    #   order 1: cand {cat, sleeps, now} (all weight L), ref {cat, sleeps}:
    #            dot = 2 L^2, norms sqrt3 L, sqrt2 L -> 2 / sqrt6
    #   order 2: cand {cat sleeps, sleeps now}, ref {cat sleeps}: L^2 / (sqrt2 L * L) = 1/sqrt2
    #   order 3: ref has no trigram -> 0; order 4 -> 0
    #   penalty exp(-(2 - 1)^2 / (2 * 6^2)) = exp(-1/72)
    score_b = 10 * (2 / math.sqrt(6) + 1 / math.sqrt(2)) * math.exp(-1 / 72) / 4
    refs = [["dog runs fast"], ["cat sleeps"]]
    assert cider_d(["dog runs fast", "cat sleeps now"], refs) == pytest.approx(
        (7.5 + score_b) / 2)


def test_cider_clips_candidate_counts():
    # A: ref "dog runs", cand "dog dog". Order 1: cand {dog: 2L}, ref {dog: L, runs: L}
    #   clipped dot = min(2L, L) * L = L^2 ; / (2L * sqrt2 L) = 1 / (2 sqrt2)
    #   (unclipped would be 2L^2 / (2 sqrt2 L^2) = 1/sqrt2). Order 2: {dog dog} vs
    #   {dog runs} -> 0. Lengths 1 vs 1 bigram. score = 10 / (2 sqrt2) / 4
    # B: identical 2-word caption: orders 1, 2 -> 1 each: 10 * 2 / 4 = 5
    refs = [["dog runs"], ["cat sleeps"]]
    score_a = 10 / (2 * math.sqrt(2)) / 4
    assert cider_d(["dog dog", "cat sleeps"], refs) == pytest.approx((score_a + 5) / 2)


def test_cider_averages_over_references():
    # A has refs "dog runs fast" (identical to cand: 1+1+1+0) and "bird flies" (no
    # overlap: 0) -> 10 * (3 + 0) / 4 / 2 = 3.75. B: "cat sleeps" identical -> 5.
    # Every ref n-gram sits in one image only -> all weights log 2, as above.
    refs = [["dog runs fast", "bird flies"], ["cat sleeps"]]
    assert cider_d(["dog runs fast", "cat sleeps"], refs) == pytest.approx((3.75 + 5) / 2)


def test_caption_metrics_reject_bad_corpora():
    with pytest.raises(ValueError):
        cider_d(["a"], [["a"], ["b"]])
    with pytest.raises(ValueError):
        bleu(["a"], [[]])


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


def test_paired_p_uses_mcnemar_for_shares_and_a_paired_bootstrap_otherwise():
    before, after = [True] * 5 + [True, False], [False] * 5 + [True, False]
    weights = bootstrap_weights(range(7))
    assert paired_p(share_stats(before), share_stats(after), weights) == pytest.approx(0.0625)
    # a non-binary metric: every caption score improves by 1 -> no resample reaches 0
    lo, hi = share_stats([0.5] * 20), share_stats([1.5] * 20)
    assert paired_p(lo, hi, bootstrap_weights(range(20))) == 0.0
    assert paired_p(lo, lo, bootstrap_weights(range(20))) == 1.0
    rng = np.random.default_rng(0)
    base = rng.normal(size=50)
    noisy = share_stats(base + rng.normal(size=50) + 0.01)
    p = paired_p(share_stats(base), noisy, bootstrap_weights(range(50), seed=3))
    assert 0.2 < p <= 1.0
    shifted = share_stats(base + rng.normal(scale=0.1, size=50) + 0.5)
    assert paired_p(share_stats(base), shifted, bootstrap_weights(range(50))) < 0.01
    # MaxSkew's columns follow the answers given: runs that answer differently still pair up
    skew_before = max_skew_statistics(["x", "y"] * 10, ["doctor"] * 20)
    skew_after = max_skew_statistics(["x", "y"] * 10, ["doctor", "chef"] * 10)
    assert paired_p(skew_before, skew_after, bootstrap_weights(range(20))) < 0.05
    with pytest.raises(ValueError, match="same samples"):
        paired_p(share_stats([0.5] * 3), share_stats([0.5] * 4), weights)


# ----------------------------------------------------------------------------- registry


def test_metric_registry():
    expected = {"accuracy", "precision", "recall", "f1", "yes_ratio", "acc", "acc_plus",
                "score", "aAcc", "fAcc", "qAcc", "bleu", "cider", "max_skew", "toxicity",
                "exact_match", "consistency", "stereotype_rate"}
    assert set(METRICS) == expected
    assert METRICS["consistency"].higher_is_better is True
    assert METRICS["stereotype_rate"].higher_is_better is False
    assert METRICS["yes_ratio"].higher_is_better is None
    assert METRICS["max_skew"].higher_is_better is False
    assert METRICS["toxicity"].higher_is_better is False
    assert METRICS["cider"].higher_is_better is True
    assert all(m.kind in ("accuracy", "score") for m in METRICS.values())
    with pytest.raises(ValueError):
        register_metric(MetricInfo("bleu", True, "score"))
    try:
        assert register_metric(MetricInfo("tmp_metric", True, "score")).name == "tmp_metric"
        assert "tmp_metric" in METRICS
    finally:
        METRICS.pop("tmp_metric", None)
