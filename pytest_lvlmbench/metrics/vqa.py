"""Short-answer scoring as the official code behind LLaVA's published numbers does it.

- VQA soft accuracy: GT-Vision-Lab/VQA ``PythonEvaluationTools/vqaEvaluation/vqaEval.py`` (class
  ``VQAEval``) at a013f00 (2021-03-11, "Fixed processing answers bug", the head of the repository).
- TextVQA: haotian-liu/LLaVA ``llava/eval/m4c_evaluator.py`` (``EvalAIAnswerProcessor``,
  ``TextVQAAccuracyEvaluator``) at c121f04, called by ``llava/eval/eval_textvqa.py``.
- GQA: LLaVA ``scripts/convert_gqa_for_eval.py`` then the GQA ``eval.py --tier testdev_balanced``.
- ScienceQA: LLaVA ``llava/eval/eval_science_qa.py``.

Every quirk of those scripts is kept (each docstring lists them); a deliberate difference is a
separate, named function.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["normalize_answer", "vqa_accuracy", "normalized_exact_match", "textvqa_normalize", "textvqa_accuracy",
           "vizwiz_accuracy", "gqa_correct", "scienceqa_parse", "scienceqa_correct", "SCIENCEQA_OPTIONS"]

# ----------------------------------------------------------------------------- shared tables

# The contraction table of vqaEval.py (``self.contractions``), identical to m4c_evaluator.py's
# ``EvalAIAnswerProcessor.CONTRACTIONS``: 120 "written form -> canonical form" pairs. Its quirks are
# kept: the keys "Id've", "I'dve", "Im" and "Ive" hold capitals and are looked up after
# lowercasing, so they never fire; "somebody'd" maps to "somebodyd" (backwards); "twas" -> "'twas".
_CONTRACTION_TABLE = """
aint ain't  arent aren't  cant can't  couldve could've  couldnt couldn't  couldn'tve couldn't've
couldnt've couldn't've  didnt didn't  doesnt doesn't  dont don't  hadnt hadn't  hadnt've hadn't've
hadn'tve hadn't've  hasnt hasn't  havent haven't  hed he'd  hed've he'd've  he'dve he'd've  hes he's
howd how'd  howll how'll  hows how's  Id've I'd've  I'dve I'd've  Im I'm  Ive I've  isnt isn't  itd it'd
itd've it'd've  it'dve it'd've  itll it'll  let's let's  maam ma'am  mightnt mightn't  mightnt've mightn't've
mightn'tve mightn't've  mightve might've  mustnt mustn't  mustve must've  neednt needn't  notve not've
oclock o'clock  oughtnt oughtn't  ow's'at 'ow's'at  'ows'at 'ow's'at  'ow'sat 'ow's'at  shant shan't
shed've she'd've  she'dve she'd've  she's she's  shouldve should've  shouldnt shouldn't  shouldnt've shouldn't've
shouldn'tve shouldn't've  somebody'd somebodyd  somebodyd've somebody'd've  somebody'dve somebody'd've
somebodyll somebody'll  somebodys somebody's  someoned someone'd  someoned've someone'd've  someone'dve someone'd've
someonell someone'll  someones someone's  somethingd something'd  somethingd've something'd've
something'dve something'd've  somethingll something'll  thats that's  thered there'd  thered've there'd've
there'dve there'd've  therere there're  theres there's  theyd they'd  theyd've they'd've  they'dve they'd've
theyll they'll  theyre they're  theyve they've  twas 'twas  wasnt wasn't  wed've we'd've  we'dve we'd've
weve we've  werent weren't  whatll what'll  whatre what're  whats what's  whatve what've  whens when's
whered where'd  wheres where's  whereve where've  whod who'd  whod've who'd've  who'dve who'd've
wholl who'll  whos who's  whove who've  whyll why'll  whyre why're  whys why's  wont won't  wouldve would've
wouldnt wouldn't  wouldnt've wouldn't've  wouldn'tve wouldn't've  yall y'all  yall'll y'all'll  y'allll y'all'll
yall'd've y'all'd've  y'alld've y'all'd've  y'all'dve y'all'd've  youd you'd  youd've you'd've  you'dve you'd've
youll you'll  youre you're  youve you've
"""
_CONTRACTIONS = dict(zip(_CONTRACTION_TABLE.split()[0::2], _CONTRACTION_TABLE.split()[1::2]))
assert len(_CONTRACTIONS) == 120

# ``manualMap`` / ``NUMBER_MAP``: only the number words zero..ten (and "none" -> "0").
_NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                 "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = ("a", "an", "the")
# ``punct`` / ``PUNCTUATIONS``, in their order. Not in it: ':', "'", '.' (periods have their own
# rule), '#', '$', '%', '&', '*', '|', '~'.
_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
                "?", "!")
# ``periodStrip`` is "(?!<=\d)(\.)(?!\d)": its first group was meant as a look-behind "not after a
# digit" but is a look-ahead for the text "<=digit", which can never start at a '.', so the rule is
# "delete every '.' not followed by a digit" ("2." -> "2", "3.5" kept, ".5" kept).
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
# Both scripts call ``periodStrip.sub("", text, re.UNICODE)``: re.UNICODE (32) lands in the ``count``
# slot, so at most the first 32 periods are deleted.
_PERIOD_COUNT = int(re.UNICODE)
_VQA_DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")        # vqaEval ``commaStrip``
_M4C_DIGIT_COMMA_DIGIT = re.compile(r"(?<=\d)(,)+(?=\d)")  # m4c ``COMMA_STRIP``


def _punctuation(text: str, digit_comma_digit: re.Pattern[str]) -> str:
    """processPunctuation / process_punctuation (same body in both scripts)."""
    # Every test looks at the *input* text, while the replacements pile up on the output.
    delete_all = digit_comma_digit.search(text) is not None
    out = text
    for mark in _PUNCTUATION:
        if delete_all or (mark + " ") in text or (" " + mark) in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_PERIOD_COUNT)


def _digits_articles(text: str) -> str:
    """processDigitArticle / process_digit_article (same body in both scripts)."""
    words = [_NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES)


def _whitespace(text: str) -> str:
    return text.replace("\n", " ").replace("\t", " ").strip()


# ----------------------------------------------------------------------------- VQA


def normalize_answer(text: str) -> str:
    """``processPunctuation`` then ``processDigitArticle`` of the official VQA evaluation.

    Reproduces GT-Vision-Lab/VQA ``PythonEvaluationTools/vqaEvaluation/vqaEval.py``,
    ``VQAEval.processPunctuation`` + ``VQAEval.processDigitArticle`` (a013f00). Quirks kept:

    * a mark of the punctuation list touching a space (``"a , b"``) is deleted, one inside a word
      (``"red-white"``) becomes a space; the test is made on the input text, per mark;
    * if the text holds digit,digit anywhere (``"1,000"``), *every* listed mark is deleted, none
      spaced (``"1,000-2,000" -> "10002000"``);
    * ':' and apostrophes are not in the list and survive (``"don't"`` stays);
    * a period not followed by a digit is deleted, also after a digit (``"2." -> "2"``), at most
      32 of them (``re.UNICODE`` passed as the ``count`` argument);
    * only then lowercase, split on whitespace, number words zero..ten -> digits ("none" -> "0",
      "eleven" kept), articles a/an/the dropped, then the contraction table (``"dont" -> "don't"``;
      the capitalised keys never fire).

    Newlines, tabs and outer spaces are not touched here: :func:`vqa_accuracy` does that first,
    as ``VQAEval.evaluate`` does. Example: ``"Two dogs." -> "2 dogs"``.
    """
    return _digits_articles(_punctuation(text, _VQA_DIGIT_COMMA_DIGIT))


def _check_references(references: Sequence[str], scorer: str) -> list[str]:
    if isinstance(references, str):
        raise TypeError(f"{scorer} takes a list of reference answers, got the single string {references!r}")
    references = list(references)
    if not references:
        raise ValueError(f"{scorer} needs at least one reference answer, got none "
                         "(the official formula divides by the number of answers)")
    return references


def _leave_one_out(prediction: str, answers: Sequence[str]) -> float:
    """mean over i of min(1, #(answers j != i equal to the prediction) / 3), summed in order like
    the official loops so the float is bit-identical."""
    matches = sum(answer == prediction for answer in answers)
    accs = [min(1.0, float(matches - (answer == prediction)) / 3) for answer in answers]
    return float(sum(accs)) / len(accs)


def vqa_accuracy(prediction: str, references: Sequence[str]) -> float:
    """Per-question VQA accuracy of ``VQAEval.evaluate`` (GT-Vision-Lab/VQA ``vqaEval.py``, a013f00).

    For each human answer i: acc_i = min(1, #(other answers equal to the prediction) / 3); the
    question's accuracy is the mean of acc_i (the ten leave-one-out subsets of VQAv2). Quirks kept:

    * prediction and answers first get newlines/tabs -> spaces and ``strip()``;
    * **only if the answers are not all identical** are prediction and answers normalised with
      :func:`normalize_answer`; when all agree the comparison is raw and case-sensitive
      (``"Yes"`` vs ten ``"yes"`` scores 0.0, ``"2."`` vs ten ``"2"`` scores 0.0);
    * :func:`normalize_answer`'s own quirks (digit,digit deletes every mark, periods, ...).

    Leave-one-out is by position (the official code removes the answer *record*, which has a
    unique answer_id). Any number of answers is scored by the same formula, as the official code
    (which never checks the count) would: with fewer than 4 answers 1.0 is out of reach (one answer:
    always 0.0; two equal to the prediction: 1/3; three: 2/3). For single-reference data use
    :func:`normalized_exact_match`. No answers: ``ValueError`` (the official code divides by zero).
    """
    references = _check_references(references, "vqa_accuracy")
    answers = [_whitespace(ref) for ref in references]
    prediction = _whitespace(prediction)
    if len(set(answers)) > 1:
        answers = [normalize_answer(answer) for answer in answers]
        prediction = normalize_answer(prediction)
    return _leave_one_out(prediction, answers)


def normalized_exact_match(prediction: str, references: Sequence[str]) -> float:
    """NOT an official scorer: 1.0 if the prediction equals any reference after
    :func:`normalize_answer` (and vqaEval's newline/tab/strip step), else 0.0.

    A deliberate difference from :func:`vqa_accuracy` for data with one reference per question
    (the shapes world), where the official leave-one-out formula always gives 0.0. Unlike
    :func:`vqa_accuracy`, both sides are always normalised.
    """
    references = _check_references(references, "normalized_exact_match")
    said = normalize_answer(_whitespace(prediction))
    return 1.0 if any(normalize_answer(_whitespace(ref)) == said for ref in references) else 0.0


# ----------------------------------------------------------------------------- TextVQA


def textvqa_normalize(text: str) -> str:
    """``EvalAIAnswerProcessor.__call__`` of LLaVA ``llava/eval/m4c_evaluator.py`` (c121f04; a copy
    of MMF's processor, also lmms-eval ``_task_utils/vqa_eval_metric.py``).

    Steps and quirks, in order:

    * ``word_tokenize``: lowercase, delete every ',' and '?', turn "'s" into " 's" (``"dog's" ->
      "dog 's"``, so "she's" never reaches the contraction table), strip;
    * newlines/tabs -> spaces, strip;
    * punctuation as :func:`normalize_answer`, except that the digit,digit test uses
      ``(?<=\\d)(,)+(?=\\d)`` and can never fire, the commas being gone already: ``"1,000-2,000"``
      gives ``"1000 2000"`` here but ``"10002000"`` in vqaEval;
    * periods (at most 32), numbers, articles and contractions as :func:`normalize_answer`.
    """
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = _whitespace(text)
    return _digits_articles(_punctuation(text, _M4C_DIGIT_COMMA_DIGIT))


def textvqa_accuracy(prediction: str, references: Sequence[str]) -> float:
    """Per-question accuracy of ``TextVQAAccuracyEvaluator`` (LLaVA ``llava/eval/m4c_evaluator.py``,
    ``_compute_answer_scores`` + ``eval_pred_list``; used by ``llava/eval/eval_textvqa.py``).

    Prediction and every answer are *always* normalised with :func:`textvqa_normalize` (no
    all-answers-agree exception, unlike :func:`vqa_accuracy`); then the leave-one-out score over the
    enumerated answers, min(1, matches among the other nine / 3), averaged over the ten; a
    prediction equal to no answer scores 0.0. The evaluator asserts exactly ten answers: any other
    count raises ``ValueError``.
    """
    references = _check_references(references, "textvqa_accuracy")
    if len(references) != 10:
        raise ValueError(f"textvqa_accuracy needs exactly 10 reference answers (m4c_evaluator's "
                         f"TextVQAAccuracyEvaluator asserts len(answers) == 10), got {len(references)}")
    return _leave_one_out(textvqa_normalize(prediction), [textvqa_normalize(ref) for ref in references])


def vizwiz_accuracy(prediction: str, references: Sequence[str]) -> float:
    """VizWiz-VQA val accuracy of lmms-eval (``lmms_eval/tasks/vizwiz_vqa/utils.py``,
    ``vizwiz_vqa_process_results``): :func:`textvqa_normalize` on the prediction and every answer, then
    the leave-one-out score of :func:`textvqa_accuracy` over however many answers there are (0.0 with
    none: the official loop would divide by zero on an unanswered row)."""
    answers = [textvqa_normalize(answer) for answer in references]
    return _leave_one_out(textvqa_normalize(prediction), answers) if answers else 0.0


# ----------------------------------------------------------------------------- GQA


def gqa_correct(prediction: str, answer: str) -> bool:
    """GQA accuracy of one question as LLaVA-1.5 computes it.

    * ``llava/eval/model_vqa_loader.py`` saves the decoded text ``.strip()``-ped;
    * LLaVA ``scripts/convert_gqa_for_eval.py``: ``text.rstrip('.').lower()`` on the prediction
      only: every trailing period goes, nothing else (``"Yes. "`` would keep its period, had the
      loader not stripped; inner/other punctuation, articles and spaces are kept: ``"the cat"``
      does not match ``"cat"``);
    * GQA ``eval.py`` (cs.stanford.edu/people/dorarad/gqa/evaluate.html; LLaVA docs/Evaluation.md
      links a gist that only removes missing-asset code): ``correct = (predicted == gold)``; the
      gold answer is not lowercased or stripped (GQA's answers are already lowercase).
    """
    return prediction.strip().rstrip(".").lower() == answer


# ----------------------------------------------------------------------------- ScienceQA

SCIENCEQA_OPTIONS = ("A", "B", "C", "D", "E")   # eval_science_qa.py ``--options`` default
_THE_ANSWER_IS = re.compile(r"The answer is ([A-Z]).")


def _check_choices(n_choices: int) -> None:
    if isinstance(n_choices, bool) or not isinstance(n_choices, int) or n_choices < 1:
        raise ValueError(f"n_choices must be a positive int, got {n_choices!r}")


def scienceqa_parse(prediction: str, n_choices: int) -> str:
    """The option letter LLaVA reads from an answer, or "FAILED" (``llava/eval/eval_science_qa.py``,
    the parse in its main loop; its ``parsed_ans``).

    On the text as ``llava/eval/model_vqa_science.py`` saves it (decoded, ``.strip()``-ped):

    1. the whole text is one of A-E (upper case only: ``"a"`` fails): that letter;
    2. at least 3 characters, the first one of A-E and then exactly ". ": the first letter
       (``"B. Paris"`` -> B; ``"B."`` alone is too short and ``"B.Paris"`` lacks the space: both
       fall through);
    3. the regex ``The answer is ([A-Z]).`` (case-sensitive; its '.' is any character, so a
       character must follow the letter: ``"The answer is C"`` at the very end fails) must match
       exactly once: its letter, which may be any of A-Z;
    4. else "FAILED".

    ``n_choices`` does not change the parse: like ``parsed_ans``, a letter beyond the choices (``"D"``
    with 3 choices, ``"The answer is Z."``) is returned as read; :func:`scienceqa_correct` scores
    it wrong, as ``get_pred_idx`` maps it to -1. It is checked to be a positive int.
    """
    _check_choices(n_choices)
    text = prediction.strip()
    if text in SCIENCEQA_OPTIONS:
        return text
    if len(text) >= 3 and text[0] in SCIENCEQA_OPTIONS and text[1:3] == ". ":
        return text[0]
    found = _THE_ANSWER_IS.findall(text)
    return found[0] if len(found) == 1 else "FAILED"


def scienceqa_correct(prediction: str, answer_index: int, n_choices: int) -> bool:
    """Whether LLaVA's ``eval_science_qa.py`` counts the answer correct: ``get_pred_idx`` maps the
    parsed letter (:func:`scienceqa_parse`) to its index if it is among the first ``n_choices`` of
    A-E, else -1 (letters beyond the choices and "FAILED" are wrong); correct iff that index equals
    the answer's. ``answer_index`` outside ``range(n_choices)`` raises ``ValueError``, and so does an
    index of 5 or more (the official script crashes on ``options[answer]`` there; LLaVA's options
    stop at E, so a sixth choice could never be answered).
    """
    _check_choices(n_choices)
    if not 0 <= answer_index < n_choices:
        raise ValueError(f"answer_index {answer_index} is not one of the {n_choices} choices")
    if answer_index >= len(SCIENCEQA_OPTIONS):
        raise ValueError(f"answer_index {answer_index} has no letter: eval_science_qa.py only knows the options "
                         f"{', '.join(SCIENCEQA_OPTIONS)}")
    letter = scienceqa_parse(prediction, n_choices)
    allowed = SCIENCEQA_OPTIONS[:n_choices]
    return (allowed.index(letter) if letter in allowed else -1) == answer_index
