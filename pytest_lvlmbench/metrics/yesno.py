"""Yes/no benchmarks scored as the official code does it: POPE, MME, HallusionBench.

- POPE: haotian-liu/LLaVA ``llava/eval/eval_pope.py`` (``eval_pope``) at c121f04; lmms-eval's
  stricter parse (``lmms_eval/tasks/pope/utils.py``) is a second, named parser.
- MME: the official tool, BradyFU/Awesome-Multimodal-Large-Language-Models branch ``Evaluation``,
  ``tools/eval_tool.zip`` -> ``eval_tool/calculation.py`` (``calculate_metrics``; zip committed in
  1c1d69e, 2023-07-01), fed by LLaVA's ``convert_answer_to_mme.py``; lmms-eval's parse
  (``lmms_eval/tasks/mme/utils.py``, ``parse_pred_ans``) is a second, named parser.
- HallusionBench: tianyi-lab/HallusionBench ``utils.py`` (``assign_correctness``, ``get_eval_all``,
  ``get_eval_fig``, ``get_eval_pair_all``) at 744007c, with lmms-eval's offline rule judge
  (``lmms_eval/tasks/hallusion_bench/evaluate_hb.py``, ``hb_aggregation_result_intern``).

Every metric is a :class:`SampleStats` (a function of per-sample sums), so bootstrap resamples
and paired tests reuse it; a division by zero that would crash the official script gives a
defined value and a note (``SampleStats.undefined``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np

from .stats import SampleStats, all_correct_stats, metric_values, ratio_stats, safe_divide, share_stats

__all__ = ["pope_parse", "pope_parse_strict", "pope_statistics", "pope_scores",
           "mme_parse", "mme_parse_lmms_eval", "mme_statistics", "mme_scores", "mme_totals",
           "MME_PERCEPTION", "MME_COGNITION",
           "hallusion_rule_judge", "hallusion_statistics", "hallusion_scores"]

YesNo = Literal["yes", "no", "other"]
_PARSED = ("yes", "no", "other")


def _yes_no(label: Any, where: str) -> str:
    text = str(label).strip().lower()
    if text not in ("yes", "no"):
        raise ValueError(f"{where}: a label must be 'yes' or 'no' (any case), got {label!r}")
    return text


def _parsed(parse: Callable[[str], str], text: str) -> str:
    said = parse(text)
    if said not in _PARSED:
        raise ValueError(f"the parser {getattr(parse, '__name__', parse)!r} returned {said!r} for {text!r}; "
                         f"a parser must return one of {_PARSED}")
    return said


def _with_note(stats: SampleStats, empty: str) -> SampleStats:
    """The same ratio (``binary`` flag kept), its note saying why the denominator is empty, worded
    as :func:`ratio_stats` words it."""
    return replace(stats, undefined=f"{empty}: 0/0, reported as 0.0" if stats.rows[:, 1].sum() == 0 else "")


def _groups_all_correct(correct: Sequence[bool], groups: Sequence[Any], include: Sequence[bool],
                        empty: str) -> SampleStats:
    """Share of groups (of the included rows) all of whose rows are correct; one row per sample,
    excluded samples carry (0, 0), so the statistic lines up with the task's other metrics."""
    rows = np.zeros((len(correct), 2))
    kept = [i for i, keep in enumerate(include) if keep]
    if kept:
        rows[kept] = all_correct_stats([correct[i] for i in kept], [groups[i] for i in kept]).rows
    return ratio_stats(rows[:, 0], rows[:, 1], empty=empty)


# ----------------------------------------------------------------------------- POPE


