"""Captioning metrics as pycocoevalcap (COCO caption evaluation, salaniz/pycocoevalcap 1.2, used by
lmms-eval's coco_cap task) computes them: its PTB tokenization, BLEU-1..4, ROUGE-L, CIDEr-D, and
METEOR when Java is there.

pycocoevalcap feeds every scorer the output of ``tokenizer/ptbtokenizer.py``, lower-cased PTB tokens
joined by single spaces; :func:`ptb_tokenize` reproduces that tokenizer in pure Python (no Java), and
every scorer here tokenizes its inputs with it, so candidates and references are raw strings.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import re
import shutil
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from .stats import SampleStats, share_stats

__all__ = ["MetricUnavailable", "PTB_PUNCTUATIONS", "ptb_tokenize", "bleu_statistics", "bleu", "rouge_l_scores",
           "rouge_l", "cider_d_scores", "cider_d", "caption_statistics", "meteor_scores"]


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed on this machine; the message says why (callers skip with it)."""


# ============================================================================= PTB tokenizer
#
# Our own lexer for the observable behaviour of pycocoevalcap's tokenizer (CoreNLP 3.4.1's PTBTokenizer
# jar) on caption text, worked out by running the jar on probe strings; ptb_tokenize says what differs.

# Abbreviations that keep their period (any case). The strong ones also beat a word one character
# longer ("Inc.y" -> inc. y), as do _ABBREV_CAP (first letter upper case) and Pty. / Pte.
_ABBREV_WEAK = ("adj adm adv alex assoc asst attys? ave brig capt cf cie col co?mdr cpl dept det drs? elec ens ft gen "
                "govs? hon insp invt jos lieut lt maj messrs mfg mlle mme mr mrs ms msgr mt mtg natl pfc ph pres "
                "profs? pvt reps? rev sens? sfc sgt spc ste? supts? treas vs wm").replace(" ", "|")
_ABBREV_STRONG = ("al ala apr ariz assn aug bancorp bhd bldg blvd bros calif co colo conn corp cos ct dak dec ed\\.d "
                  "esq est etc ext feb fla fri ga inc ind intl jan jr jul jun kans? ky ltd mar md mich minn mo mon "
                  "mont neb nev nov oct okla penn ph\\.d plc rd rt sept? seq sq sr sys tel tenn thu thurs tues? univ "
                  "va vt wed wisc? wyo").replace(" ", "|")
_ABBREV_CAP = "Ark Az Del Ill La Mass Miss Ore Pa Tex Wash"
_FILE_EXT = ("bat|bmp|c|class|cgi|cpp|dll|docx?|exe|gif|gz|h|html?|jar|java|jpe?g|mov|mp3|pdf|php|pl|png|ppt|ps|py|"
             "sql|tar|txt|wav|x|xml|zip")
# After one of these (capitalized) words a one-letter "X." gives its period back: "plan B. The" -> b .
_SENT_START = ("About According Additionally After An A As At But Earlier He Her Here However If In It Last Many "
               "More Mr\\. Ms\\. Now Once One Other Our She Since So Some Such That The Their Then There These They "
               "This We When While What Yet You")
_MAP = str.maketrans({"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-", " ": "\xa0",
                      "\u2018": "`", "\u201b": "`", "\u2039": "`", "\x91": "`", "\u2019": "'", "\u203a": "'",
                      "\x92": "'", "\u201c": "``", "\xab": "``", "\x93": "``", "\u201d": "''", "\xbb": "''",
                      "\x94": "''"})
_MONEY = {"\xbc": "1/4", "\xbd": "1/2", "\xbe": "3/4", "\u2153": "1/3", "\u2154": "2/3", "\xa2": "cents", "\xa3": "#",
          "\xa4": "$", "\x80": "$", "\u20a0": "$", "\u20ac": "$"}
_ENTITIES = {"&amp;": "&", "&quot;": '"', "&apos;": "'", "&nbsp;": " ", "&mdash;": " -- ", "&ndash;": " -- "}


