"""Worked examples for pytest_lvlmbench.metrics.vqa, each derived by hand from the official code:
GT-Vision-Lab/VQA vqaEval.py (a013f00), LLaVA m4c_evaluator.py / convert_gqa_for_eval.py /
eval_science_qa.py (c121f04). Comments show the arithmetic."""

from __future__ import annotations

import pytest

from pytest_lvlmbench.metrics import vqa
from pytest_lvlmbench.metrics.vqa import (
    gqa_correct,
    normalize_answer,
    normalized_exact_match,
    scienceqa_correct,
    scienceqa_parse,
    textvqa_accuracy,
    textvqa_normalize,
    vqa_accuracy,
)


def test_public_api():
    assert set(vqa.__all__) >= {"normalize_answer", "vqa_accuracy", "textvqa_normalize", "textvqa_accuracy",
                                "gqa_correct", "scienceqa_parse", "scienceqa_correct"}


# ----------------------------------------------------------------------------- normalize_answer


@pytest.mark.parametrize("raw, expected", [
    ("Two dogs.", "2 dogs"),          # number word -> digit, final period dropped
    ("the Cat", "cat"),               # lowercase, article removed
    ("An apple", "apple"),
    ("  Yes!\n", "yes"),              # '!' touches no space -> a space; split() eats the rest
    ("dont", "don't"),                # contraction table
    ("1,000", "1000"),                # digit,digit: marks deleted, not spaced
    ("3.5", "3.5"),                   # a period before a digit is kept
    ("red-white", "red white"),       # in-word hyphen -> space
    ("left , right", "left right"),   # mark touching a space -> deleted
    ("none", "0"),
    ("what's up?", "what's up"),      # '?' inside text -> space; apostrophe kept
])
def test_normalize_answer_basic_rules(raw, expected):
    assert normalize_answer(raw) == expected


def test_normalize_answer_deletes_a_period_after_a_digit_because_the_lookbehind_is_a_typo():
    # periodStrip "(?!<=\d)(\.)(?!\d)" is a look-ahead for "<=digit": every '.' not before a digit goes
    assert normalize_answer("2.") == "2"
    assert normalize_answer(".5") == ".5"     # followed by a digit: kept
    assert normalize_answer("e.g.") == "eg"


def test_normalize_answer_digit_comma_digit_deletes_every_mark():
    # "1,000-2,000" holds digit,digit, so '-' is deleted too instead of becoming a space
    assert normalize_answer("1,000-2,000") == "10002000"
    assert normalize_answer("1-2") == "1 2"   # no digit,digit: in-word '-' -> space


def test_normalize_answer_keeps_colons_and_apostrophes():
    assert normalize_answer("10:30") == "10:30"
    assert normalize_answer("don't") == "don't"
    assert normalize_answer("dog's") == "dog's"


def test_normalize_answer_contraction_quirks():
    assert normalize_answer("Im") == "im"                  # key "Im" is looked up after lowercasing: dead
    assert normalize_answer("somebody'd") == "somebodyd"   # the table maps this one backwards
    assert normalize_answer("twas") == "'twas"
    assert normalize_answer("eleven") == "eleven"          # number words stop at ten


def test_normalize_answer_deletes_at_most_32_periods():
    # re.UNICODE (= 32) is passed as the count argument of sub(): 33 periods -> the last survives
    assert normalize_answer("x." * 33) == "x" * 33 + "."


# ----------------------------------------------------------------------------- vqa_accuracy


@pytest.mark.parametrize("matches, expected", [
    # 10 humans, m say "two" (normalised "2"), the rest "three". Leave-one-out over the 10:
    # dropping a matching human leaves m-1 matches, dropping another leaves m.
    (1, (1 * 0 + 9 * (1 / 3)) / 10),            # 0.3
    (2, (2 * (1 / 3) + 8 * (2 / 3)) / 10),      # 0.6
    (3, (3 * (2 / 3) + 7 * 1) / 10),            # 0.9
    (4, 1.0),                                   # min(1, 3/3) everywhere
    (9, 1.0),
])
def test_vqa_accuracy_leave_one_out(matches, expected):
    refs = ["two"] * matches + ["three"] * (10 - matches)
    # the answers differ, so both sides are normalised: "2." -> "2" and "two" -> "2"
    assert vqa_accuracy("2.", refs) == pytest.approx(expected)