def pope_parse(text: str) -> Literal["yes", "no"]:
    """The answer as LLaVA's ``eval_pope`` reads it (``llava/eval/eval_pope.py``, c121f04).

    Quirks kept: only the text before the first '.' counts (``"Yes. There is no cat." -> yes``;
    ``"3.5 ..."`` keeps "3"); commas are deleted; words are split on single spaces only (``"No\\nthere"``
    is one word -> yes); the answer is "no" iff a word is exactly ``No``, ``no`` or ``not``
    (case-sensitive: ``"NO"``, ``"Not"``, ``"Nope"``, ``"isn't"`` -> yes); everything else, the empty
    string and refusals included, is "yes". Never returns "other".
    """
    if "." in text:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if ("No" in words or "not" in words or "no" in words) else "yes"


def pope_parse_strict(text: str) -> YesNo:
    """lmms-eval's POPE parse (``lmms_eval/tasks/pope/utils.py``, ``pope_process_results``):
    ``text.lower().strip()`` must be exactly "yes" or "no"; anything else (``"Yes."``, ``"yes, there
    is"``) is "other". A named variant: LLaVA's published POPE numbers use :func:`pope_parse`."""
    said = text.lower().strip()
    return said if said in ("yes", "no") else "other"


def pope_statistics(predictions: Sequence[str], labels: Sequence[str],
                    parse: Callable[[str], str] = pope_parse) -> dict[str, SampleStats]:
    """POPE accuracy, precision, recall, F1 (positive class "yes") and yes_ratio of one split.

    Reproduces LLaVA ``llava/eval/eval_pope.py`` ``eval_pope`` (c121f04), run per category:
    TP/FP/TN/FN of the parsed answers against the labels; precision TP/(TP+FP), recall
    TP/(TP+FN), ``f1 = 2*P*R/(P+R)`` (computed from P and R as there, not from counts), accuracy
    (TP+TN)/all, yes_ratio = share of *predictions* that are yes (lmms-eval's aggregate counts
    ground-truth yes instead; not followed).

    * ``parse`` maps a raw answer to yes/no/other (default :func:`pope_parse`, which never says
      other). An "other" answer (:func:`pope_parse_strict`) is counted as lmms-eval counts it:
      wrong for accuracy, neither TP/FP nor FN, so out of precision and recall, but in the
      denominator of yes_ratio.
    * Labels are "yes"/"no" in any case; anything else raises ``ValueError`` (eval_pope would
      silently treat every label other than "no" as yes).
    * Where eval_pope divides by zero and crashes (no yes predictions; no yes labels; no true
      positives so P + R = 0; empty input) the value is 0.0 and ``undefined`` says why.
    """
    if len(predictions) != len(labels):
        raise ValueError(f"pope_statistics: {len(predictions)} predictions but {len(labels)} labels")
    said = [_parsed(parse, p) for p in predictions]
    gold_yes = np.array([_yes_no(g, "pope_statistics") == "yes" for g in labels], dtype=float)
    said_yes = np.array([s == "yes" for s in said], dtype=float)
    said_no = np.array([s == "no" for s in said], dtype=float)
    tp = said_yes * gold_yes
    fp = said_yes * (1 - gold_yes)
    fn = said_no * gold_yes
    tn = said_no * (1 - gold_yes)
    predicted_yes, labelled_yes = tp + fp, tp + fn
    f1_rows = np.column_stack([tp, predicted_yes, labelled_yes]).reshape(-1, 3)

    def f1(sums: np.ndarray) -> np.ndarray:
        precision = safe_divide(sums[:, 0], sums[:, 1])
        recall = safe_divide(sums[:, 0], sums[:, 2])
        return safe_divide(2 * precision * recall, precision + recall)

    totals = f1_rows.sum(0)
    if totals[1] == 0:
        why = "no 'yes' predictions, so precision is 0/0 and P + R = 0"
    elif totals[2] == 0:
        why = "no 'yes' labels answered yes or no, so recall is 0/0 and P + R = 0"
    elif totals[0] == 0:
        why = "no true positives, so P + R = 0"
    else:
        why = ""
    return {
        "accuracy": _with_note(share_stats(tp + tn), "no samples"),
        "precision": ratio_stats(tp, predicted_yes, empty="no 'yes' predictions"),
        "recall": ratio_stats(tp, labelled_yes, empty="no 'yes' labels answered yes or no"),
        "f1": SampleStats(f1_rows, f1, undefined=f"{why}: 2PR/(P+R) = 0/0, reported as 0.0" if why else ""),
        "yes_ratio": _with_note(share_stats(said_yes), "no predictions"),
    }


