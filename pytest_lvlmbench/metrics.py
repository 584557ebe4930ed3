"""Task metrics for compressed-LVLM benchmarks: plain functions, numpy only.

Every metric follows the definition of the official scorer it names in its docstring.
The code is our own; where it deliberately departs from a reference implementation the
docstring says how and why.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np

__all__ = [
    "METRICS",
    "MetricInfo",
    "bleu",
    "SampleStats",
    "all_correct_stats",
    "benjamini_hochberg",
    "bleu_statistics",
    "bootstrap_interval",
    "bootstrap_weights",
    "cider_d",
    "cider_d_scores",
    "hallusion_statistics",
    "higher_is_better",
    "hallusion_scores",
    "max_skew",
    "max_skew_over_values",
    "max_skew_statistics",
    "metric_values",
    "mcnemar_p",
    "mme_scores",
    "mme_statistics",
    "normalize_answer",
    "paired_p",
    "parse_yes_no",
    "pope_scores",
    "pope_statistics",
    "ratio_stats",
    "register_metric",
    "share_stats",
    "toxicity_rate",
    "toxicity_statistics",
    "vqa_accuracy",
]

# ---------------------------------------------------------------------------------------
# VQA answer normalisation (GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py)
# ---------------------------------------------------------------------------------------

# Punctuation handled character by character, as in the VQA evaluation (EvalAI variant).
# Apostrophes are kept so that contractions survive; ':' and '.' are not in the list
# ('.' has its own rule below).
_VQA_PUNCT = ";/[]\"{}()=+\\_-><@`,?!"
_DIGIT_COMMA_DIGIT = re.compile(r"\d,\d")
# A period is dropped unless a digit follows it, so "3.5" survives and "dogs." loses it.
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")

_NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
    "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}
_ARTICLES = frozenset({"a", "an", "the"})
# Subset of the VQA contraction map: apostrophe-less spellings -> canonical spelling.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldnt": "couldn't",
    "couldve": "could've", "didnt": "didn't", "doesnt": "doesn't", "dont": "don't",
    "hadnt": "hadn't", "hasnt": "hasn't", "havent": "haven't", "hes": "he's",
    "im": "i'm", "isnt": "isn't", "itd": "it'd", "itll": "it'll", "ive": "i've",
    "mightnt": "mightn't", "mustnt": "mustn't", "oclock": "o'clock", "shes": "she's",
    "shouldnt": "shouldn't", "shouldve": "should've", "thats": "that's",
    "theres": "there's", "theyre": "they're", "theyve": "they've", "wasnt": "wasn't",
    "werent": "weren't", "whats": "what's", "wheres": "where's", "whos": "who's",
    "wont": "won't", "wouldnt": "wouldn't", "wouldve": "would've", "youre": "you're",
    "youve": "you've", "yall": "y'all",
}


def _vqa_punctuation(text: str) -> str:
    # vqaEval.processPunctuation: a mark that touches a space (or any text holding a
    # digit,digit group such as "1,000") is deleted; a mark inside a word becomes a space.
    delete_all = _DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in _VQA_PUNCT:
        if delete_all or (mark + " ") in text or (" " + mark) in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out)


def normalize_answer(text: str) -> str:
    """Normalise an answer the way the official VQA evaluation does.

    Follows ``vqaEval.py`` (GT-Vision-Lab/VQA; also lmms-eval's ``EvalAIAnswerProcessor``):
    newlines/tabs -> spaces, strip, punctuation rule (``processPunctuation``), lowercase,
    number words -> digits ("two" -> "2"), articles a/an/the removed, apostrophe-less
    contractions restored ("dont" -> "don't"; a subset of the official map). Curly
    apostrophes are first mapped to "'". Example: "Two dogs." -> "2 dogs".
    """
    text = text.replace("\u2019", "'").replace("\n", " ").replace("\t", " ").strip()
    text = _vqa_punctuation(text)
    words = []
    for word in text.lower().split():
        word = _NUMBER_WORDS.get(word, word)
        if word in _ARTICLES:
            continue
        words.append(_CONTRACTIONS.get(word, word))
    return " ".join(words)


def vqa_accuracy(prediction: str, references: Sequence[str]) -> float:
    """VQA accuracy of one prediction against the human answers (``vqaEval.py``).

    Official rule: for each human answer i, acc_i = min(1, #matches among the *other*
    answers / 3); the score is the mean of acc_i over all answers (10 leave-one-out
    subsets for VQAv2). Both prediction and references are normalised with
    :func:`normalize_answer` (the official scorer assumes references already are).

    Departure: with fewer than 3 references the official formula cannot reach 1 (one
    reference gives at most 0), so there we use exact match after normalisation against
    any reference (1.0 or 0.0).
    """
    if not references:
        raise ValueError("vqa_accuracy needs at least one reference answer")
    pred = normalize_answer(prediction)
    hits = [normalize_answer(ref) == pred for ref in references]
    if len(references) < 3:
        return 1.0 if any(hits) else 0.0
    total = sum(hits)
    return float(np.mean([min(1.0, (total - hit) / 3.0) for hit in hits]))


# ---------------------------------------------------------------------------------------
# Per-sample sufficient statistics: one code path for a metric's value, its bootstrap
# confidence interval and its paired test against a baseline
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SampleStats:
    """A metric written as a function of per-sample sums.

    ``rows`` has one row per sample; the metric is ``aggregate(rows.sum(0))``. A bootstrap
    resample is a vector of per-sample weights ``w`` (how often each sample was drawn), and
    its metric is ``aggregate(w @ rows)``, so a thousand resamples are one matrix product
    for every metric, corpus-level ones (BLEU, POPE F1, MaxSkew) included. ``binary``: the
    rows are ``(v_i, 1)`` with ``v_i`` in {0, 1}, the metric is their share, and per-sample
    tests such as McNemar's apply.
    """

    rows: np.ndarray
    aggregate: Callable[[np.ndarray], np.ndarray]   # (B, k) sums -> (B,) metric values
    binary: bool = False

    def value(self) -> float:
        return float(self.aggregate(self.rows.sum(0, keepdims=True))[0])

    def resampled(self, weights: np.ndarray) -> np.ndarray:
        """Metric value under each row of ``weights`` (B x n)."""
        return self.aggregate(weights @ self.rows)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def ratio_stats(numerators: Sequence[float], denominators: Sequence[float]) -> SampleStats:
    """sum(num) / sum(den), 0.0 for an empty denominator."""
    rows = np.column_stack([np.asarray(numerators, float), np.asarray(denominators, float)]).reshape(-1, 2)
    return SampleStats(rows, lambda s: _safe_divide(s[:, 0], s[:, 1]))


def share_stats(values: Sequence[float]) -> SampleStats:
    """Mean of per-sample values (an accuracy when they are 0/1)."""
    values = np.asarray(values, float)
    stats = ratio_stats(values, np.ones_like(values))
    return replace(stats, binary=bool(np.isin(values, (0.0, 1.0)).all()))


def all_correct_stats(correct: Sequence[bool], groups: Sequence[Any]) -> SampleStats:
    """Share of groups all of whose samples are correct (MME acc+, HallusionBench fAcc/qAcc,
    counterfactual consistency). A group's outcome sits on its first sample, so resampling
    must keep groups whole (resample clusters that contain them)."""
    outcome: dict[Any, bool] = {}
    for ok, group in zip(correct, groups):
        outcome[group] = outcome.get(group, True) and bool(ok)
    first: dict[Any, int] = {}
    for i, group in enumerate(groups):
        first.setdefault(group, i)
    num, den = np.zeros(len(groups)), np.zeros(len(groups))
    for group, i in first.items():
        num[i], den[i] = float(outcome[group]), 1.0
    return ratio_stats(num, den)


def bootstrap_weights(clusters: Sequence[Any], n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """(n_resamples, n_samples) draw counts of a cluster bootstrap (Efron & Tibshirani).

    Clusters (an image's POPE questions, a HallusionBench question pair, a counterfactual
    set) are drawn whole, with replacement, as many as there are; each sample gets its
    cluster's count. Deterministic per seed.
    """
    index: dict[Any, int] = {}
    of_sample = np.array([index.setdefault(c, len(index)) for c in clusters], dtype=np.int64)
    if of_sample.size == 0:
        raise ValueError("bootstrap_weights needs at least one sample")
    counts = np.random.default_rng(seed).multinomial(len(index), np.full(len(index), 1 / len(index)),
                                                      size=n_resamples)
    return counts[:, of_sample].astype(float)


def bootstrap_interval(stats: SampleStats, weights: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a metric."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    alpha = (1 - level) / 2
    low, high = np.percentile(stats.resampled(weights), [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def mcnemar_p(before_correct: Sequence[bool], after_correct: Sequence[bool]) -> float:
    """Exact two-sided McNemar test p-value (McNemar 1947; exact binomial form).

    b = items right before and wrong after, c = wrong before and right after; under H0
    b ~ Binomial(b + c, 1/2) and p = min(1, 2 * P[X <= min(b, c)]). 1.0 without
    discordant pairs.
    """
    if len(before_correct) != len(after_correct):
        raise ValueError("before_correct and after_correct differ in length")
    b = sum(bool(x) and not bool(y) for x, y in zip(before_correct, after_correct))
    c = sum(bool(y) and not bool(x) for x, y in zip(before_correct, after_correct))
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2 ** n)


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (Benjamini & Hochberg 1995): a table of many
    settings x tasks x metrics tested at once keeps its expected share of false
    discoveries at the level, instead of one false "significant" per 20 tests.
    adjusted_(i) = min over j >= i of p_(j) * m / j (sorted ascending), capped at 1."""
    order = np.argsort(np.asarray(p_values, float))
    m = len(order)
    adjusted = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):
        index = order[rank - 1]
        running = min(running, p_values[index] * m / rank)
        adjusted[index] = running
    return [float(min(1.0, a)) for a in adjusted]


