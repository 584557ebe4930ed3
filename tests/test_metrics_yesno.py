"""Worked examples for pytest_lvlmbench.metrics.yesno, each derived by hand from the official code:
LLaVA eval_pope.py (c121f04), MME eval_tool/calculation.py, HallusionBench utils.py (744007c),
lmms-eval's named variants. Comments show the arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_lvlmbench.metrics import yesno
from pytest_lvlmbench.metrics.yesno import (
    MME_COGNITION,
    MME_PERCEPTION,
    hallusion_rule_judge,
    hallusion_scores,
    hallusion_statistics,
    mme_parse,
    mme_parse_lmms_eval,
    mme_scores,
    mme_statistics,
    mme_totals,
    pope_parse,
    pope_parse_strict,
    pope_scores,
    pope_statistics,
)

POPE_KEYS = {"accuracy", "precision", "recall", "f1", "yes_ratio"}


def test_public_api():
    assert set(yesno.__all__) >= {"pope_parse", "pope_parse_strict", "pope_statistics", "pope_scores", "mme_parse",
                                  "mme_parse_lmms_eval", "mme_statistics", "mme_totals", "hallusion_rule_judge",
                                  "hallusion_statistics", "hallusion_scores"}


# ----------------------------------------------------------------------------- POPE parse


@pytest.mark.parametrize("text, expected", [
    ("Yes", "yes"), ("No", "no"), ("no.", "no"),
    ("There is no dog.", "no"),
    ("Yes. There is no cat.", "yes"),      # only the text before the first '.'
    ("no, there is", "no"),                # commas dropped: "no" is a word
    ("not at all", "no"),
    ("NO", "yes"),                         # case-sensitive word list No/no/not
    ("Not sure", "yes"),                   # "Not" is not in the list
    ("Nope", "yes"), ("isn't", "yes"),
    ("No\nthere is", "yes"),               # split on ' ' only: "No\nthere" is one word
    ("", "yes"), ("I cannot tell", "yes"),  # everything else is yes
])
def test_pope_parse_follows_eval_pope(text, expected):
    assert pope_parse(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Yes", "yes"), (" no \n", "no"), ("Yes.", "other"), ("yes, there is", "other"), ("", "other"),
])
def test_pope_parse_strict_is_lmms_evals_exact_match(text, expected):
    assert pope_parse_strict(text) == expected


# ----------------------------------------------------------------------------- POPE metrics

LABELS = ["yes"] * 6 + ["no"] * 4
PREDICTIONS = [
    # 'yes' items: eval_pope reads yes, yes, yes, no, yes, yes -> TP 5, FN 1
    "Yes.", "yes", "Yes, there is.", "No.", "I cannot tell", "NO",
    # 'no' items: yes, no ('not'), yes ('Nope'), no -> FP 2, TN 2
    "Yes", "There is a cat, not a dog.", "Nope", "No, there is not.",
]


def test_pope_worked_confusion_matrix():
    s = pope_scores(PREDICTIONS, LABELS)
    assert set(s) == POPE_KEYS
    assert s["accuracy"] == pytest.approx(7 / 10)      # (TP + TN) / 10 = (5 + 2) / 10
    assert s["precision"] == pytest.approx(5 / 7)      # TP / (TP + FP)
    assert s["recall"] == pytest.approx(5 / 6)         # TP / (TP + FN)
    p, r = 5 / 7, 5 / 6
    assert s["f1"] == pytest.approx(2 * p * r / (p + r))   # = 10/13
    assert s["f1"] == pytest.approx(10 / 13)
    # eval_pope: share of predictions that are yes = 7/10 (lmms-eval's ground-truth count: 6/10)
    assert s["yes_ratio"] == pytest.approx(7 / 10)


def test_pope_with_the_strict_parse_counts_other_as_lmms_eval_does():
    # strict: yes items -> other, yes, other, other, other, no (TP 1, FN 1, four 'other')
    #         no items  -> yes, other, other, other (FP 1, TN 0, three 'other')
    s = pope_scores(PREDICTIONS, LABELS, parse=pope_parse_strict)
    assert s["accuracy"] == pytest.approx(1 / 10)      # 'other' is wrong: only the TP
    assert s["precision"] == pytest.approx(1 / 2)      # TP / (TP + FP) = 1 / 2
    assert s["recall"] == pytest.approx(1 / 2)         # TP / (TP + FN): 'other' is out of it
    assert s["f1"] == pytest.approx(1 / 2)
    assert s["yes_ratio"] == pytest.approx(2 / 10)     # 'other' stays in the denominator


def test_pope_all_yes():
    s = pope_statistics(["Yes"] * 3, ["yes"] * 3)
    assert {k: v.value() for k, v in s.items()} == {k: 1.0 for k in POPE_KEYS}
    assert not any(v.undefined for v in s.values())
    # answering yes to everything on a balanced split: P = 1/2, R = 1, F1 = 2/3, yes_ratio = 1
    s = pope_scores(["yes"] * 4, ["yes", "yes", "no", "no"])
    assert s == pytest.approx({"accuracy": 0.5, "precision": 0.5, "recall": 1.0, "f1": 2 / 3, "yes_ratio": 1.0})


def test_pope_no_yes_predictions_and_no_positives_are_defined_and_noted():
    # eval_pope would divide by zero (TP + FP = 0, TP + FN = 0): 0.0 with a note
    s = pope_statistics(["no", "No."], ["no", "NO"])      # labels in any case
    assert {k: v.value() for k, v in s.items()} == {"accuracy": 1.0, "precision": 0.0, "recall": 0.0,
                                                     "f1": 0.0, "yes_ratio": 0.0}
    assert "no 'yes' predictions" in s["precision"].undefined
    assert "no 'yes' labels" in s["recall"].undefined
    assert "no 'yes' predictions" in s["f1"].undefined
    assert s["accuracy"].undefined == s["yes_ratio"].undefined == ""


def test_pope_f1_without_true_positives_is_noted():
    # TP 0, FP 1, FN 1: P = 0/1 and R = 0/1 are defined, but 2PR / (P + R) = 0/0
    s = pope_statistics(["yes", "no"], ["no", "yes"])
    assert s["precision"].value() == s["recall"].value() == s["f1"].value() == 0.0
    assert not s["precision"].undefined and not s["recall"].undefined
    assert "no true positives" in s["f1"].undefined


def test_pope_empty_input_is_all_zero_and_noted():
    s = pope_statistics([], [])
    assert {k: v.value() for k, v in s.items()} == {k: 0.0 for k in POPE_KEYS}
    assert all(v.undefined for v in s.values())


def test_pope_rejects_bad_input():
    with pytest.raises(ValueError, match="1 predictions but 2 labels"):
        pope_scores(["yes"], ["yes", "no"])
    with pytest.raises(ValueError, match="'yes' or 'no'"):
        pope_scores(["yes"], ["maybe"])
    with pytest.raises(ValueError, match="must return one of"):
        pope_scores(["yes"], ["yes"], parse=lambda text: "perhaps")


def test_pope_statistics_resample_equals_recomputation_on_the_resampled_corpus():
    # weights: sample 0 once, sample 1 twice, sample 2 once, sample 3 never, sample 4 once
    preds = ["yes", "no", "yes", "maybe", "Yes"]     # pope_parse: "maybe" -> yes
    labels = ["yes", "yes", "no", "yes", "yes"]
    stats = pope_statistics(preds, labels)
    w = np.array([[1.0, 2.0, 1.0, 0.0, 1.0]])
    expected = pope_scores(["yes", "no", "no", "yes", "Yes"], ["yes", "yes", "yes", "no", "yes"])
    assert {k: float(v.resampled(w)[0]) for k, v in stats.items()} == pytest.approx(expected)
    assert stats["accuracy"].binary


# ----------------------------------------------------------------------------- MME parse


@pytest.mark.parametrize("text, expected", [
    ("Yes", "yes"), ("no", "no"),
    ("No.", "no"),                 # '.' not removed, but "no" is within the first 4 characters
    ("Yes, it is", "yes"),
    ("   yes", "other"),           # not stripped: the first 4 characters are "   y"
    ("Y", "other"), ("N", "other"),  # no single-letter rule in the official tool
    ("Not sure", "no"), ("Nothing", "no"), ("snowy", "no"), ("know", "no"),   # substrings
    ("Eyes", "yes"),
    ("I know", "other"),           # "i kn"
    ("no, yes", "no"),             # "yes" is tested first, but is not in "no, "
    ("There is", "other"),
])
def test_mme_parse_follows_the_official_tool(text, expected):
    assert mme_parse(text) == expected


@pytest.mark.parametrize("text, official, lmms_eval", [
    ("Y", "other", "yes"), ("n.", "other", "no"),     # single character after deleting '.'
    ("  yes", "other", "yes"),                        # stripped first
    ("...no", "other", "no"),                         # periods deleted first
    ("yes", "yes", "yes"), ("No.", "no", "no"), ("x", "other", "other"),
])
def test_mme_parse_lmms_eval_differs_on_stripping_periods_and_single_letters(text, official, lmms_eval):
    assert mme_parse(text) == official
    assert mme_parse_lmms_eval(text) == lmms_eval


# ----------------------------------------------------------------------------- MME metrics


def _mme(rows):
    return [dict(image_id=i, prediction=p, label=g) for i, p, g in rows]


MME_RECORDS = _mme([
    ("A", "Yes.", "Yes"), ("A", "No", "No"),        # image A: both right
    ("B", "yes", "Yes"), ("B", "yes", "No"),        # image B: one right
    ("C", "no", "Yes"), ("C", "maybe", "No"),       # image C: both wrong ('maybe' -> other)
])


def test_mme_acc_and_acc_plus():
    s = mme_scores(MME_RECORDS)
    assert s["accuracy"] == pytest.approx(3 / 6)
    assert s["accuracy_plus"] == pytest.approx(1 / 3)
    assert s["mme_score"] == pytest.approx(100 * 3 / 6 + 100 * 1 / 3)   # 83.33


def test_mme_single_letters_are_wrong_officially_and_right_for_lmms_eval():
    records = _mme([("A", "Y", "Yes"), ("A", "N", "No")])
    assert mme_scores(records) == {"accuracy": 0.0, "accuracy_plus": 0.0, "mme_score": 0.0}
    assert mme_scores(records, parse=mme_parse_lmms_eval) == {"accuracy": 1.0, "accuracy_plus": 1.0,
                                                              "mme_score": 200.0}


def test_mme_pairs_are_required():
    with pytest.raises(ValueError, match="exactly two questions"):
        mme_scores(_mme([("A", "yes", "Yes"), ("B", "no", "No"), ("B", "no", "No")]))
    with pytest.raises(ValueError, match="'yes' or 'no'"):
        mme_scores(_mme([("A", "yes", "Maybe"), ("A", "no", "No")]))
    with pytest.raises(ValueError, match="lacks"):
        mme_scores([{"image_id": "A", "prediction": "yes"}])


def test_mme_empty_is_zero_and_noted():
    s = mme_statistics([])
    assert {k: v.value() for k, v in s.items()} == {"accuracy": 0.0, "accuracy_plus": 0.0, "mme_score": 0.0}
    assert all(v.undefined for v in s.values())


def test_mme_score_resamples_with_its_rows():
    stats = mme_statistics(MME_RECORDS)
    # keep image A twice and C once (whole images): acc = (4 + 0) / 6, acc+ = 2/3
    w = np.array([[2.0, 2.0, 0.0, 0.0, 1.0, 1.0]])
    assert stats["mme_score"].resampled(w)[0] == pytest.approx(100 * 4 / 6 + 100 * 2 / 3)


def test_mme_totals_sum_the_official_category_lists():
    perception = {name: float(i) for i, name in enumerate(MME_PERCEPTION)}    # 0 + 1 + ... + 9 = 45
    cognition = {name: 10.0 * (i + 1) for i, name in enumerate(MME_COGNITION)}  # 10 + 20 + 30 + 40
    assert mme_totals({**perception, **cognition}) == {"perception_score": 45.0, "cognition_score": 100.0}
    assert mme_totals(perception) == {"perception_score": 45.0}               # cognition not run
    assert len(MME_PERCEPTION) == 10 and len(MME_COGNITION) == 4


def test_mme_totals_reject_unknown_and_partial_families():
    with pytest.raises(ValueError, match=r"unknown MME subtask\(s\) \['ocr'\].*'OCR'"):
        mme_totals({"ocr": 100.0})
    with pytest.raises(ValueError, match=r"missing \['text_translation', 'code_reasoning'\]"):
        mme_totals({"commonsense_reasoning": 100.0, "numerical_calculation": 50.0})
    assert mme_totals({"commonsense_reasoning": 100.0, "numerical_calculation": 50.0},
                      allow_partial=True) == {"cognition_score": 150.0}


# ----------------------------------------------------------------------------- HallusionBench


@pytest.mark.parametrize("prediction, gt, expected", [
    ("Yes, it is.", "1", 1), ("No", "1", 0), ("No", "0", 1),
    ("I see two eyes", "0", 0),        # "eyes" contains "yes": read as "1"
    ("Yesterday it was", "1", 1),
    ("NO, YES", "1", 1),               # lower-cased substring search
    ("I cannot tell", "0", 1),         # anything without "yes" is "0"
])
def test_hallusion_rule_judge(prediction, gt, expected):
    assert hallusion_rule_judge(prediction, {"gt_answer": gt}) == expected


def test_hallusion_rule_judge_needs_a_binary_gt_answer():
    with pytest.raises(ValueError, match="gt_answer"):
        hallusion_rule_judge("yes", {"gt_answer": "yes"})


def _hb(category, subcategory, set_id, figure_id, question_id, verdict):
    """A record whose 'prediction' is the verdict, for a judge that returns it."""
    return dict(category=category, subcategory=subcategory, set_id=set_id, figure_id=figure_id,
                question_id=question_id, gt_answer="1", prediction=verdict,
                visual_input=("0" if figure_id == "0" else "1") if category == "VS" else "1")


VERDICT = lambda prediction, record: int(prediction)  # noqa: E731  (a stand-in for the GPT judge)

HB_RECORDS = [
    _hb("VD", "chart", "0", "0", "0", "1"),   # 1 correct
    _hb("VD", "chart", "0", "0", "1", "1"),   # 2 correct
    _hb("VD", "chart", "0", "1", "0", "1"),   # 3 correct
    _hb("VD", "chart", "0", "1", "1", "0"),   # 4 wrong
    _hb("VS", "map", "0", "0", "0", "2"),     # 5 unclear without a figure: correct
    _hb("VS", "map", "0", "1", "0", "2"),     # 6 unclear with a figure: wrong
    _hb("VS", "map", "0", "2", "0", "1"),     # 7 correct
]


def test_hallusion_official_grouping():
    s = hallusion_scores(HB_RECORDS, judge=VERDICT)
    assert s["accuracy"] == pytest.approx(5 / 7)          # rows 1, 2, 3, 5, 7
    # figures VD_chart_0_0 {1, 2} right, VD_chart_0_1 {3, 4} wrong, VS_map_0_1 {6} wrong,
    # VS_map_0_2 {7} right; VS_map_0_0 (no figure) is left out: 2 / 4
    assert s["figure_accuracy"] == pytest.approx(2 / 4)
    # pairs VD_chart_0_0 {1, 3} right, VD_chart_0_1 {2, 4} wrong, VS_map_0_0 {5, 6, 7} wrong
    # (the no-figure question is in its pair): 1 / 3
    assert s["pair_accuracy"] == pytest.approx(1 / 3)


def test_hallusion_unclear_counts_only_for_the_vs_question_without_figure():
    only_blind = [_hb("VS", "map", "0", "0", "0", "2")]
    assert hallusion_scores(only_blind, judge=VERDICT)["accuracy"] == 1.0
    with_figure = [_hb("VS", "map", "0", "1", "0", "2"), _hb("VD", "chart", "0", "0", "0", "2")]
    assert hallusion_scores(with_figure, judge=VERDICT)["accuracy"] == 0.0


def test_hallusion_keys_include_category_subcategory_and_set():
    # same figure_id / question_id in two subcategories and two sets: four figures, four pairs
    records = [_hb("VD", "chart", "0", "0", "0", "1"), _hb("VD", "map", "0", "0", "0", "0"),
               _hb("VD", "chart", "1", "0", "0", "1"), _hb("VS", "chart", "0", "1", "0", "0")]
    s = hallusion_scores(records, judge=VERDICT)
    assert s["figure_accuracy"] == pytest.approx(2 / 4)
    assert s["pair_accuracy"] == pytest.approx(2 / 4)


def test_hallusion_with_the_rule_judge():
    records = [dict(_hb("VD", "chart", "0", "0", "0", ""), prediction="Yes, it is.", gt_answer="1"),
               dict(_hb("VD", "chart", "0", "1", "0", ""), prediction="Yes.", gt_answer="0"),
               dict(_hb("VS", "map", "0", "0", "0", ""), prediction="I cannot say", gt_answer="1")]
    s = hallusion_scores(records)              # judged 1, 0, 0 (the rule never says unclear)
    assert s == pytest.approx({"accuracy": 1 / 3, "figure_accuracy": 1 / 2, "pair_accuracy": 0.0})


def test_hallusion_degenerate_inputs():
    s = hallusion_statistics([])
    assert {k: v.value() for k, v in s.items()} == {"accuracy": 0.0, "figure_accuracy": 0.0, "pair_accuracy": 0.0}
    assert all(v.undefined for v in s.values())
    blind = hallusion_statistics([_hb("VS", "map", "0", "0", "0", "1")], judge=VERDICT)
    assert blind["accuracy"].value() == 1.0 and blind["figure_accuracy"].value() == 0.0
    assert "no figures" in blind["figure_accuracy"].undefined
    assert len(blind["figure_accuracy"].rows) == 1           # one row per sample, for the bootstrap
    with pytest.raises(ValueError, match="appears twice"):
        hallusion_scores([_hb("VD", "chart", "0", "0", "0", "1")] * 2, judge=VERDICT)
    with pytest.raises(ValueError, match="0, 1 or 2"):
        hallusion_scores([_hb("VD", "chart", "0", "0", "0", "3")], judge=VERDICT)
    with pytest.raises(ValueError, match="lacks"):
        hallusion_scores([{"category": "VD", "prediction": "yes"}])