def pope_scores(predictions: Sequence[str], labels: Sequence[str],
                parse: Callable[[str], str] = pope_parse) -> dict[str, float]:
    """POPE metric values; see :func:`pope_statistics`."""
    return metric_values(pope_statistics(predictions, labels, parse))


# ----------------------------------------------------------------------------- MME

MME_PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark",
                  "artwork", "OCR")
MME_COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


def mme_parse(text: str) -> YesNo:
    """MME's official parse (``eval_tool/calculation.py``, ``calculate_metrics.parse_pred_ans``,
    applied after ``pred_ans.lower()`` in ``process_result``).

    Lowercase; exactly "yes" or "no" -> itself; else "yes" within the first four characters ->
    yes, else "no" within them -> no, else "other". Quirks kept: nothing is stripped and no '.' is
    removed (``"   yes"`` -> other, ``"No."`` -> no via the prefix); substrings count (``"Not
    sure"``, ``"Nothing"``, ``"snowy"``, ``"know"`` -> no; ``"Eyes"`` -> yes); ``"Y"``/``"N"`` -> other;
    "yes" is tested before "no" (``"no, yes"`` -> no only because "yes" is not in "no, ").
    The official line also carries the file's trailing newline; it cannot change the result.
    """
    said = text.lower()
    if said in ("yes", "no"):
        return said  # type: ignore[return-value]
    prefix = said[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def mme_parse_lmms_eval(text: str) -> YesNo:
    """lmms-eval's MME parse (``lmms_eval/tasks/mme/utils.py``, ``parse_pred_ans``, "brought from
    Otter"): lowercase, strip, delete every '.', then exact yes/no; a single character "y"/"n" ->
    yes/no (other single characters -> other); else the 4-character prefix test of
    :func:`mme_parse`. Differs from the official parse on ``"Y"``, ``"n."``, ``"  yes"``, ``"...no"``."""
    said = text.lower().strip().replace(".", "")
    if len(said) == 1:
        return {"y": "yes", "n": "no"}.get(said, "other")  # type: ignore[return-value]
    return mme_parse(said)   # exact yes/no, then the prefix test, on the cleaned text


def mme_statistics(records: Sequence[Mapping[str, Any]],
                   parse: Callable[[str], str] = mme_parse) -> dict[str, SampleStats]:
    """MME accuracy, accuracy_plus and mme_score of one subtask (``calculation.py``,
    ``process_result`` + ``compute_metric``).

    ``records``: mappings with ``image_id`` (MME's question_id, the image path shared by its two
    questions), ``prediction`` and ``label`` ("Yes"/"No", any case; else ``ValueError``, the tool
    asserts it). accuracy = share of questions whose parse equals the label ("other" is wrong);
    accuracy_plus = share of images with both questions right; mme_score = 100*acc + 100*acc+
    (max 200). The tool pairs *consecutive lines* of the result file; here the pairs are the
    records sharing an ``image_id`` (the same when the file lists an image's questions together,
    as LLaVA's does), and an image without exactly two questions raises ``ValueError`` (the tool
    asserts pairs, lmms-eval "MME only supports pairwise evaluation"). Empty input: 0.0, noted.
    """
    for record in records:
        missing = [key for key in ("image_id", "prediction", "label") if key not in record]
        if missing:
            raise ValueError(f"mme_statistics: a record lacks {missing} (needs image_id, prediction, label)")
    images = [r["image_id"] for r in records]
    counts: dict[Any, int] = {}
    for image in images:
        counts[image] = counts.get(image, 0) + 1
    unpaired = [image for image, n in counts.items() if n != 2]
    if unpaired:
        raise ValueError(f"mme_statistics: every image needs exactly two questions; not so for "
                         f"{unpaired[:5]}{' ...' if len(unpaired) > 5 else ''}")
    correct = [_parsed(parse, str(r["prediction"])) == _yes_no(r["label"], "mme_statistics") for r in records]
    acc = _with_note(share_stats(correct), "no questions")
    acc_plus = _groups_all_correct(correct, images, [True] * len(correct), empty="no images")
    score = SampleStats(np.hstack([acc.rows, acc_plus.rows]),
                        lambda s: safe_divide(s[:, 0], s[:, 1]) * 100 + safe_divide(s[:, 2], s[:, 3]) * 100,
                        undefined="no questions: 0/0, reported as 0.0" if not records else "")
    return {"accuracy": acc, "accuracy_plus": acc_plus, "mme_score": score}


def mme_scores(records: Sequence[Mapping[str, Any]], parse: Callable[[str], str] = mme_parse) -> dict[str, float]:
    """MME metric values of one subtask; see :func:`mme_statistics`."""
    return metric_values(mme_statistics(records, parse))


def mme_totals(scores: Mapping[str, float], allow_partial: bool = False) -> dict[str, float]:
    """Perception and cognition totals: the sums of the subtask ``mme_score`` values over
    ``eval_type_dict`` of ``calculation.py`` (perception: existence, count, position, color, posters,
    celebrity, scene, landmark, artwork, OCR, max 2000; cognition: commonsense_reasoning,
    numerical_calculation, text_translation, code_reasoning, max 800), summed in that order.

    An unknown subtask raises ``ValueError`` naming it and the known ones. A family none of whose
    subtasks is given is left out of the result (LLaVA-1.5 publishes perception only). A family
    given in part raises ``ValueError`` (the tool opens every subtask's file and would crash);
    ``allow_partial=True`` (a deliberate difference) sums what is there instead.
    """
    known = MME_PERCEPTION + MME_COGNITION
    unknown = [name for name in scores if name not in known]
    if unknown:
        raise ValueError(f"mme_totals: unknown MME subtask(s) {unknown}; the known ones are {list(known)}")
    totals: dict[str, float] = {}
    for metric, family in (("perception_score", MME_PERCEPTION), ("cognition_score", MME_COGNITION)):
        given = [name for name in family if name in scores]
        if not given:
            continue
        absent = [name for name in family if name not in scores]
        if absent and not allow_partial:
            raise ValueError(f"mme_totals: {metric} needs all of {list(family)}; missing {absent} "
                             "(pass allow_partial=True to sum a subset)")
        total = 0.0
        for name in given:
            total += float(scores[name])
        totals[metric] = total
    return totals


# ----------------------------------------------------------------------------- HallusionBench

Judge = Callable[[str, Mapping[str, Any]], int]


def hallusion_rule_judge(prediction: str, record: Mapping[str, Any]) -> int:
    """The offline judge lmms-eval uses instead of GPT-4 (``lmms_eval/tasks/hallusion_bench/
    evaluate_hb.py``, ``hb_aggregation_result_intern``): the answer means "1" (yes) if "yes" occurs
    anywhere in the lower-cased prediction, else "0"; it is correct iff that equals the record's
    ``gt_answer`` ("0"/"1"; else ``ValueError``). Returns 1 (correct) or 0 (incorrect); it never
    says 2 ("unclear"), which only the GPT judge produces. Quirks kept: substring match ("eyes",
    "yesterday" mean yes; "No, yes" means yes; a refusal means no).
    """
    gold = str(record["gt_answer"]).strip()
    if gold not in ("0", "1"):
        raise ValueError(f"hallusion_rule_judge: gt_answer must be '0' or '1', got {record['gt_answer']!r}")
    said = "1" if prediction.lower().find("yes") != -1 else "0"
    return int(said == gold)


def _key(record: Mapping[str, Any], *fields: str) -> str:
    return "_".join(str(record[field]) for field in fields)


def hallusion_statistics(records: Sequence[Mapping[str, Any]], judge: Judge = hallusion_rule_judge
                         ) -> dict[str, SampleStats]:
    """HallusionBench accuracy (aAcc), figure_accuracy (fAcc) and pair_accuracy (qAcc) with the
    official grouping (tianyi-lab/HallusionBench ``utils.py`` at 744007c; the same functions in
    lmms-eval ``hallusion_bench/utils.py``).

    ``records``: mappings with ``category`` (VD/VS), ``subcategory``, ``set_id``, ``figure_id``,
    ``question_id``, ``gt_answer`` and ``prediction`` (``visual_input`` may be there; the metrics do
    not read it). ``judge(prediction, record)`` returns 1 correct, 0 incorrect or 2 unclear (default
    :func:`hallusion_rule_judge`; pass a GPT judge to reproduce the published numbers).

    * ``assign_correctness``: a record is correct iff judged 1, except when ``category == "VS"`` and
      ``int(figure_id) == 0`` (the question asked without a figure), where 2 (unclear) is correct too.
    * ``get_eval_all``: accuracy = correct / questions, a question keyed
      category_subcategory_setid_figureid_questionid (a repeated key raises ``ValueError``; the
      official code asserts).
    * ``get_eval_fig``: figure key category_subcategory_setid_figureid; VS rows with
      ``str(figure_id) == "0"`` (no figure) are left out; a figure counts if all its questions are
      correct.
    * ``get_eval_pair_all``: question-pair key category_subcategory_setid_questionid over *all* rows
      (the no-figure VS question is in its pair); a pair counts if all its rows are correct.

    Keys are the official "_"-joined strings (two records whose fields join to the same string
    are one group, as there). Empty input: 0.0, noted.
    """
    required = ("category", "subcategory", "set_id", "figure_id", "question_id", "gt_answer", "prediction")
    for record in records:
        missing = [field for field in required if field not in record]
        if missing:
            raise ValueError(f"hallusion_statistics: a record lacks {missing} (needs {list(required)})")
    judged = []
    for record in records:
        verdict = judge(str(record["prediction"]), record)
        if verdict not in (0, 1, 2):
            raise ValueError(f"hallusion_statistics: the judge must return 0, 1 or 2, got {verdict!r}")
        judged.append(int(verdict))
    no_figure = [r["category"] == "VS" and int(r["figure_id"]) == 0 for r in records]
    correct = [v in (1, 2) if blind else v == 1 for v, blind in zip(judged, no_figure)]
    questions = [_key(r, "category", "subcategory", "set_id", "figure_id", "question_id") for r in records]
    seen: set[str] = set()
    for question in questions:
        if question in seen:
            raise ValueError(f"hallusion_statistics: question {question!r} appears twice")
        seen.add(question)
    figures = [_key(r, "category", "subcategory", "set_id", "figure_id") for r in records]
    with_figure = [not (r["category"] == "VS" and str(r["figure_id"]) == "0") for r in records]
    pairs = [_key(r, "category", "subcategory", "set_id", "question_id") for r in records]
    return {
        "accuracy": _with_note(share_stats(correct), "no questions"),
        "figure_accuracy": _groups_all_correct(correct, figures, with_figure,
                                               empty="no figures (every question is a VS one without a figure)"),
        "pair_accuracy": _groups_all_correct(correct, pairs, [True] * len(correct), empty="no question pairs"),
    }


def hallusion_scores(records: Sequence[Mapping[str, Any]], judge: Judge = hallusion_rule_judge) -> dict[str, float]:
    """HallusionBench metric values; see :func:`hallusion_statistics`."""
    return metric_values(hallusion_statistics(records, judge))


# ----------------------------------------------------------------------------- legacy
