"""Specs of the compressions that drop tokens instead of shrinking each one: KV eviction and
visual-token pruning. Like ``quant.spec`` (no torch here: option parsing imports it), a spec is a
frozen, validated value whose ``id`` parses back to an equal spec.

Ids (options at their default are left out, so an id names one configuration):

    evict-streaming-b40        StreamingLLM: the first 4 tokens (attention sinks) + the most recent
    evict-streaming-b40-s2     ... 2 sinks
    evict-h2o-b40              H2O: heavy hitters by accumulated attention + a recent window of w tokens
    evict-snapkv-b40           SnapKV: the last w prompt queries vote (pooled), + the window itself
    evict-pyramidkv-b40        PyramidKV: SnapKV's vote with per-layer budgets (early layers keep more)
    evict-adakv-b40            AdaKV: SnapKV's vote (max-pooled) with per-head budgets
    evict-snapkv-b40-w8-k3     ... window w=8, pooling kernel 3 (defaults: w=32, k=5, AdaKV k=7)
    evict-pyramidkv-b40-beta10 ... PyramidKV's beta (default 20)
    evict-adakv-b40-a50        ... AdaKV's floor alpha as a percent (default 20)
    vtok-fastv-k2-r50          FastV: after layer K=2, drop R=50% of the image tokens (least attended
                               by the last prompt token at layer K-1)
    vtok-random-r50            drop 50% of the image tokens at random (seeded per prompt), every layer
    vtok-pool2                 average each 2x2 block of the image-token grid into one token
    vtok-visionzip-r89         VisionZip: keep the patches the vision tower's CLS attends most (dominant)
                               and merge the rest into a few contextual tokens, 89% of image tokens removed

``b<budget>`` is the share of the prompt's KV entries kept, in percent (window included): kvpress's
``compression_ratio`` is ``1 - budget/100``. ``r<ratio>`` is the percent of image tokens removed
(FastV's R).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import ClassVar

from .spec import _bad

EVICT_METHODS = ("streaming", "h2o", "snapkv", "pyramidkv", "adakv")
VTOK_METHODS = ("fastv", "random", "pool", "visionzip")
WINDOWED = ("h2o", "snapkv", "pyramidkv", "adakv")   # keep the last w prompt tokens
POOLED = ("snapkv", "pyramidkv", "adakv")             # pool the window's vote along tokens


def _int_in(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f">= {low}" if high is None else f"in {low}..{high}"
        raise _bad(name, value, f"must be an integer {span}")
    return value


def _options(text: str, tail: str, allowed: dict[str, str]) -> dict[str, int]:
    """``-w8-k3`` -> {"window": 8, "kernel": 3}; each option once, unknown ones named."""
    values: dict[str, int] = {}
    for token in tail.split("-")[1:] if tail else []:
        match = re.fullmatch(r"([a-z]+)(\d+)", token)
        if match is None or match.group(1) not in allowed:
            raise _bad("id", text, f"unknown option {token!r}; allowed options are "
                                   f"{', '.join(f'{p}<{n}>' for p, n in allowed.items()) or 'none'}")
        name = allowed[match.group(1)]
        if name in values:
            raise _bad("id", text, f"option {token!r} repeats {name}; each option may appear once")
        values[name] = int(match.group(2))
    return values


@dataclass(frozen=True)
class EvictSpec:
    """Which prompt KV entries a cache keeps after the prefill (decoded tokens are all kept)."""

    method: str
    budget: int                  # percent of the prompt's KV entries kept per layer and head, window included
                                 # (PyramidKV's layers and AdaKV's heads: on average)
    window: int = 32             # SnapKV's observation window / H2O's recent window (SnapKV repo default)
    kernel: int | None = None    # pooling kernel: 5 (SnapKV, PyramidKV, avg-pool), 7 (AdaKV, max-pool)
    sinks: int = 4               # StreamingLLM's attention sinks (kvpress n_sink)
    beta: int = 20               # PyramidKV's beta
    alpha: int = 20              # AdaKV's floor alpha, percent (AdaKV pred.py default 0.2)

    PREFIX: ClassVar[str] = "evict"
    USES: ClassVar[dict[str, tuple[str, ...]]] = {
        "streaming": ("sinks",), "h2o": ("window",), "snapkv": ("window", "kernel"),
        "pyramidkv": ("window", "kernel", "beta"), "adakv": ("window", "kernel", "alpha")}
    OPTION_PREFIX: ClassVar[dict[str, str]] = {"window": "w", "kernel": "k", "sinks": "s", "beta": "beta",
                                               "alpha": "a"}

    def __post_init__(self) -> None:
        if self.method not in EVICT_METHODS:
            raise _bad("method", self.method, f"allowed eviction methods are {EVICT_METHODS}")
        _int_in("budget", self.budget, 1, 99)
        if self.kernel is None:
            object.__setattr__(self, "kernel", self.default_kernel(self.method))
        for name, default in self.option_defaults(self.method).items():
            value = getattr(self, name)
            if name not in self.USES[self.method]:
                if value != default:
                    raise _bad(name, value, f"method {self.method!r} does not use {name}")
                continue
            _int_in(name, value, 0 if name in ("sinks", "alpha") else 1, 100 if name == "alpha" else None)
        if self.kernel is not None and self.kernel % 2 == 0:
            raise _bad("kernel", self.kernel, "must be odd (the pooling is centred: padding kernel // 2)")


    @property
    def id(self) -> str:
        defaults = self.option_defaults(self.method)
        options = "".join(f"-{self.OPTION_PREFIX[name]}{getattr(self, name)}" for name in self.USES[self.method]
                          if getattr(self, name) != defaults[name])
        return f"evict-{self.method}-b{self.budget}{options}"

    @classmethod
    def from_id(cls, text: str) -> EvictSpec:
        match = re.fullmatch(r"evict-([a-z0-9]+)-b(\d+)((?:-[a-z]+\d+)*)", text) if isinstance(text, str) else None
        if match is None:
            raise _bad("id", text, "expected 'evict-<method>-b<percent kept>[-option...]', e.g. evict-snapkv-b40; "
                                   f"methods {EVICT_METHODS}")
        method = match.group(1)
        if method not in EVICT_METHODS:
            raise _bad("method", method, f"allowed eviction methods are {EVICT_METHODS}")
        allowed = {cls.OPTION_PREFIX[name]: name for name in cls.USES[method]}
        return cls(method, int(match.group(2)), **_options(text, match.group(3), allowed))

    @staticmethod
    def default_kernel(method: str) -> int | None:
        """The pooling kernel a method uses by default: SnapKV's 5 (avg), AdaKV's 7 (max); None unpooled."""
        return None if method not in POOLED else 7 if method == "adakv" else 5

    @classmethod
    def option_defaults(cls, method: str) -> dict[str, int | None]:
        """Each option's default for ``method`` (the fields' defaults; the kernel by method)."""
        values = {f.name: f.default for f in fields(cls) if f.name in cls.OPTION_PREFIX}
        return {**values, "kernel": cls.default_kernel(method)}

    def keep_count(self, tokens: int) -> int:
        """Prompt entries kept of ``tokens``: ``tokens * budget // 100`` in integers (kvpress's
        ``int(k_len * (1 - compression_ratio))`` in floats gives ``int(10 * (1 - 0.9)) == 0``), at least one."""
        return max(tokens * self.budget // 100, 1)


@dataclass(frozen=True)
class VTokSpec:
    """Which image tokens the language model sees: FastV's in-model drop, random drop, pooling, or
    VisionZip's dominant + contextual tokens."""

    method: str
    ratio: int = 0     # percent of image tokens removed (fastv, random, visionzip)
    layer: int = 0     # FastV's K: layers 0..K-1 see every token
    pool: int = 0      # pooling factor per grid side (pool)

    PREFIX: ClassVar[str] = "vtok"

    def __post_init__(self) -> None:
        if self.method not in VTOK_METHODS:
            raise _bad("method", self.method, f"allowed visual-token methods are {VTOK_METHODS}")
        if self.method == "pool":
            _int_in("pool", self.pool, 2)
            for name in ("ratio", "layer"):
                if getattr(self, name):
                    raise _bad(name, getattr(self, name), "method 'pool' does not use it")
            return
        _int_in("ratio", self.ratio, 1, 99)
        if self.pool:
            raise _bad("pool", self.pool, f"method {self.method!r} does not use it")
        if self.method == "fastv":
            _int_in("layer", self.layer, 1)
        elif self.layer:
            raise _bad("layer", self.layer, f"method {self.method!r} drops at the input (layer 0); it takes no k<layer>")

    @property
    def id(self) -> str:
        if self.method == "pool":
            return f"vtok-pool{self.pool}"
        return f"vtok-{self.method}" + (f"-k{self.layer}" if self.method == "fastv" else "") + f"-r{self.ratio}"

    @classmethod
    def from_id(cls, text: str) -> VTokSpec:
        forms = ("'vtok-fastv-k<layer>-r<percent removed>', 'vtok-random-r<percent removed>', "
                 "'vtok-visionzip-r<percent removed>' or 'vtok-pool<factor>'")
        if not isinstance(text, str) or not text.startswith("vtok-"):
            raise _bad("id", text, f"expected {forms}")
        pool = re.fullmatch(r"vtok-pool(\d+)", text)
        if pool:
            return cls("pool", pool=int(pool.group(1)))
        match = re.fullmatch(r"vtok-([a-z]+)((?:-[a-z]+\d+)*)", text)
        if match is None or match.group(1) not in ("fastv", "random", "visionzip"):
            raise _bad("id", text, f"expected {forms}")
        allowed = {"k": "layer", "r": "ratio"} if match.group(1) == "fastv" else {"r": "ratio"}   # noqa: E501
        values = _options(text, match.group(2), allowed)
        if match.group(1) == "fastv" and "layer" not in values:
            raise _bad("id", text, f"FastV's layer K is missing (k<layer>, e.g. vtok-fastv-k2-r50); expected {forms}")
        if "ratio" not in values:
            raise _bad("id", text, f"the percent of image tokens removed is missing (r<percent>); expected {forms}")
        return cls(match.group(1), **values)

    @property
    def first_pruned_layer(self) -> int:
        """Layers from this one on hold no pruned image token (FastV: K; random and pool: 0)."""
        return self.layer if self.method == "fastv" else 0

    def keep_count(self, image_tokens: int) -> int:
        """Image tokens kept of ``image_tokens`` (fastv, random, visionzip): FastV's ``round(N * (1 - R))``
        (Python's round: half to even), at least one."""
        return max(round(image_tokens * (100 - self.ratio) / 100), 1)

    def visionzip_split(self, image_tokens: int) -> tuple[int, int]:
        """(dominant, contextual) tokens of VisionZip's budget: its settings keep 54 + 10 of 64, 108 + 20
        of 128, 162 + 30 of 192, so contextual = round(kept · 10 / 64), the rest dominant."""
        kept = self.keep_count(image_tokens)
        contextual = round(kept * 10 / 64) if kept > 1 else 0
        return kept - contextual, contextual