def _bmp_class(keep: Callable[[int, str], bool]) -> str:
    """Regex character-class body: the BMP characters whose (code point, Unicode category) ``keep`` accepts."""
    inside = [not 0xD800 <= c < 0xE000 and keep(c, unicodedata.category(chr(c))) for c in range(0x10000)] + [False]
    starts = [c for c in range(0x10000) if inside[c] and not (c and inside[c - 1])]
    return "".join("\\u%04x-\\u%04x" % (c, inside.index(False, c) - 1) for c in starts)


@functools.lru_cache(maxsize=None)
def _ptb_rules() -> list[tuple[re.Pattern, Callable[[str], str] | None]]:
    """(pattern, action) in priority order. At each position the longest match wins, ties go to the
    earlier rule. Only a pattern's group "t", when it matched, is consumed (the rest is look-ahead that
    counts for the length); the action maps the consumed text to a token (None: keep it as is)."""
    # Letters (with combining marks and "&eacute;"-style entities), digits, one-character symbols; only
    # in the BMP: Java reads other characters as surrogate pairs, which the jar deletes.
    let, dig = _bmp_class(lambda code, cat: cat[0] in "LM"), _bmp_class(lambda code, cat: cat == "Nd")
    sym = _bmp_class(lambda code, cat: (cat[0] in "SP" or cat == "No")
                     and (0xA0 < code < 0x100 or 0x2000 <= code < 0x2C00 or 0xFF00 <= code <= 0xFF65))
    ent = "|&[aeiouAEIOU](?:acute|grave|uml);"
    L, D, A = f"(?:[{let}]{ent})", f"[{dig}]", f"(?:[{let}{dig}]{ent})"
    AP, AP4 = "['\u2019]", "['\u2019\u2018`]"      # apostrophes (the second set for "n't")
    WORD = f"{L}{A}*(?:[.!?]{L}{A}*)*"              # "mr.smith", "dog.a" are one word
    DOT = r"(?:\.(?=[,;:]))?"                       # a word keeps a period before , ; :
    cap = "|".join(f"{w[0]}(?i:{w[1:]})" for w in _ABBREV_CAP.split())
    start = "|".join(f"{w[0]}(?i:{w[1:]})" for w in _SENT_START.split())
    mapped, rounds = (lambda s: s.translate(_MAP)), (lambda s: s.replace("(", "-LRB-").replace(")", "-RRB-"))
    rules = [
        # cannot -> can not, gonna -> gon na, 'tis -> 't is: the first part now, the rest scanned again
        (r"(?i:(?P<t>can(?=not)|gon(?=na)|got(?=ta)|lem(?=me)|gim(?=me)|wan(?=na)|'t(?=was|is))"
         r"(?:not|na|ta|me|was|is))", None),
        (r"(?i:c\+\+|[cf]#|s&p-500|s&ls|c\.d\.s|cap'n|c'est|-[lr][rcs]b-|anti-|pro-|&quot;|&apos;)|&#[0-9]+;", None),
        (r"""<(?:/?[A-Za-z][\w:.-]*(?: +[A-Za-z][\w:.-]*(?: *= *(?:'[^']*'|"[^"]*"))?)* */?|[!?][A-Za-z-][^>\r\n]*)>""",
         mapped),                                                            # SGML tags
        (r"(?i:&lt;|&gt;)", lambda s: "<" if s[1] in "lL" else ">"),
        # clitics split off a word; words with an apostrophe kept whole
        (f"(?P<t>{WORD}){AP}(?i:[smd]|re|ve|ll)", None),
        (f"{AP}(?i:em|till?|cause|n{AP}?)|'[2-9]0[sS]|(?P<t>'[0-9][0-9])\\s"
         "|(?i:c'mon|li'l|s'mores|e'er|ev'ry|nat'l|nor'easter|ol'|o'o|dunkin'|somethin')", None),
        (f"(?P<t>[yY]{AP}){L}|[lLdDjJ]{AP}|[A-HJ-XZn]{AP4}{L}{L}+|{L}+[aeiouyAEIOUY]{AP4}[aeiouA-Z]{L}*", None),
        (f"(?P<t>{AP}(?i:[smd]|re|ve|ll)|(?i:n){AP4}(?i:t))[^A-Za-z]", mapped),
        (f"(?P<t>[A-Za-z]*[A-MO-Za-mo-z])(?i:n){AP4}(?i:t)", None),
        (r"(?P<t>')[A-Za-z]\S", lambda s: "`"),
        (f"{AP}(?i:[smd]|re|ve|ll)|(?i:n){AP4}(?i:t)", mapped),
        # URLs, e-mail addresses, @names, #tags
        (r'(?i:https?)://[^\s"<>|(){}]+[^\s"<>|(){}.!?,-]', None),
        (r"""(?:www\.(?:[^\s"<>|.!?(){},]+\.)+[a-zA-Z]{2,4}|(?:[^ \t\n\f\r"`'<>|.!?(){}$,-_]+\.)+"""
         r'(?:com|net|org|edu))(?:/[^\s"<>|()]+[^\s"<>|().!?{},-])?', None),
        (r'<?[A-Za-z0-9][^\s"<>|(){}]*@(?:[^\s"<>|(){}.]+\.)*[^\s"<>|(){}.]+>?', None),
        (f"@[A-Za-z_][A-Za-z_0-9]*|#{L}+", None),
        # numbers, dates, fractions, phone numbers, money
        (f"{D}{{1,2}}[-/]{D}{{1,2}}[-/]{D}{{2,4}}|[-+]?(?:{D}*(?:[.:,]{D}+)+|{D}+)", None),
        (f"(?:{D}{{1,4}}[- \xa0])?{D}{{1,4}}\\\\?/{D}{{1,4}}", mapped),
        (r"(?:\([0-9]{2,3}\)[ \xa0]?|(?:\+\+?)?(?:[0-9]{2,4}[- \xa0])?[0-9]{2,4}[- \xa0])[0-9]{3,4}[- \xa0]?"
         r"[0-9]{3,5}", lambda s: rounds(s).replace(" ", "\xa0")),
        ("[%s]" % "".join(_MONEY), _MONEY.get),
        (r"[A-Z]*\$|#+|@+|_+|\*+|(?:\\\*){1,3}|<<|>>", None),
        # acronyms and abbreviations
        (f"(?P<t>[A-Za-z])\\.\\s+(?:{start})\\s", None),
        (f"[A-Za-z](?:\\.[A-Za-z])*\\.|(?i:{_ABBREV_WEAK})\\.", None),
        (f"(?P<t>(?i:ca|figs?|art|nos?|op|pp|prop)\\.)\\s?{D}", None),
        # words: letters and digits with inner . ! ? (WORD), with hyphens (ASCII: also periods); file
        # names; words joined by slashes
        (f"{WORD}{DOT}", None),
        (f"(?P<t>(?:(?i:{_ABBREV_STRONG})|{cap}|(?i:pp?t)[ye](?i:s?))\\.)[\\s\\S]{{0,2}}", None),
        (f"(?:[dDoOlL]{AP4}{A})?{A}+(?:[-_\u2010\u2011](?:[dDoOlL]{AP4}{A})?{A}+)*{DOT}", None),
        (f"[A-Za-z0-9][A-Za-z0-9.,]*(?:-(?:[A-Za-z](?:\\.[A-Za-z])+\\.|[A-Za-z0-9]+))+{DOT}", None),
        (f"(?P<t>{A}+(?:\\.{A}+)*\\.(?i:{_FILE_EXT}))[\\s.?!,]", None),
        (r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}|[A-Z]+(?:[+&][A-Z]+)+",
         None),
        # emoticons, brackets, dashes, dots, punctuation, quotes, other symbols; any other character is deleted
        (r"(?P<t>[<>]?[:;=][-o*']?[()DPdpO\\{@|\[\]])[^A-Za-z0-9]", rounds),
        (r"[()\[\]{}]", mapped),
        (r"-+", lambda s: "--" if 2 <= len(s) <= 4 else s),
        (r"[\u2013-\u2015\x96\x97]", lambda s: "--"),
        (r"\.{3,5}|(?:\. ){2,4}\.|[\u2026\x85]", lambda s: "..."),
        (r"[.,;:\u3001]|[?!]+", None),
        (r'"', lambda s: "''"),
        ("[`\u2018-\u201f\xab\xbb\u2039\u203a\x91-\x94]{1,2}|''?", mapped),
        (f"[+%&~^|\\\\=/<>\u3002{sym}]", None),
    ]
    return [(re.compile(pattern), action) for pattern, action in rules]


