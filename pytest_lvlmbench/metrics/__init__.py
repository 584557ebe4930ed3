"""Task metrics for compressed-LVLM benchmarks: plain functions, numpy only, one module per concern.

Every scorer names the official implementation it reproduces (repository, file, function) and
follows it by default, quirks included; a documented community variant is a second named scorer.

- ``vqa``: short answers (VQA soft accuracy, TextVQA's m4c evaluator, GQA, ScienceQA letters)
- ``yesno``: POPE, MME, HallusionBench
- ``captions``: BLEU, ROUGE-L, CIDEr-D on PTB-tokenized text
- ``social``: MaxSkew, toxicity
- ``stats``: per-sample statistics, bootstrap intervals, McNemar, paired tests, Benjamini-Hochberg
- ``registry``: metric names and directions
"""

from .captions import *  # noqa: F401,F403
from .registry import METRICS, MetricInfo, direction_mark, higher_is_better, register_metric  # noqa: F401
from .social import *  # noqa: F401,F403
from .stats import *  # noqa: F401,F403
from .vqa import *  # noqa: F401,F403
from .yesno import *  # noqa: F401,F403