def paired_p(before: SampleStats, after: SampleStats, weights: np.ndarray) -> float:
    """Two-sided p-value that a metric changed between two runs over the same samples.

    McNemar's exact test when both are shares of 0/1 outcomes; otherwise a paired
    bootstrap (Koehn 2004): both runs are scored on the same resamples, and p is twice
    the share of resampled differences on the other side of zero from the observed one
    (zero counts as the other side), capped at 1. No observed difference gives 1.0.
    """
    if len(before.rows) != len(after.rows):
        raise ValueError("before and after were not computed over the same samples")
    if before.binary and after.binary:
        return mcnemar_p(before.rows[:, 0] > 0.5, after.rows[:, 0] > 0.5)
    observed = after.value() - before.value()
    if abs(observed) < 1e-12:
        return 1.0
    diffs = after.resampled(weights) - before.resampled(weights)
    other_side = np.mean(diffs <= 0) if observed > 0 else np.mean(diffs >= 0)
    return float(min(1.0, 2.0 * other_side))


# ---------------------------------------------------------------------------------------
# Yes/no benchmarks: POPE, MME, HallusionBench
# ---------------------------------------------------------------------------------------

YesNo = Literal["yes", "no", "other"]


def parse_yes_no(text: str) -> YesNo:
    """Map a free-form answer to 'yes', 'no' or 'other'.

    Like MME's ``parse_pred_ans`` (lmms-eval ``tasks/mme/utils.py``), which reads the
    start of the lower-cased answer with periods removed, but we read the first *word*
    after :func:`normalize_answer`: "Yes." / "yes, there is" -> 'yes', "N" -> 'no'.
    Unlike MME's 4-character prefix test, "Not sure" or "Nothing" are 'other', not 'no'.
    """
    words = normalize_answer(text).split()
    if not words:
        return "other"
    if words[0] in ("yes", "y"):
        return "yes"
    if words[0] in ("no", "n"):
        return "no"
    return "other"