def _ptb_lex(text: str) -> list[str]:
    """PTB tokens of ``text`` (before lower-casing and the PUNCTUATIONS filter)."""
    rules, tokens, pos = _ptb_rules(), [], 0
    while True:
        pos = _SPACES.match(text, pos).end()
        if pos == len(text):
            return tokens
        best, best_end = None, pos
        for pattern, action in rules:
            match = pattern.match(text, pos)
            if match and match.end() > best_end:
                best, best_end = (match, action), match.end()
        if best is None:                                   # untokenizable: deleted
            pos += 1
        else:
            end = best[0].end("t") if best[0].groupdict().get("t") is not None else best[0].end()
            tokens.append(best[1](text[pos:end]) if best[1] else text[pos:end])
            pos = end


_SPACES = re.compile(r"\s*")

# ptbtokenizer.py's PUNCTUATIONS: tokens dropped after tokenization (compared after lower-casing,
# so "-LRB-" and "-RRB-", which the jar's -lowerCase turns into "-lrb-" / "-rrb-", are never dropped).
PTB_PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-",
                              "--", "...", ";"])


def ptb_tokenize(text: str) -> list[str]:
    """Tokens of a caption as pycocoevalcap's ``tokenizer/ptbtokenizer.py`` produces them, in pure Python.

    pycocoevalcap runs Stanford CoreNLP 3.4.1's ``PTBTokenizer -preserveLines -lowerCase`` (Java) over all
    captions, one a line, and drops :data:`PTB_PUNCTUATIONS`. Here, as measured on that jar: lower-case;
    clitics split ("don't" -> do n't, "it's" -> it 's, "dogs'" -> dogs, "cannot" -> can not, "gonna" -> gon
    na), "o'clock" "ma'am" "'90s" kept; acronyms and the jar's abbreviations keep their period ("u.s.",
    "a.m.", "mr.", "st.", "etc.", "fig. 3"), other words lose it; numbers ("1,000", "3.5", "10:30", "2 1/2"
    with a no-break space), hyphenated and slashed words, URLs, e-mail addresses kept whole; brackets ->
    -lrb- -rrb- -lsb- -rsb- -lcb- -rcb- (kept: PUNCTUATIONS has them upper-case); quotes, dashes, ellipses,
    single . , ; : ? ! dropped, "?!" "!!" kept; "$5" -> $ 5, "€" -> $, "£" -> #, "½" -> 1/2; emoji deleted.

    Checked token for token against the jar (Java 17): the test suite's tricky captions, 160,000 generated
    COCO-style captions, all pairs of printable ASCII characters in context. Known differences (ours,
    then the jar's):

    - Context across captions: each is read as followed by a line end (as the jar reads all but the
      batch's last), not by the next caption. "the letter A." before a caption starting "The"/"A"/"It"...
      gives "a." (jar: "a"); "see fig." before one starting with a digit "fig" (jar: "fig."). At the end
      of the batch's last caption "smile :)" gives ":-rrb-" (jar: "-rrb-"), "'90" "'90" (jar: "90").
    - Line breaks other than "\\n" (\\r, \\v, \\f, U+0085, U+2028, U+2029) are spaces here; the jar ends the
      line there, which shifts every later caption of the batch (a pycocoevalcap bug).
    - Soft hyphens (U+00AD) are removed first; the jar reads them as letters or as separators:
      "\\xadwell-known" -> "well-known" (jar: "well known").
    - HTML entities glued to words: "d&apos;" -> "d'" (jar: "d&apos;"); "&lt;foo@bar.com" -> "<",
      "foo@bar.com" (jar: one token).
    - A no-break space right before a bare .com/.net/.org/.edu name: "|\\xa0google.com" -> "google.com"
      (jar: "\\xa0google.com", the space inside the token).
    - Emoticons: only ":)"-style ones; "^_^" -> "^", "_", "^" (jar: "^_^").
    - Other scripts and symbols: letters, marks and digits are Python's Unicode classes, one-character
      tokens the symbols and punctuation of U+00A1-U+00FF, U+2000-U+2BFF and U+FF00-U+FF65; the jar has
      Java 8 tables and lists of its own. "\\u20b9 5" -> "\\u20b9", "5" (jar: "5"); "\\u055a" is deleted
      (jar: kept); letters newer than Unicode 6.2 ("\\u0860") and lone combining marks are kept (jar:
      deleted). About 2.7% of the BMP's characters differ standing alone; Latin-1 ones do not.
    - Lower-casing is Python's ``str.lower``; Java's differs for a few letters (Greek capital sigma
      inside a token).
    """
    return list(_ptb_tokens(text))