def test_vqa_accuracy_known_values():
    refs = ["2"] * 2 + ["3"] * 8
    assert vqa_accuracy("2", refs) == pytest.approx(0.6)
    assert vqa_accuracy("3", refs) == pytest.approx(1.0)
    assert vqa_accuracy("4", refs) == 0.0


def test_vqa_does_not_normalise_when_all_references_agree():
    # len(set(answers)) == 1: raw, case-sensitive comparison after \n/\t -> ' ' and strip()
    assert vqa_accuracy("Yes", ["yes"] * 10) == 0.0
    assert vqa_accuracy("2", ["two"] * 10) == 0.0
    assert vqa_accuracy("2.", ["2"] * 10) == 0.0
    assert vqa_accuracy(" yes\n", ["yes"] * 10) == 1.0
    # one dissenting answer switches normalisation on: "Yes" -> "yes" matches 9, every subset >= 8
    assert vqa_accuracy("Yes", ["yes"] * 9 + ["no"]) == 1.0
    # a raw-equal prediction still scores 1.0
    assert vqa_accuracy("two", ["two"] * 10) == 1.0


def test_vqa_accuracy_digit_comma_digit_quirk():
    # prediction "1,000-2,000" -> "10002000" (every mark deleted), said by 3 of 10 answers:
    # (3 * 2/3 + 7 * 1) / 10 = 0.9
    refs = ["10002000"] * 3 + ["1000 2000"] * 7
    assert vqa_accuracy("1,000-2,000", refs) == pytest.approx(0.9)
    # TextVQA's processor removes commas first, so the same text becomes "1000 2000": 7 matches -> 1.0
    assert textvqa_accuracy("1,000-2,000", refs) == 1.0


def test_vqa_accuracy_with_fewer_than_ten_references_uses_the_same_formula():
    assert vqa_accuracy("cat", ["cat"]) == 0.0                       # the only answer is left out
    assert vqa_accuracy("cat", ["cat", "cat"]) == pytest.approx(1 / 3)   # each subset: 1 match
    assert vqa_accuracy("cat", ["Cat", "cat"]) == pytest.approx(1 / 3)   # differ -> normalised, same
    assert vqa_accuracy("cat", ["cat"] * 3) == pytest.approx(2 / 3)
    assert vqa_accuracy("cat", ["cat"] * 4) == 1.0
    # 5 answers, 2 match: (2 * 1/3 + 3 * 2/3) / 5 = 8/15
    assert vqa_accuracy("cat", ["cat", "cat", "dog", "dog", "dog"]) == pytest.approx(8 / 15)


def test_vqa_accuracy_without_references_is_an_error():
    with pytest.raises(ValueError, match="at least one reference"):
        vqa_accuracy("cat", [])
    with pytest.raises(TypeError, match="single string"):
        vqa_accuracy("cat", "cat")


def test_normalized_exact_match_is_the_single_reference_variant():
    assert normalized_exact_match("The cat", ["cat"]) == 1.0
    assert normalized_exact_match("dog", ["cat", "kitten"]) == 0.0
    assert normalized_exact_match("Kitten.", ["cat", "kitten"]) == 1.0
    assert normalized_exact_match("Yes", ["yes"]) == 1.0   # always normalised, unlike vqa_accuracy
    with pytest.raises(ValueError):
        normalized_exact_match("cat", [])


# ----------------------------------------------------------------------------- TextVQA


@pytest.mark.parametrize("raw, expected", [
    ("Dog's bone?", "dog 's bone"),     # lowercase, '?' deleted, "'s" -> " 's"
    ("she's", "she 's"),                 # so "she's" never reaches the contraction table
    ("1,000-2,000", "1000 2000"),        # commas gone first: the digit,digit rule never fires
    ("Two.", "2"),
    ("Coca-Cola", "coca cola"),
    ("The  answer\tis", "answer is"),
])
def test_textvqa_normalize(raw, expected):
    assert textvqa_normalize(raw) == expected