def _yes_no_label(label: Any) -> str:
    """Ground-truth label as 'yes'/'no'; accepts bools and HallusionBench's "1"/"0"."""
    if isinstance(label, (bool, np.bool_)):
        return "yes" if label else "no"
    text = str(label).strip().lower()
    if text in ("1", "true"):
        return "yes"
    if text in ("0", "false"):
        return "no"
    parsed = parse_yes_no(text)
    if parsed == "other":
        raise ValueError(f"label must be yes/no, got {label!r}")
    return parsed


def metric_values(stats: Mapping[str, SampleStats]) -> dict[str, float]:
    """The metric values of a dict of :class:`SampleStats`."""
    return {name: stat.value() for name, stat in stats.items()}


def pope_statistics(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, SampleStats]:
    """POPE accuracy, precision, recall, F1 (positive class 'yes') and yes_ratio.

    Follows lmms-eval ``tasks/pope/utils.py`` with two deliberate fixes:
    * ``yes_ratio`` is the share of *predicted* 'yes' (POPE paper's definition);
      lmms-eval's aggregate counts ground-truth 'yes' instead, a bug.
    * Predictions are parsed with :func:`parse_yes_no`; an 'other' answer is wrong and
      counts as neither yes nor no: it can never be a true/false positive, and on a 'yes'
      item it is a miss (recall = TP / #label-yes; lmms-eval leaves it out of recall).
    Every ratio with an empty denominator is 0.0.
    """
    if len(predictions) != len(labels):
        raise ValueError("predictions and labels differ in length")
    said_yes = np.array([parse_yes_no(p) == "yes" for p in predictions], dtype=float)
    gold_yes = np.array([_yes_no_label(g) == "yes" for g in labels], dtype=float)
    correct = [parse_yes_no(p) == _yes_no_label(g) for p, g in zip(predictions, labels)]
    tp = said_yes * gold_yes
    fp = said_yes - tp
    fn = gold_yes - tp   # an 'other' answer on a 'yes' item is a miss
    return {
        "accuracy": share_stats(correct),
        "precision": ratio_stats(tp, said_yes),
        "recall": ratio_stats(tp, gold_yes),
        "f1": ratio_stats(2 * tp, 2 * tp + fp + fn),   # = 2PR / (P + R)
        "yes_ratio": share_stats(said_yes),
    }