@functools.lru_cache(maxsize=1 << 16)
def _ptb_tokens(text: str) -> tuple[str, ...]:
    text = re.sub(r"&(?:quot|apos);|(?i:&(?:amp|nbsp|mdash|ndash);)", lambda m: _ENTITIES[m.group().lower()], text)
    text = text.replace("\xad", "") + "\n"     # the jar sees each caption followed by a line end
    # The jar writes the lower-cased tokens of a line joined by spaces; ptbtokenizer.py takes
    # ``line.rstrip().split(' ')`` and drops PUNCTUATIONS.
    line = " ".join(token.lower() for token in _ptb_lex(text)).rstrip()
    return tuple(word for word in line.split(" ") if word and word not in PTB_PUNCTUATIONS)


# ============================================================================= scorers


def _check_corpus(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} reference lists")
    for i, refs in enumerate(references):
        if isinstance(refs, str):
            raise ValueError(f"references[{i}] is a string; give each candidate a list of reference captions")
        if len(refs) == 0:
            raise ValueError(f"candidate {i} has no reference caption (pycocoevalcap asserts len(ref) > 0)")


def _tokenized(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> tuple[list[str], list[list[str]]]:
    """What pycocoevalcap hands its scorers: each caption's PTB tokens joined by single spaces."""
    _check_corpus(candidates, references)
    return ([" ".join(ptb_tokenize(c)) for c in candidates],
            [[" ".join(ptb_tokenize(r)) for r in refs] for refs in references])


def _ngram_counts(words: Sequence[str], n: int) -> Counter:
    """``precook`` of bleu_scorer.py / cider_scorer.py: counts of all 1..n-grams."""
    counts: Counter = Counter()
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i:i + k])] += 1
    return counts