def test_textvqa_always_normalises():
    assert textvqa_accuracy("Yes", ["yes"] * 10) == 1.0        # vqa_accuracy gives 0.0 here
    assert vqa_accuracy("Yes", ["yes"] * 10) == 0.0


def test_textvqa_accuracy_leave_one_out():
    # "coca cola" vs 2 x "Coca-Cola" (-> "coca cola") and 8 x "coke": (2 * 1/3 + 8 * 2/3) / 10 = 0.6
    assert textvqa_accuracy("coca cola", ["Coca-Cola"] * 2 + ["coke"] * 8) == pytest.approx(0.6)
    assert textvqa_accuracy("pepsi", ["Coca-Cola"] * 2 + ["coke"] * 8) == 0.0


def test_textvqa_needs_exactly_ten_answers():
    with pytest.raises(ValueError, match="exactly 10"):
        textvqa_accuracy("a", ["a"] * 9)
    with pytest.raises(ValueError, match="at least one"):
        textvqa_accuracy("a", [])


# ----------------------------------------------------------------------------- GQA


@pytest.mark.parametrize("prediction, answer, expected", [
    ("Yes.", "yes", True),        # trailing '.' stripped, lowercased
    ("Left...", "left", True),    # rstrip('.') removes every trailing period
    ("Yes. ", "yes", True),       # model_vqa_loader strips the decoded text first
    ("U.S.", "u.s", True),        # only the trailing period goes
    ("the cat", "cat", False),    # no article removal
    ("yes!", "yes", False),       # no other punctuation removed
    ("cat", "Cat", False),        # the gold answer is compared as is
    ("two", "2", False),          # no number mapping
])
def test_gqa_correct(prediction, answer, expected):
    assert gqa_correct(prediction, answer) is expected


# ----------------------------------------------------------------------------- ScienceQA


@pytest.mark.parametrize("prediction, expected", [
    ("A", "A"),
    (" C \n", "C"),                          # saved .strip()-ped
    ("a", "FAILED"),                         # upper case only
    ("B. Paris", "B"),                       # "X. " prefix
    ("B.", "FAILED"),                        # too short for the prefix rule, no regex match
    ("B.Paris", "FAILED"),                   # prefix needs ". "
    ("The answer is C.", "C"),
    ("I think The answer is C!", "C"),       # the regex '.' is any character
    ("The answer is C", "FAILED"),           # ... but one must follow the letter
    ("the answer is C.", "FAILED"),          # case-sensitive
    ("The answer is A. The answer is B.", "FAILED"),   # two matches
    ("A. x\nThe answer is B.", "A"),         # prefix rule comes first
    ("D", "D"),                              # beyond 3 choices: still returned as parsed
    ("The answer is Z.", "Z"),               # any capital letter
])
def test_scienceqa_parse(prediction, expected):
    assert scienceqa_parse(prediction, 3) == expected


def test_scienceqa_letters_beyond_the_choices_are_wrong():
    assert scienceqa_correct("C", 2, 3) is True
    assert scienceqa_correct("B. Paris", 1, 2) is True
    # get_pred_idx: "D" is not among options[:3] -> -1, never equal to an answer index
    assert not any(scienceqa_correct("D", i, 3) for i in range(3))
    assert scienceqa_correct("D", 3, 4) is True
    assert scienceqa_correct("The answer is Z.", 0, 4) is False
    assert scienceqa_correct("a", 0, 4) is False             # FAILED
    assert scienceqa_correct("E", 4, 6) is True              # six choices: E is still the fifth


def test_scienceqa_rejects_impossible_questions():
    with pytest.raises(ValueError, match="not one of the 3 choices"):
        scienceqa_correct("A", 3, 3)
    with pytest.raises(ValueError, match="only knows the options"):
        scienceqa_correct("A", 5, 6)
    with pytest.raises(ValueError, match="positive int"):
        scienceqa_parse("A", 0)