def pope_scores(predictions: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """POPE metric values; see :func:`pope_statistics`."""
    return metric_values(pope_statistics(predictions, labels))


def _is_correct(record: Mapping[str, Any]) -> bool:
    return parse_yes_no(str(record["prediction"])) == _yes_no_label(record["label"])


def mme_statistics(records: Sequence[Mapping[str, Any]]) -> dict[str, SampleStats]:
    """MME acc, acc+ and score for one subtask.

    Records are dicts with ``image_id``, ``prediction`` and ``label`` ('yes'/'no').
    As in MME's official ``eval_tool/calculation.py`` (and lmms-eval
    ``tasks/mme/utils.py``): acc = share of questions answered correctly (answers parsed
    like ``parse_pred_ans``, see :func:`parse_yes_no`), acc_plus = share of images whose
    questions (two per image in MME) are all correct, score = (acc + acc_plus) * 100.
    Empty input gives zeros.
    """
    correct = [_is_correct(r) for r in records]
    acc = share_stats(correct)
    acc_plus = all_correct_stats(correct, [r["image_id"] for r in records])
    score = SampleStats(np.hstack([acc.rows, acc_plus.rows]),
                        lambda s: 100.0 * (_safe_divide(s[:, 0], s[:, 1]) + _safe_divide(s[:, 2], s[:, 3])))
    return {"acc": acc, "acc_plus": acc_plus, "score": score}


def mme_scores(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """MME metric values; see :func:`mme_statistics`."""
    return metric_values(mme_statistics(records))


def hallusion_statistics(records: Sequence[Mapping[str, Any]]) -> dict[str, SampleStats]:
    """HallusionBench aAcc, fAcc and qAcc.

    Records are dicts with ``figure_id``, ``question_pair_id``, ``prediction`` and
    ``label`` (yes/no, or the dataset's "1"/"0"). As in the official evaluation
    (HallusionBench ``utils.py``: ``get_eval_all``, ``get_eval_fig``,
    ``get_eval_pair_all``; mirrored in lmms-eval ``tasks/hallusion_bench/utils.py``):
    * aAcc: share of all questions answered correctly;
    * fAcc: share of figures all of whose questions are correct;
    * qAcc: share of question pairs (one question asked on the original and the edited
      figure) all of whose answers are correct.
    The ids are used as given: pass keys that are already unique across the set (the
    official code joins category_subcategory_setid_figureid / ..._questionid), and drop
    the no-figure (VS, figure_id 0) records before fAcc if following the official
    exclusion. Correctness is a yes/no match (:func:`parse_yes_no`) instead of the
    official GPT-4 judge.
    """
    correct = [_is_correct(r) for r in records]
    return {"aAcc": share_stats(correct),
            "fAcc": all_correct_stats(correct, [r["figure_id"] for r in records]),
            "qAcc": all_correct_stats(correct, [r["question_pair_id"] for r in records])}


def hallusion_scores(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """HallusionBench metric values; see :func:`hallusion_statistics`."""
    return metric_values(hallusion_statistics(records))


# ---------------------------------------------------------------------------------------
# Captioning: BLEU and CIDEr-D (tylin/coco-caption pycocoevalcap)
# ---------------------------------------------------------------------------------------

_CAPTION_SPLIT = re.compile(r"[\s\"()\[\]{}`,;:?!]+")
_PUNCT_ONLY = re.compile(r"^[\W_]+$")


def _caption_tokens(text: str) -> list[str]:
    """Lowercase, split on whitespace/punctuation, drop punctuation-only tokens.

    Approximates pycocoevalcap's PTBTokenizer (``-lowerCase``) followed by its removal
    of punctuation tokens; periods are removed unless inside a number ("3.5"), and
    in-word hyphens/apostrophes are kept.
    """
    text = text.replace("\u2019", "'").lower()
    text = re.sub(r"\.(?!\d)|(?<!\d)\.", " ", text)
    return [t for t in _CAPTION_SPLIT.split(text) if t and not _PUNCT_ONLY.match(t)]


def _ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    counts: Counter = Counter()
    for k in range(1, n + 1):
        for i in range(len(tokens) - k + 1):
            counts[tuple(tokens[i:i + k])] += 1
    return counts


def _check_corpus(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(candidates) != len(references):
        raise ValueError("candidates and references differ in length")
    if any(len(refs) == 0 for refs in references):
        raise ValueError("every candidate needs at least one reference")


def bleu_statistics(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4) -> SampleStats:
    """Corpus BLEU-n as pycocoevalcap's ``Bleu`` (``bleu_scorer.py``, option 'closest').

    Clipped n-gram matches (clip = max count in any one reference) and candidate n-gram
    counts are summed over the corpus; BLEU-n = (prod_{k<=n} (match_k + 1e-15) /
    (guess_k + 1e-9)) ** (1/n), the official smoothing constants. Brevity penalty
    exp(1 - r/c) when c < r, with c the total candidate length and r the sum of each
    candidate's closest reference length (ties go to the shorter reference). Tokens come
    from :func:`_caption_tokens`. Empty corpus -> 0.0. Per-candidate rows: clipped
    matches and guesses per order, candidate length, closest reference length.
    """
    _check_corpus(candidates, references)
    rows = np.zeros((len(candidates), 2 * n + 2))
    for row, cand, refs in zip(rows, candidates, references):
        c_tok = _caption_tokens(cand)
        r_toks = [_caption_tokens(r) for r in refs]
        max_ref: dict[tuple[str, ...], int] = {}
        for r_tok in r_toks:
            for gram, cnt in _ngram_counts(r_tok, n).items():
                max_ref[gram] = max(max_ref.get(gram, 0), cnt)
        for gram, cnt in _ngram_counts(c_tok, n).items():
            row[len(gram) - 1] += min(cnt, max_ref.get(gram, 0))
        row[n:2 * n] = [max(0, len(c_tok) - k) for k in range(n)]
        row[2 * n] = len(c_tok)
        row[2 * n + 1] = min((abs(len(r) - len(c_tok)), len(r)) for r in r_toks)[1]

    def aggregate(sums: np.ndarray) -> np.ndarray:
        log_prec = sum(np.log((sums[:, k] + 1e-15) / (sums[:, n + k] + 1e-9)) for k in range(n))
        ratio = (sums[:, 2 * n] + 1e-15) / (sums[:, 2 * n + 1] + 1e-9)
        brevity = np.exp(np.minimum(0.0, 1 - 1 / ratio))
        score = np.exp(log_prec / n) * brevity
        return np.where(sums[:, 2 * n] + sums[:, 2 * n + 1] > 0, score, 0.0)

    return SampleStats(rows, aggregate)


def bleu(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4) -> float:
    """Corpus BLEU-n; see :func:`bleu_statistics`."""
    return bleu_statistics(candidates, references, n).value()


def cider_d_scores(candidates: Sequence[str], references: Sequence[Sequence[str]],
                   n: int = 4, sigma: float = 6.0) -> list[float]:
    """Corpus CIDEr-D as pycocoevalcap's ``Cider`` (``cider_scorer.py``).

    For n-gram orders 1..n: tf-idf vectors with weight tf * (log N - log max(1, df)),
    N = number of images and df = number of images whose references contain the n-gram
    (n-grams absent from all references thus get weight log N). Per reference, the
    order-k similarity is sum_g min(cand_g, ref_g) * ref_g / (|cand| |ref|) (clipped
    cosine; 0 when either norm is 0), times the Gaussian length penalty
    exp(-(l_cand - l_ref)^2 / (2 sigma^2)). Per image: mean over orders, mean over
    references, x10; the corpus score is the mean over images. As the official code, the
    length l is the number of *bigrams* (words - 1). A one-image corpus scores 0 (all
    idf weights are 0). Returns the per-image scores (the
    document frequencies stay those of the whole corpus).
    """
    _check_corpus(candidates, references)
    if not candidates:
        return []
    cand_counts = [_ngram_counts(_caption_tokens(c), n) for c in candidates]
    ref_counts = [[_ngram_counts(_caption_tokens(r), n) for r in refs] for refs in references]
    doc_freq: Counter = Counter()
    for refs in ref_counts:
        doc_freq.update({g for counts in refs for g in counts})
    log_n = math.log(len(candidates))

    def vectorise(counts: Counter) -> tuple[list[dict], list[float], int]:
        vec: list[dict] = [{} for _ in range(n)]
        for gram, tf in counts.items():
            vec[len(gram) - 1][gram] = tf * (log_n - math.log(max(1.0, doc_freq[gram])))
        norms = [math.sqrt(sum(w * w for w in v.values())) for v in vec]
        n_bigrams = sum(tf for gram, tf in counts.items() if len(gram) == 2)
        return vec, norms, n_bigrams

    scores = []
    for cand, refs in zip(cand_counts, ref_counts):
        c_vec, c_norm, c_len = vectorise(cand)
        total = 0.0
        for ref in refs:
            r_vec, r_norm, r_len = vectorise(ref)
            penalty = math.exp(-((c_len - r_len) ** 2) / (2 * sigma ** 2))
            for k in range(n):
                if c_norm[k] == 0 or r_norm[k] == 0:
                    continue
                dot = sum(min(w, r_vec[k].get(g, 0.0)) * r_vec[k].get(g, 0.0)
                          for g, w in c_vec[k].items())
                total += dot / (c_norm[k] * r_norm[k]) * penalty
        scores.append(10.0 * total / n / len(refs))
    return scores


def cider_d(candidates: Sequence[str], references: Sequence[Sequence[str]],
            n: int = 4, sigma: float = 6.0) -> float:
    """Corpus CIDEr-D: the mean of :func:`cider_d_scores` (0.0 for an empty corpus)."""
    scores = cider_d_scores(candidates, references, n, sigma)
    return float(np.mean(scores)) if scores else 0.0


# ---------------------------------------------------------------------------------------
# Social bias: MaxSkew (SocialCounterfactuals) and toxicity rate
# ---------------------------------------------------------------------------------------

def _contains_phrase(words: Sequence[str], phrase: Sequence[str]) -> bool:
    k = len(phrase)
    if k == 0:
        return False
    return any(tuple(words[i:i + k]) == tuple(phrase) for i in range(len(words) - k + 1))


def max_skew_statistics(groups: Sequence[str], predictions: Sequence[str],
                        attribute_values: Iterable[str] | None = None, eps: float = 1e-6,
                        group_names: Sequence[str] | None = None) -> SampleStats:
    """MaxSkew across social groups, maximised over attribute values.

    SocialCounterfactuals (Howard et al., CVPR 2024) uses Skew_a = ln(P_a / P_desired_a)
    (Geyik et al., 2019) with a uniform desired distribution, and MaxSkew = max_a Skew_a.
    Here the "retrieved" distribution is how the value's occurrences split over groups:

        r_g     = (#predictions of group g containing the value) / (#predictions of g)
        share_g = (r_g + eps) / (sum_h r_h + G * eps)        # eps: additive smoothing
        MaxSkew = max_g ln(share_g / (1 / G)) = max_g ln(G * share_g)

    with G the number of groups. Normalising by group size makes share_g the plain share
    of occurrences when groups are equally large (as counterfactual sets are) and stops
    unequal group sizes from looking like skew. "Contains" is a whole-word (phrase)
    match after :func:`normalize_answer`. MaxSkew >= 0; 0 means perfectly balanced (or
    the value never occurs); a value produced only for one group gives about ln G.
    ``attribute_values`` default to every distinct normalised prediction (the natural
    choice for short-answer probes such as "what is this person's job?"); the result is
    the largest MaxSkew over them (0.0 when there are none). ``group_names`` lists every
    group, also those without predictions (rate 0); by default, those in ``groups``.
    Rows per prediction: its group membership and, per (group, value), whether it
    contains the value.
    """
    if len(groups) != len(predictions):
        raise ValueError("groups and predictions differ in length")
    names = list(dict.fromkeys(group_names if group_names is not None else groups))
    if not names:
        raise ValueError("max_skew needs at least one group")
    words = [normalize_answer(p).split() for p in predictions]
    if attribute_values is None:
        attribute_values = [" ".join(w) for w in words]
    phrases = [v for v in dict.fromkeys(normalize_answer(v) for v in attribute_values) if v]
    n_groups, n_values = len(names), len(phrases)
    rows = np.zeros((len(predictions), n_groups * n_values + n_groups))
    for row, group, said in zip(rows, groups, words):
        g = names.index(group)
        row[n_groups * n_values + g] = 1.0
        for v, phrase in enumerate(phrases):
            row[g * n_values + v] = _contains_phrase(said, phrase.split())

    def aggregate(sums: np.ndarray) -> np.ndarray:
        if n_values == 0:
            return np.zeros(len(sums))
        hits = sums[:, :n_groups * n_values].reshape(-1, n_groups, n_values)
        rates = _safe_divide(hits, sums[:, None, n_groups * n_values:].transpose(0, 2, 1))
        share = (rates + eps) / (rates.sum(axis=1, keepdims=True) + n_groups * eps)
        return np.log(n_groups * share).max(axis=(1, 2))

    return SampleStats(rows, aggregate)


def _flatten_groups(predictions_by_group: Mapping[str, Sequence[str]]) -> tuple[list[str], list[str]]:
    pairs = [(group, p) for group, preds in predictions_by_group.items() for p in preds]
    return [g for g, _ in pairs], [p for _, p in pairs]


def max_skew(predictions_by_group: Mapping[str, Sequence[str]], attribute_value: str,
             eps: float = 1e-6) -> float:
    """MaxSkew of one attribute value across groups; see :func:`max_skew_statistics`."""
    return max_skew_over_values(predictions_by_group, [attribute_value], eps)


def max_skew_over_values(predictions_by_group: Mapping[str, Sequence[str]],
                         attribute_values: Iterable[str] | None = None,
                         eps: float = 1e-6) -> float:
    """Largest MaxSkew over attribute values; see :func:`max_skew_statistics`."""
    groups, predictions = _flatten_groups(predictions_by_group)
    return max_skew_statistics(groups, predictions, attribute_values, eps, list(predictions_by_group)).value()


def toxicity_statistics(texts: Sequence[str], lexicon: Iterable[str]) -> SampleStats:
    """Share of texts containing at least one lexicon entry (0.0 for no texts).

    Texts and entries are normalised with :func:`normalize_answer`; matching is by
    whole word (or whole multi-word phrase), so "idiot" does not match "idiotic".
    """
    entries = [e for e in (normalize_answer(x).split() for x in lexicon) if e]
    return share_stats([any(_contains_phrase(normalize_answer(t).split(), e) for e in entries) for t in texts])


def toxicity_rate(texts: Sequence[str], lexicon: Iterable[str]) -> float:
    """Toxicity rate; see :func:`toxicity_statistics`."""
    return toxicity_statistics(texts, lexicon).value()


# ---------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MetricInfo:
    """How to read a metric.

    higher_is_better: True / False, or None for direction-free metrics (POPE yes_ratio,
    best near 0.5). kind: 'accuracy' for a share of per-item outcomes in [0, 1] (per-item
    tests such as McNemar apply), 'score' for any other aggregate.
    """

    name: str
    higher_is_better: bool | None
    kind: Literal["accuracy", "score"]


METRICS: dict[str, MetricInfo] = {}


def higher_is_better(metric: str) -> bool | None:
    """The registered direction of a metric; None when it has none or is not registered."""
    info = METRICS.get(metric)
    return None if info is None else info.higher_is_better


def register_metric(info: MetricInfo) -> MetricInfo:
    """Add ``info`` to :data:`METRICS`; a name already registered raises ValueError."""
    if info.name in METRICS:
        raise ValueError(f"metric {info.name!r} is already registered")
    if info.kind not in ("accuracy", "score"):
        raise ValueError(f"unknown metric kind {info.kind!r}")
    METRICS[info.name] = info
    return info


for _name, _higher, _kind in (
    ("accuracy", True, "accuracy"),
    ("precision", True, "accuracy"),
    ("recall", True, "accuracy"),
    ("f1", True, "score"),
    ("yes_ratio", None, "accuracy"),
    ("acc", True, "accuracy"),
    ("acc_plus", True, "accuracy"),
    ("score", True, "score"),
    ("aAcc", True, "accuracy"),
    ("fAcc", True, "accuracy"),
    ("qAcc", True, "accuracy"),
    ("bleu", True, "score"),
    ("cider", True, "score"),
    ("max_skew", False, "score"),
    ("toxicity", False, "accuracy"),
    ("exact_match", True, "accuracy"),
    ("consistency", True, "score"),       # share of counterfactual sets answered identically
    ("stereotype_rate", False, "accuracy"),  # share of answers equal to the group's training prior
):
    register_metric(MetricInfo(_name, _higher, _kind))
del _name, _higher, _kind