def _mean_stats(values: Sequence[float]) -> SampleStats:
    """Mean of per-image scores (never treated as 0/1 outcomes, even when all are 0 or 1)."""
    return replace(share_stats(values), binary=False)


# ----------------------------------------------------------------------------- BLEU

_BLEU_TINY, _BLEU_SMALL = 1e-15, 1e-9     # bleu_scorer.py compute_score: tiny, small


def _bleu_rows(cands: Sequence[str], refs: Sequence[Sequence[str]], n: int) -> np.ndarray:
    """Per image (bleu_scorer.py cook_refs / cook_test): clipped matches of orders 1..n, candidate
    n-gram counts ("guess") of orders 1..n, candidate length, closest reference length."""
    rows = np.zeros((len(cands), 2 * n + 2))
    for row, cand, ref_list in zip(rows, cands, refs):
        words = cand.split()
        max_ref: dict[tuple[str, ...], int] = {}
        ref_lens = []
        for ref in ref_list:
            ref_words = ref.split()
            ref_lens.append(len(ref_words))
            for gram, count in _ngram_counts(ref_words, n).items():
                max_ref[gram] = max(max_ref.get(gram, 0), count)
        for gram, count in _ngram_counts(words, n).items():
            row[len(gram) - 1] += min(max_ref.get(gram, 0), count)
        row[n:2 * n] = [max(0, len(words) - k) for k in range(n)]
        row[2 * n] = len(words)
        row[2 * n + 1] = min((abs(length - len(words)), length) for length in ref_lens)[1]
    return rows


