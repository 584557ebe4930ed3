"""Compression specs: what to quantize, how, and a short canonical id for reports.

A spec is a frozen, validated value. Its ``id`` is what test ids, cache keys and
report columns show; ``from_id`` parses it back to an equal spec, so an id read from
a report or typed on the command line means exactly one configuration.

Ids (fields that a method does not use are absent; method defaults are filled in):

    fp16                      no quantization (bits=16)
    kv4-uniform               GEAR uniform, one scale/zero per quantized block (tensor)
    kv4-uniform-token         ... one scale/zero per token over all heads (H·D values, GEAR's per-token)
    kv4-uniform-headrow       ... one scale/zero per head row of a token (head_dim values)
    kv2-group-g32-r128        KIVI: group size 32, 128 recent tokens in full precision
    kv2-outlier-s2-lr4        GEAR: 2% outliers kept sparse, rank-4 low-rank residual
    kv2-outlier-s2-lrf0.02    ... rank = int(0.02 · min(tokens, H·D)) per compressed block (GEAR's form)
    kv2-outlier-s2-lr4-exactoutliers  ... low-rank term not added at outlier positions
    w8-rtn                    round-to-nearest, one scale/zero per output channel
    w4-group-g128             groups of 128 input channels
    w4-awq-g128               activation-aware scaling (AWQ) then group quantization
    w3-outlier-s1-g128        dense+sparse: the largest 1% |w| of each output row kept exactly,
                              the rest group-quantized (``-matrix``: 1% of the whole matrix)
    w4-gptq-g128              GPTQ (Hessian-based error compensation), groups of 128
    w4-gptq-g128-actorder     ... columns in descending Hessian-diagonal order, groups formed in
                              that order (the reference's default; the layer permutes its input)
    w4-gptq-g128-actorder-static  ... groups fixed up front from the original columns
                              (the reference's ``--static-groups``)

Optional suffixes, in this order: ``-r{R}`` (residual window, when not implied),
``-sym`` (symmetric), ``-c{ratio}`` (clip ratio below 1), ``-fpprefill`` (KV only:
full-precision prefill attention, KIVI's deployment semantics), and for weights the parts of an
image-text model they quantize when not the language model alone, in the order
``-language``, ``-vision`` (the vision tower), ``-projector`` (the projector between them), or ``-all``
(``w4-group-g128-vision``: the vision tower only, the language model stays float). Weight ids put
``-matrix`` (outlier) or ``-actorder`` / ``-static`` (gptq) right after the group size, before ``-sym``.

Every option may appear once (``kv4-group-g32-g64`` is an error, not "last wins"); bits
are an integer; an unknown option is named in the error with the options allowed.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, fields
from typing import ClassVar

ALLOWED_BITS = (2, 3, 4, 8, 16)
FLOAT_BITS = 16
KV_METHODS = ("uniform", "group", "outlier")
WEIGHT_METHODS = ("rtn", "group", "awq", "outlier", "gptq")
CALIBRATED_METHODS = ("awq", "gptq")  # weight methods that need calibration activations
WEIGHT_OUTLIER_SCOPES = ("row", "matrix")
DEFAULT_WEIGHT_OUTLIER_RATIO = 0.01
KV_GRANULARITIES = ("tensor", "token", "headrow")
MAX_OUTLIER_RATIO = 0.5

# what each option token means, for error messages
KV_OPTIONS = ("g<group_size>", "r<residual_length>", "s<outlier_percent>", "lr<rank>", "c<clip_ratio>",
              "sym", "token", "tensor", "fpprefill", "lrf<rank_fraction>", "headrow", "exactoutliers")
WEIGHT_TARGETS = ("language", "vision", "projector")   # the parts of an image-text model weights can quantize
WEIGHT_OPTIONS = ("g<group_size>", "c<clip_ratio>", "sym", "s<outlier_percent>", "matrix", "actorder", "static",
                  "language", "vision", "projector", "all")

_TOKEN_PATTERNS = {
    "group_size": re.compile(r"g(\d+)"),
    "residual_length": re.compile(r"r(\d+)"),
    "outlier_percent": re.compile(r"s(\d+(?:\.\d+)?)"),
    "rank": re.compile(r"lr(\d+)"),
    "rank_fraction": re.compile(r"lrf(\d*\.?\d+)"),
    "clip_ratio": re.compile(r"c(0?\.\d+)"),
}


def _bad(field: str, value: object, allowed: str) -> ValueError:
    return ValueError(f"invalid {field}={value!r}: {allowed}")


def _format_number(x: float) -> str:
    """Short text for a percent or ratio; specs keep these to 6 decimals, so it parses back."""
    return f"{round(x, 4):g}"


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_int(spec: object, name: str, minimum: int) -> None:
    """An optional integer field: None, or an integer >= minimum (stored as a plain int)."""
    value = getattr(spec, name)
    if value is None:
        return
    if not _is_int(value) or value < minimum:
        raise _bad(name, value, f"must be an integer >= {minimum}")
    object.__setattr__(spec, name, int(value))


def _check_bool(spec: object, name: str) -> None:
    value = getattr(spec, name)
    if not isinstance(value, bool):
        raise _bad(name, value, "must be True or False")


def _check_bits(spec: object) -> None:
    if not _is_int(spec.bits) or spec.bits not in ALLOWED_BITS:
        raise _bad("bits", spec.bits, f"allowed bits are {ALLOWED_BITS} (16 = no quantization; an integer)")
    object.__setattr__(spec, "bits", int(spec.bits))


def _validate_common(spec: KVQuantSpec | WeightQuantSpec, methods: tuple[str, ...]) -> None:
    _check_bits(spec)
    if spec.bits != FLOAT_BITS and spec.method not in methods:
        raise _bad("method", spec.method, f"allowed methods are {methods}")
    _check_int(spec, "group_size", 1)
    _check_bool(spec, "symmetric")
    allowed = "must be a number in (0, 1], at least 0.0001 (4 decimals are kept)"
    if not _is_real(spec.clip_ratio) or not 0.0 < spec.clip_ratio <= 1.0:
        raise _bad("clip_ratio", spec.clip_ratio, allowed)
    rounded = round(float(spec.clip_ratio), 4)
    if rounded <= 0.0:
        raise _bad("clip_ratio", spec.clip_ratio, allowed)
    object.__setattr__(spec, "clip_ratio", rounded)


def _reject_unused(spec: object, defaults: dict[str, object], method: str) -> None:
    """A field the method does not use must stay unset, so an id never hides a setting."""
    for name, unset in defaults.items():
        if getattr(spec, name) != unset:
            raise _bad(name, getattr(spec, name), f"method {method!r} does not use {name}")


def _split_id(text: str, prefix: str) -> tuple[int, str, list[str]]:
    if not isinstance(text, str):
        raise _bad("id", text, f"expected a string 'fp16' or '{prefix}<bits>-<method>[-option...]'")
    head = re.fullmatch(rf"{prefix}([0-9.]+)-([a-z]+)((?:-[a-z0-9.]+)*)", text)
    if head is None:
        raise _bad("id", text, f"expected 'fp16' or '{prefix}<bits>-<method>[-option...]'")
    if not head.group(1).isdigit():
        raise _bad("id", text, f"bits={head.group(1)} is not an integer; allowed bits are {ALLOWED_BITS}")
    tokens = head.group(3).split("-")[1:]
    return int(head.group(1)), head.group(2), tokens


def _parse_tokens(text: str, tokens: list[str], flags: tuple[str, ...],
                  allowed: tuple[str, ...]) -> dict[str, object]:
    """Turn option tokens (g32, r128, s2, lr4, c0.9, sym, token, fpprefill) into fields.

    Each field may be given once; ``token``/``tensor`` both set the granularity."""
    values: dict[str, object] = {}
    seen: dict[str, str] = {}  # field -> the token that set it
    for token in tokens:
        if token in flags:
            name, value = ("granularity" if token in KV_GRANULARITIES else token), token
        else:
            for name, pattern in _TOKEN_PATTERNS.items():
                match = pattern.fullmatch(token)
                if match:
                    raw = match.group(1)
                    value = float(raw) if name in ("outlier_percent", "clip_ratio", "rank_fraction") else int(raw)
                    break
            else:
                raise _bad("id", text, f"unknown option {token!r}; allowed options are {', '.join(allowed)}")
            if name not in {_option_field(a) for a in allowed}:
                raise _bad("id", text, f"unknown option {token!r}; allowed options are {', '.join(allowed)}")
        if name in seen:
            raise _bad("id", text, f"option {token!r} repeats {name} (already set by {seen[name]!r}); "
                                   "each option may appear once")
        seen[name] = token
        values[name] = value
    return values


def _option_field(option: str) -> str:
    """'g<group_size>' -> 'group_size'; a flag names itself."""
    return option[option.index("<") + 1:-1] if "<" in option else option


class _SpecBase:
    """What KV and weight specs share: 16 bits means "no quantization"."""

    bits: int

    @property
    def is_float(self) -> bool:
        return self.bits == FLOAT_BITS

    def _normalise_float(self) -> bool:
        """At 16 bits, reset every option to its default (they mean nothing); True if so."""
        if not self.is_float:
            return False
        for f in fields(self):
            object.__setattr__(self, f.name, f.default)
        return True


@dataclass(frozen=True)
class KVQuantSpec(_SpecBase):
    """How the KV cache is compressed.

    method: ``uniform`` (GEAR's uniform, arXiv 2403.05527), ``group`` (KIVI, arXiv 2402.02750:
    keys per-channel, values per-token, groups of ``group_size``) or ``outlier`` (GEAR's
    outlier-reduced: ``outlier_ratio`` of entries kept sparse in full precision, optional
    low-rank residual of rank ``rank``, or of rank ``int(rank_fraction · min(tokens, H·D))`` per
    compressed block as GEAR sets it; ``exact_outliers`` keeps the outlier positions exact by not
    adding the low-rank term there, where GEAR adds it everywhere). ``granularity`` (uniform):
    ``tensor`` (per sequence), ``token`` (one range per token over all heads, H·D values) or
    ``headrow`` (one range per head row of head_dim values). ``bits=16`` means no quantization
    (method ``none``).
    ``residual_length`` recent tokens stay in full precision. ``quantize_prefill`` (default)
    lets the prefill attention see the compressed prompt, as the study does; ``False`` is
    KIVI's deployment semantics, under which a one-token answer cannot change.
    """

    method: str = "none"
    bits: int = FLOAT_BITS
    group_size: int | None = None
    residual_length: int | None = None
    outlier_ratio: float | None = None
    rank: int | None = None
    granularity: str | None = None
    symmetric: bool = False
    clip_ratio: float = 1.0
    quantize_prefill: bool = True
    rank_fraction: float | None = None
    exact_outliers: bool = False

    DEFAULTS: ClassVar[dict[str, dict[str, object]]] = {
        "uniform": {"granularity": "tensor", "residual_length": 0},
        "group": {"group_size": 32, "residual_length": 128},
        "outlier": {"outlier_ratio": 0.02, "rank": 0, "residual_length": 0},
    }

    def __post_init__(self) -> None:
        if self._normalise_float():
            return
        _validate_common(self, KV_METHODS)
        defaults = self.DEFAULTS[self.method]
        unused = {f.name: None for f in fields(self) if f.name in
                  ("group_size", "residual_length", "outlier_ratio", "rank", "granularity")
                  and f.name not in defaults}
        if self.method != "outlier":
            unused.update(rank_fraction=None, exact_outliers=False)
        _reject_unused(self, unused, self.method)
        for name, value in defaults.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        _check_bool(self, "quantize_prefill")
        _check_int(self, "residual_length", 0)
        if self.method == "group" and self.residual_length % self.group_size:
            raise _bad("residual_length", self.residual_length,
                       f"must be a multiple of group_size={self.group_size} (KIVI flushes whole groups)")
        if self.method == "uniform" and self.granularity not in KV_GRANULARITIES:
            raise _bad("granularity", self.granularity, f"allowed granularities are {KV_GRANULARITIES}")
        if self.method == "outlier":
            # ratio/2 largest and ratio/2 smallest entries are kept sparse (value + int32 index);
            # at 0.5 or more that is larger than the dense tensor. 0 means no outliers.
            if (not _is_real(self.outlier_ratio) or not 0.0 <= self.outlier_ratio < MAX_OUTLIER_RATIO
                    or round(float(self.outlier_ratio), 6) >= MAX_OUTLIER_RATIO):
                raise _bad("outlier_ratio", self.outlier_ratio,
                           f"must be a number in [0, {MAX_OUTLIER_RATIO}) (0 keeps no outliers; 6 decimals kept)")
            object.__setattr__(self, "outlier_ratio", round(float(self.outlier_ratio), 6))
            _check_int(self, "rank", 0)
            _check_bool(self, "exact_outliers")
            if self.rank_fraction is not None:
                allowed = "must be a number in (0, 1], at least 0.0001 (4 decimals are kept)"
                if (not _is_real(self.rank_fraction) or not 0.0 < self.rank_fraction <= 1.0
                        or round(float(self.rank_fraction), 4) <= 0.0):
                    raise _bad("rank_fraction", self.rank_fraction, allowed)
                if self.rank:
                    raise _bad("rank_fraction", self.rank_fraction,
                               f"give a fixed rank (rank={self.rank}) or a rank_fraction, not both")
                object.__setattr__(self, "rank_fraction", round(float(self.rank_fraction), 4))
            if self.exact_outliers and not (self.rank or self.rank_fraction):
                raise _bad("exact_outliers", self.exact_outliers,
                           "only changes the low-rank term; needs rank > 0 or a rank_fraction")

    @property
    def id(self) -> str:
        if self.is_float:
            return "fp16"
        parts = [f"kv{self.bits}", self.method]
        if self.method == "uniform" and self.granularity != "tensor":
            parts.append(self.granularity)
        if self.method == "group":
            parts += [f"g{self.group_size}", f"r{self.residual_length}"]
        if self.method == "outlier":
            parts.append(f"s{_format_number(self.outlier_ratio * 100)}")
            if self.rank:
                parts.append(f"lr{self.rank}")
            if self.rank_fraction:
                parts.append(f"lrf{_format_number(self.rank_fraction)}")
            if self.exact_outliers:
                parts.append("exactoutliers")
        if self.method != "group" and self.residual_length:
            parts.append(f"r{self.residual_length}")
        parts += _common_suffix(self)
        if not self.quantize_prefill:
            parts.append("fpprefill")
        return "-".join(parts)

    @classmethod
    def from_id(cls, text: str) -> KVQuantSpec:
        if text == "fp16":
            return cls()
        bits, method, tokens = _split_id(text, "kv")
        values = _parse_tokens(text, tokens, ("sym", "fpprefill", "exactoutliers") + KV_GRANULARITIES, KV_OPTIONS)
        kwargs: dict[str, object] = {"method": method, "bits": bits,
                                     "symmetric": bool(values.pop("sym", False)),
                                     "quantize_prefill": not values.pop("fpprefill", False),
                                     "exact_outliers": bool(values.pop("exactoutliers", False))}
        if "outlier_percent" in values:
            kwargs["outlier_ratio"] = values.pop("outlier_percent") / 100
        kwargs.update(values)
        return _construct(cls, text, kwargs)


@dataclass(frozen=True)
class WeightQuantSpec(_SpecBase):
    """How linear weights are compressed.

    method: ``rtn`` (round-to-nearest, one scale/zero per output channel), ``group``
    (groups of ``group_size`` input channels, default 128), ``awq`` (per-input-channel
    scales from activations, AWQ arXiv 2306.00978, then group quantization), ``outlier``
    (dense + sparse: ``outlier_ratio`` of the largest-magnitude weights of each output row,
    or of the whole matrix with ``outlier_scope="matrix"``, kept exactly in a sparse part,
    the rest group-quantized) or ``gptq`` (Frantar et al., arXiv 2210.17323: column-by-column
    quantization with Hessian-based error compensation; ``act_order`` quantizes columns in
    descending Hessian-diagonal order; ``static_groups`` fixes every group's parameters from the
    original weight before any update). ``bits=16`` means no quantization.
    ``needs_calibration``: the method needs calibration activations (awq, gptq).
    """

    method: str = "none"
    bits: int = FLOAT_BITS
    group_size: int | None = None
    symmetric: bool = False
    clip_ratio: float = 1.0
    outlier_ratio: float | None = None
    outlier_scope: str | None = None
    act_order: bool = False
    static_groups: bool = False
    targets: tuple[str, ...] = ("language",)

    DEFAULT_GROUP_SIZE: ClassVar[int] = 128

    def __post_init__(self) -> None:
        if self._normalise_float():
            return
        _validate_common(self, WEIGHT_METHODS)
        unused: dict[str, object] = {}
        if self.method != "outlier":
            unused.update(outlier_ratio=None, outlier_scope=None)
        if self.method != "gptq":
            unused.update(act_order=False, static_groups=False)
        if self.method == "rtn":
            unused["group_size"] = None
        _reject_unused(self, unused, self.method)
        if self.method != "rtn" and self.group_size is None:
            object.__setattr__(self, "group_size", self.DEFAULT_GROUP_SIZE)
        _check_bool(self, "act_order")
        _check_bool(self, "static_groups")
        _check_targets(self)
        if self.method == "outlier":
            if self.outlier_ratio is None:
                object.__setattr__(self, "outlier_ratio", DEFAULT_WEIGHT_OUTLIER_RATIO)
            if self.outlier_scope is None:
                object.__setattr__(self, "outlier_scope", "row")
            # values + int16/int32 column indices: at 0.5 or more the sparse part outweighs the
            # dense weight. 0 keeps no outliers (plain group quantization).
            if (not _is_real(self.outlier_ratio) or not 0.0 <= self.outlier_ratio < MAX_OUTLIER_RATIO
                    or round(float(self.outlier_ratio), 6) >= MAX_OUTLIER_RATIO):
                raise _bad("outlier_ratio", self.outlier_ratio,
                           f"must be a number in [0, {MAX_OUTLIER_RATIO}) (a fraction: 0.01 is the id's s1; "
                           "0 keeps no outliers; 6 decimals kept)")
            object.__setattr__(self, "outlier_ratio", round(float(self.outlier_ratio), 6))
            if self.outlier_scope not in WEIGHT_OUTLIER_SCOPES:
                raise _bad("outlier_scope", self.outlier_scope,
                           f"allowed outlier scopes are {WEIGHT_OUTLIER_SCOPES}")

    @property
    def needs_calibration(self) -> bool:
        """True for methods that need calibration activations (``CALIBRATED_METHODS``)."""
        return self.method in CALIBRATED_METHODS

    @property
    def id(self) -> str:
        if self.is_float:
            return "fp16"
        parts = [f"w{self.bits}", self.method]
        if self.method == "outlier":
            parts.append(f"s{_format_number(self.outlier_ratio * 100)}")
        if self.group_size is not None:
            parts.append(f"g{self.group_size}")
        if self.outlier_scope == "matrix":
            parts.append("matrix")
        if self.act_order:
            parts.append("actorder")
        if self.static_groups:
            parts.append("static")
        if self.targets == WEIGHT_TARGETS:
            suffix = ["all"]
        else:
            suffix = [] if self.targets == ("language",) else list(self.targets)
        return "-".join(parts + _common_suffix(self) + suffix)

    @classmethod
    def from_id(cls, text: str) -> WeightQuantSpec:
        if text == "fp16":
            return cls()
        bits, method, tokens = _split_id(text, "w")
        parts = [token for token in tokens if token in WEIGHT_TARGETS + ("all",)]
        if len(set(parts)) < len(parts):
            raise _bad("id", text, f"a part repeats in {parts}; each option may appear once")
        if "all" in parts and len(parts) > 1:
            raise _bad("id", text, "option 'all' names every part already; give 'all' or parts "
                                   f"from {WEIGHT_TARGETS}, not both")
        values = _parse_tokens(text, [t for t in tokens if t not in parts], ("sym", "matrix", "actorder", "static"),
                               WEIGHT_OPTIONS)
        kwargs: dict[str, object] = {"method": method, "bits": bits, "group_size": values.get("group_size"),
                                     "symmetric": bool(values.get("sym", False)),
                                     "clip_ratio": values.get("clip_ratio", 1.0),
                                     "act_order": bool(values.get("actorder", False)),
                                     "static_groups": bool(values.get("static", False)),
                                     "targets": WEIGHT_TARGETS if parts == ["all"] else tuple(parts) or ("language",)}
        if "outlier_percent" in values:
            kwargs["outlier_ratio"] = values["outlier_percent"] / 100
        if "matrix" in values:
            kwargs["outlier_scope"] = "matrix"
        return _construct(cls, text, kwargs)


def _check_targets(spec: WeightQuantSpec) -> None:
    """Which parts of an image-text model the spec quantizes: a non-empty selection of
    ``WEIGHT_TARGETS``, kept in that order (so equal selections have one id)."""
    targets = spec.targets
    if isinstance(targets, str) or not isinstance(targets, (tuple, list)) or not targets or any(
            t not in WEIGHT_TARGETS for t in targets) or len(set(targets)) < len(targets):
        raise _bad("targets", targets, f"must be a non-empty selection of {WEIGHT_TARGETS} without repeats "
                                       "(the language model alone is ('language',))")
    object.__setattr__(spec, "targets", tuple(t for t in WEIGHT_TARGETS if t in targets))


def _construct(cls, text: str, kwargs: dict[str, object]):
    """Build the spec an id describes; a field error also names the id it came from."""
    try:
        return cls(**kwargs)
    except ValueError as error:
        raise ValueError(f"invalid id={text!r}: {error}") from None


def _common_suffix(spec: KVQuantSpec | WeightQuantSpec) -> list[str]:
    parts = []
    if spec.symmetric:
        parts.append("sym")
    if spec.clip_ratio != 1.0:
        parts.append(f"c{_format_number(spec.clip_ratio)}")
    return parts