def _bleu_aggregate(n: int) -> Callable[[np.ndarray], np.ndarray]:
    def aggregate(sums: np.ndarray) -> np.ndarray:
        score = np.ones(len(sums))
        for k in range(n):
            score = score * ((sums[:, k] + _BLEU_TINY) / (sums[:, n + k] + _BLEU_SMALL))
        score = score ** (1.0 / n)
        ratio = (sums[:, 2 * n] + _BLEU_TINY) / (sums[:, 2 * n + 1] + _BLEU_SMALL)
        with np.errstate(under="ignore"):
            return score * np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return aggregate


def _bleu_stats(rows4: np.ndarray, n: int) -> SampleStats:
    """BLEU-n from the rows of :func:`_bleu_rows` with n = 4 (orders up to n, lengths)."""
    columns = [*range(n), *range(4, 4 + n), 8, 9]
    return SampleStats(rows4[:, columns], _bleu_aggregate(n))


def bleu_statistics(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4) -> SampleStats:
    """Corpus BLEU-n as pycocoevalcap's ``Bleu(4).compute_score`` (``bleu/bleu.py``, which calls
    ``bleu/bleu_scorer.py`` ``BleuScorer.compute_score(option='closest')``) reports ``Bleu_n``.

    Captions are tokenized with :func:`ptb_tokenize` and re-split on whitespace (``precook``'s
    ``s.split()``). Per image: n-gram matches clipped by the largest count of that n-gram in any *one*
    reference, candidate n-gram counts, candidate length c_i and the closest reference length r_i
    (``min((abs(l - c_i), l))``: ties go to the shorter reference). Corpus level, on the sums:
    BLEU-n = (prod_{k<=n} (match_k + 1e-15) / (guess_k + 1e-9)) ** (1/n), the official ``tiny`` and
    ``small`` (so a zero count of matches gives ~0, not an error), times the brevity penalty
    exp(1 - r / c) with ratio c / r computed as (c + 1e-15) / (r + 1e-9) and applied when < 1 (an
    exactly equal length thus loses a factor exp(-1e-9/c) or so, as officially). Empty corpus or empty
    candidates: 0.0 (the penalty underflows to 0).

    The rows are these per-image counts, so a bootstrap resample (per-image weights multiplied into
    the rows, :meth:`SampleStats.resampled`) gives exactly the official BLEU of the resampled corpus.
    """
    if not 1 <= n <= 4:
        raise ValueError(f"BLEU order n must be 1..4, got {n}")
    cands, refs = _tokenized(candidates, references)
    return _bleu_stats(_bleu_rows(cands, refs, 4), n)


def bleu(candidates: Sequence[str], references: Sequence[Sequence[str]], n: int = 4) -> float:
    """Corpus BLEU-n (pycocoevalcap ``Bleu_n``); see :func:`bleu_statistics`."""
    return bleu_statistics(candidates, references, n).value()


# ----------------------------------------------------------------------------- ROUGE-L

_ROUGE_BETA = 1.2    # rouge/rouge.py Rouge.__init__: self.beta


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """rouge/rouge.py ``my_lcs``: length of the longest common subsequence."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def _rouge_l_one(cand: str, refs: Sequence[str]) -> float:
    """rouge/rouge.py ``Rouge.calc_score`` on tokenized text (split on single spaces)."""
    cand_words = cand.split(" ")
    precisions, recalls = [], []
    for ref in refs:
        ref_words = ref.split(" ")
        lcs = _lcs_length(ref_words, cand_words)
        precisions.append(lcs / float(len(cand_words)))
        recalls.append(lcs / float(len(ref_words)))
    prec, rec = max(precisions), max(recalls)
    if prec != 0 and rec != 0:
        return ((1 + _ROUGE_BETA ** 2) * prec * rec) / float(rec + _ROUGE_BETA ** 2 * prec)
    return 0.0


def rouge_l_scores(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """Per-image ROUGE-L as pycocoevalcap's ``Rouge.compute_score`` (``rouge/rouge.py``,
    ``Rouge.calc_score``); its ``ROUGE_L`` is their mean.

    LCS = longest common subsequence of candidate and reference tokens (:func:`ptb_tokenize`, split
    on single spaces). Per reference, precision LCS / |cand| and recall LCS / |ref|; with several
    references the official code takes the *maximum precision and the maximum recall separately*
    (possibly from different references), then F = (1 + beta^2) P R / (R + beta^2 P) with
    beta = 1.2, or 0 when P or R is 0. Quirk kept: splitting on " " makes an empty caption one empty
    token, so an empty candidate scores 0, and 1 against an empty reference.
    """
    cands, refs = _tokenized(candidates, references)
    return [_rouge_l_one(c, r) for c, r in zip(cands, refs)]


def rouge_l(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus ROUGE-L (pycocoevalcap ``ROUGE_L``): the mean of :func:`rouge_l_scores`, 0.0 when empty."""
    scores = rouge_l_scores(candidates, references)
    return float(np.mean(scores)) if scores else 0.0


# ----------------------------------------------------------------------------- CIDEr-D


def _cider_scores(cands: Sequence[str], refs: Sequence[Sequence[str]], n: int = 4, sigma: float = 6.0) -> list[float]:
    """cider/cider_scorer.py ``CiderScorer.compute_score`` on tokenized text."""
    if not cands:
        return []
    cand_counts = [_ngram_counts(c.split(), n) for c in cands]
    ref_counts = [[_ngram_counts(r.split(), n) for r in ref_list] for ref_list in refs]
    doc_freq: Counter = Counter()
    for counts_list in ref_counts:                       # compute_doc_freq
        doc_freq.update({gram for counts in counts_list for gram in counts})
    log_n = math.log(float(len(cands)))                  # self.ref_len

    def counts2vec(counts: Counter) -> tuple[list[dict], list[float], int]:
        vec: list[dict] = [{} for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for gram, tf in counts.items():
            k = len(gram) - 1
            weight = float(tf) * (log_n - math.log(max(1.0, doc_freq.get(gram, 0.0))))
            vec[k][gram] = weight
            norm[k] += weight ** 2
            if k == 1:
                length += tf                             # the "length" is the number of bigrams
        return vec, [math.sqrt(x) for x in norm], length

    scores = []
    for cand, counts_list in zip(cand_counts, ref_counts):
        vec, norm, length = counts2vec(cand)
        total = np.zeros(n)
        for ref in counts_list:
            vec_ref, norm_ref, length_ref = counts2vec(ref)
            penalty = np.e ** (-(float(length - length_ref) ** 2) / (2 * sigma ** 2))
            val = np.zeros(n)
            for k in range(n):
                for gram, weight in vec[k].items():
                    ref_weight = vec_ref[k].get(gram, 0.0)
                    val[k] += min(weight, ref_weight) * ref_weight
                if norm[k] != 0 and norm_ref[k] != 0:
                    val[k] /= norm[k] * norm_ref[k]
                val[k] *= penalty
            total += val
        scores.append(float(np.mean(total) / len(counts_list) * 10.0))
    return scores


def cider_d_scores(candidates: Sequence[str], references: Sequence[Sequence[str]],
                   n: int = 4, sigma: float = 6.0) -> list[float]:
    """Per-image CIDEr-D as pycocoevalcap's ``Cider.compute_score`` (``cider/cider.py``, which calls
    ``cider/cider_scorer.py`` ``CiderScorer.compute_score``); its ``CIDEr`` is their mean.

    On :func:`ptb_tokenize` tokens (re-split on whitespace), for orders k = 1..n: tf-idf vectors with
    weight tf * (log N - log max(1, df)), N = number of images and df = number of images whose
    *references* contain the n-gram (``compute_doc_freq``; an n-gram absent from all references gets
    df 0 -> weight log N). Per reference, the order-k similarity is the *clipped* dot product
    sum_g min(cand_g, ref_g) * ref_g, divided by |cand| |ref| (left undivided, i.e. 0, when either norm
    is 0), times the Gaussian length penalty exp(-(l_cand - l_ref)^2 / (2 sigma^2)), sigma = 6, where
    the "length" l is the number of *bigrams* (words - 1; ``counts2vec`` counts the n == 1 index).
    Per image: the sum over references of the order similarities, its mean over the n orders, divided
    by the number of references, x 10. A one-image corpus scores 0 (log N - log 1 = 0 everywhere); an
    empty candidate scores 0; an empty corpus gives [] (the official code fails on it).

    The document frequencies come from the whole corpus given here. A bootstrap resample reweights
    these per-image scores (their mean, see :func:`caption_statistics`); it does not recompute them
    with the resample's own document frequencies, as running pycocoevalcap on the resampled corpus
    (duplicated images, fewer distinct ones) would — resampled CIDEr-D values are thus an
    approximation of the official score of each resampled corpus.
    """
    cands, refs = _tokenized(candidates, references)
    return _cider_scores(cands, refs, n, sigma)


def cider_d(candidates: Sequence[str], references: Sequence[Sequence[str]],
            n: int = 4, sigma: float = 6.0) -> float:
    """Corpus CIDEr-D (pycocoevalcap ``CIDEr``): the mean of :func:`cider_d_scores`, 0.0 when empty."""
    scores = cider_d_scores(candidates, references, n, sigma)
    return float(np.mean(scores)) if scores else 0.0


# ----------------------------------------------------------------------------- all at once


def caption_statistics(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, SampleStats]:
    """pycocoevalcap's scores but METEOR (and SPICE) on one tokenization, as per-image statistics.

    ``bleu_1`` .. ``bleu_4``: corpus BLEU (:func:`bleu_statistics`, exact under resampling);
    ``rouge_l``, ``cider_d``: means of the per-image :func:`rouge_l_scores` and :func:`cider_d_scores`
    (CIDEr-D's document frequencies are those of the full corpus, see there). Empty references raise
    ValueError; an empty corpus gives 0.0 everywhere (``undefined`` notes the 0/0 means).
    """
    cands, refs = _tokenized(candidates, references)
    rows = _bleu_rows(cands, refs, 4)
    stats = {f"bleu_{k}": _bleu_stats(rows, k) for k in (1, 2, 3, 4)}
    stats["rouge_l"] = _mean_stats([_rouge_l_one(c, r) for c, r in zip(cands, refs)])
    stats["cider_d"] = _mean_stats(_cider_scores(cands, refs))
    return stats


# ----------------------------------------------------------------------------- METEOR (Java)


def _meteor_jar() -> str:
    """Path of pycocoevalcap's meteor-1.5.jar, or MetricUnavailable saying why it cannot run."""
    if shutil.which("java") is None:
        raise MetricUnavailable("METEOR needs Java (pycocoevalcap's meteor-1.5.jar): no `java` on PATH")
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        raise MetricUnavailable("METEOR needs pycocoevalcap's meteor-1.5.jar: pycocoevalcap is not installed "
                                "(pip install pycocoevalcap)")
    jar = os.path.join(list(spec.submodule_search_locations)[0], "meteor", "meteor-1.5.jar")
    if not os.path.isfile(jar):
        raise MetricUnavailable(f"METEOR jar missing from the pycocoevalcap install: {jar}")
    return jar


def meteor_scores(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """Per-image METEOR 1.5 from pycocoevalcap's ``Meteor.compute_score`` (``meteor/meteor.py``: the
    jar with ``-l en -norm``), on :func:`ptb_tokenize` output as pycocoevalcap feeds it.

    Needs Java and pycocoevalcap; raises :class:`MetricUnavailable` with the reason otherwise.
    Note: pycocoevalcap's corpus ``METEOR`` is the jar's score of the pooled statistics, not the mean
    of these per-image scores.
    """
    _check_corpus(candidates, references)
    _meteor_jar()
    if not candidates:
        return []
    from pycocoevalcap.meteor.meteor import Meteor

    cands, refs = _tokenized(candidates, references)
    scorer = Meteor()
    try:
        _, scores = scorer.compute_score({i: r for i, r in enumerate(refs)}, {i: [c] for i, c in enumerate(cands)})
    finally:
        del scorer                     # Meteor.__del__ stops the jar
    return [float(s) for s in scores]
