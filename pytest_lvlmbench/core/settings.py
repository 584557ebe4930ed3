"""Compression settings: one weight spec plus one KV spec, named by a single readable id."""

from __future__ import annotations

import functools

from dataclasses import dataclass, replace

from quant.spec import KVQuantSpec, WeightQuantSpec
from quant.layers import LayerSelection, blocks
from quant.token_spec import EvictSpec, VTokSpec
from quant.spec import ALLOWED_BITS, KV_METHODS, WEIGHT_METHODS, WEIGHT_TARGETS


@dataclass(frozen=True)
class Setting:
    """A weight spec and a KV spec, each optionally on a subset of decoder layers (``@0-7``), and
    optionally KV eviction (``evict-...``) and visual-token pruning (``vtok-...``), which drop tokens."""

    weights: WeightQuantSpec = WeightQuantSpec()
    kv: KVQuantSpec = KVQuantSpec()
    weight_layers: LayerSelection | None = None
    kv_layers: LayerSelection | None = None
    weights_rest: WeightQuantSpec = WeightQuantSpec()   # mixed precision: the layers weight_layers leaves out
    kv_rest: KVQuantSpec = KVQuantSpec()
    evict: EvictSpec | None = None
    vtok: VTokSpec | None = None

    def __post_init__(self) -> None:
        for value, kind, example in ((self.evict, EvictSpec, "evict-snapkv-b40"), (self.vtok, VTokSpec, "vtok-pool2")):
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"invalid {kind.__name__}={value!r}: expected a {kind.__name__} ({kind.__name__}"
                                f".from_id({example!r}))")
        for spec, layers, rest, name in ((self.weights, self.weight_layers, self.weights_rest, "weight"),
                                         (self.kv, self.kv_layers, self.kv_rest, "KV")):
            if layers is not None and spec.is_float:
                raise ValueError(f"invalid {name} layers={layers.text!r}: the {name} spec compresses nothing")
            if not rest.is_float and layers is None:
                raise ValueError(f"invalid {name} spec for the other layers ({rest.id}): it needs a layer selection "
                                 f"for the first spec (e.g. {'w2-rtn@0-3+w4-rtn' if name == 'weight' else 'kv2-uniform@0-3+kv4-uniform'})")
        if self.weight_layers is not None and "language" not in self.weights.targets:
            raise ValueError(f"invalid weight layers={self.weight_layers.text!r} for {self.weights.id}: a layer selection "
                             "picks decoder layers of the language model, which this spec does not quantize")
        if not self.weights_rest.is_float and self.weights_rest.targets != self.weights.targets:
            raise ValueError(f"invalid weight spec for the other layers ({self.weights_rest.id}): it must quantize the "
                             f"same parts as {self.weights.id} ({', '.join(self.weights.targets)})")

    @property
    def weights_id(self) -> str:
        """The weight part's id with its layers (and the other layers' spec): what a
        weight-quantized model copy is keyed by."""
        return self._part(self.weights, self.weight_layers, self.weights_rest)

    @property
    def kv_id(self) -> str:
        return self._part(self.kv, self.kv_layers, self.kv_rest)

    @staticmethod
    def _part(spec, layers: LayerSelection | None, rest) -> str:
        return (spec.id + (f"@{layers.text}" if layers else "")
                + ("" if rest.is_float else f"+{rest.id}"))

    @property
    def id(self) -> str:
        parts = [part for part, spec in ((self.weights_id, self.weights), (self.kv_id, self.kv)) if not spec.is_float]
        parts += [spec.id for spec in (self.evict, self.vtok) if spec is not None]
        return "+".join(parts) or "fp16"

    @property
    def drops_tokens(self) -> bool:
        """KV eviction or visual-token pruning: fewer tokens are cached (or seen) than the prompt holds."""
        return self.evict is not None or self.vtok is not None

    @property
    def layered(self) -> bool:
        return self.weight_layers is not None or self.kv_layers is not None

    @property
    def weights_part(self) -> Setting:
        """The weight compression alone (its layers and mixed-precision rest kept), float KV."""
        return Setting(self.weights, weight_layers=self.weight_layers, weights_rest=self.weights_rest)

    @property
    def kv_part(self) -> Setting:
        """The KV compression alone (its layers and mixed-precision rest kept, eviction and pruning
        too), float weights."""
        return Setting(kv=self.kv, kv_layers=self.kv_layers, kv_rest=self.kv_rest, evict=self.evict, vtok=self.vtok)

    @property
    def whole(self) -> Setting:
        """The same specs on every layer."""
        return Setting(self.weights, self.kv, evict=self.evict, vtok=self.vtok)

    @property
    def bits(self) -> int:
        """The bit budget: the fewest bits any part of the model is stored in (16 for fp16)."""
        return min(self.weights.bits, self.kv.bits, self.weights_rest.bits, self.kv_rest.bits)

    @property
    def needs_calibration(self) -> bool:
        """Some weight spec of the setting calibrates on activations (AWQ, GPTQ)."""
        return self.weights.needs_calibration or self.weights_rest.needs_calibration

    @property
    def is_baseline(self) -> bool:
        return self.weights.is_float and self.kv.is_float and not self.drops_tokens

    @classmethod
    @functools.lru_cache(maxsize=None)
    def from_id(cls, text: str) -> Setting:
        """``fp16``, ``w4-rtn``, ``kv2-uniform@0-3`` (those layers only), ``kv2-uniform@0-3+kv4-uniform``
        (mixed: the other layers at kv4), joined by ``+`` across weights and KV, then at most one
        ``evict-...`` and one ``vtok-...`` (``kv4-group-g32-r128+evict-snapkv-b40``)."""
        found = {"w": [], "kv": []}
        dropping: dict[str, list[str]] = {"evict": [], "vtok": []}
        for part in text.split("+"):
            kind = part.partition("-")[0]
            if kind in dropping:
                if "@" in part:
                    raise ValueError(f"invalid id={text!r}: {part!r} applies to every layer; it takes no @layers")
                dropping[kind].append(part)
            elif part != "fp16":
                spec_id, _, selection = part.partition("@")
                found["w" if part.startswith("w") else "kv"].append((spec_id, selection))
        for kind, parts in dropping.items():
            if len(parts) > 1:
                raise ValueError(f"invalid id={text!r}: at most one {kind}-... part, got {parts}")
        values = {}
        for kind, make in (("w", WeightQuantSpec.from_id), ("kv", KVQuantSpec.from_id)):
            parts = found[kind]
            selected = [p for p in parts if p[1]]
            plain = [p for p in parts if not p[1]]
            if len(selected) > 1 or len(plain) > 1:
                raise ValueError(f"invalid id={text!r}: at most one {kind} spec with @layers and one without "
                                 "(the other layers), e.g. kv2-uniform@0-3+kv4-uniform")
            if selected:
                values[kind] = (make(selected[0][0]), LayerSelection(selected[0][1]),
                                make(plain[0][0]) if plain else None)
            else:
                values[kind] = (make(plain[0][0]) if plain else None, None, None)
        (weights, weight_layers, weights_rest), (kv, kv_layers, kv_rest) = values["w"], values["kv"]
        return cls(weights or WeightQuantSpec(), kv or KVQuantSpec(), weight_layers, kv_layers,
                   weights_rest or WeightQuantSpec(), kv_rest or KVQuantSpec(),
                   EvictSpec.from_id(dropping["evict"][0]) if dropping["evict"] else None,
                   VTokSpec.from_id(dropping["vtok"][0]) if dropping["vtok"] else None)


BASELINE = Setting()


GRID_KV_GROUP = {"group_size": 8, "residual_length": 0}


GRID_EVICT = "evict-snapkv-b40-w4"
GRID_VTOK = "vtok-fastv-k2-r50"


def default_grid() -> list[Setting]:
    """FP16 plus KV {8,4,2} x {uniform, group, outlier}, weights {8,4} x every weight method, one
    KV eviction and one visual-token pruning setting.

    The eviction setting keeps 40% of the prompt's KV with SnapKV's vote from a 4-token window
    (SnapKV's 32-token default covers the embedded models' whole ~16-token prompts, so its vote would
    never run); the pruning setting is FastV's paper setting (K=2, R=50%).

    The KV group settings use G=8, R=0 rather than KIVI's paper setting G=32, R=128 (what
    ``--kv-method group`` gives): on the embedded models' ~25-token prompts, G=32/R=128 keeps every
    token in full precision and would show KIVI as free. G=8/R=0 compresses all but the newest
    partial key group, so every KV setting of the default grid stores well under its float bytes."""
    grid = [BASELINE]
    grid += [Setting(kv=KVQuantSpec(method, bits, **(GRID_KV_GROUP if method == "group" else {})))
             for bits in (8, 4, 2) for method in KV_METHODS]
    grid += [Setting(weights=WeightQuantSpec(method, bits)) for bits in (8, 4) for method in WEIGHT_METHODS]
    return grid + [Setting.from_id(GRID_EVICT), Setting.from_id(GRID_VTOK)]


def with_layers(settings: list[Setting], kv_layers: str | None = None, weight_layers: str | None = None,
                sweep: int = 0, layer_count: int | None = None) -> list[Setting]:
    """``--kv-layers`` / ``--weight-layers`` restrict every setting's KV / weight part to those layers;
    ``--lvlm-layer-sweep N`` adds, for every compressed setting, one copy per block of N layers
    (``layer_count`` decoder layers; the unrestricted setting stays, as the reference)."""
    kv_sel = LayerSelection(kv_layers) if kv_layers else None
    weight_sel = LayerSelection(weight_layers) if weight_layers else None
    out = [replace(s, weight_layers=weight_sel if _layered_weights(s.weights) else None,
                   kv_layers=None if s.kv.is_float else kv_sel) for s in settings]
    if sweep:
        if layer_count is None:
            raise ValueError("--lvlm-layer-sweep needs the model's number of decoder layers")
        for setting in list(out):
            for block in ([] if setting.is_baseline else blocks(layer_count, sweep)):
                if _layered_weights(setting.weights) or not setting.kv.is_float:
                    out.append(replace(setting, weight_layers=block if _layered_weights(setting.weights) else None,
                                       kv_layers=None if setting.kv.is_float else block))
    return list(dict.fromkeys(out))


def _layered_weights(spec: WeightQuantSpec) -> bool:
    """Whether a layer selection applies to the spec: it quantizes the language model's decoder layers."""
    return not spec.is_float and "language" in spec.targets


def with_weight_targets(settings: list[Setting], targets: str | None) -> list[Setting]:
    """``--weight-targets``: every weight spec quantizes these parts of the model (a comma list of
    language, vision, projector, or ``all``) instead of the language model alone."""
    if not targets:
        return settings
    parts = WEIGHT_TARGETS if targets.strip() == "all" else tuple(part.strip() for part in targets.split(","))
    try:
        WeightQuantSpec("rtn", 4, targets=parts)
    except ValueError as error:
        raise ValueError(f"--weight-targets {targets!r}: {error}, or 'all'") from None
    if all(setting.weights.is_float for setting in settings):
        raise ValueError(f"--weight-targets {targets!r} has no effect: no setting quantizes weights (add "
                         "--weight-bits / --weight-method)")

    def retarget(spec: WeightQuantSpec) -> WeightQuantSpec:
        return spec if spec.is_float else replace(spec, targets=parts)

    return list(dict.fromkeys(replace(s, weights=retarget(s.weights), weights_rest=retarget(s.weights_rest))
                              for s in settings))


def token_dropping(kv_evict: list[str], vtok: list[str]) -> tuple[list[EvictSpec], list[VTokSpec]]:
    """``--kv-evict`` / ``--vtok`` values as specs; the ``evict-`` / ``vtok-`` prefix is optional."""
    def spec(kind, prefix: str, text: str):
        full = text if text.startswith(prefix) else prefix + text
        try:
            return kind.from_id(full)
        except ValueError as error:
            raise ValueError(f"--{'kv-evict' if prefix == 'evict-' else 'vtok'} {text!r}: {error}") from None

    return [spec(EvictSpec, "evict-", t) for t in kv_evict], [spec(VTokSpec, "vtok-", t) for t in vtok]


def settings_from_options(kv_bits: list[int], kv_method: list[str], weight_bits: list[int],
                          weight_method: list[str], group_size: int | None = None,
                          residual_length: int | None = None, outlier_ratio: float | None = None,
                          kv_evict: list[str] = (), vtok: list[str] = ()) -> list[Setting]:
    """The grid the command line asks for (the baseline always first); ValueError on bad values.
    Each ``--kv-evict`` method runs alone and on every KV setting asked (evict, then quantize what
    stays; AdaKV alone: it does not compose); each ``--vtok`` method runs alone."""
    evictions, prunings = token_dropping(list(kv_evict), list(vtok))
    for bits in kv_bits + weight_bits:
        if bits not in ALLOWED_BITS:
            raise ValueError(f"invalid bits={bits}: allowed bits are {ALLOWED_BITS}")
    kv_methods = kv_method or (list(KV_METHODS) if kv_bits else [])
    weight_methods = weight_method or (list(WEIGHT_METHODS) if weight_bits else [])
    users = {"--group-size": (group_size, "group" in kv_methods or any(m != "rtn" for m in weight_methods),
                              "--kv-method group, or --weight-method group / awq / outlier / gptq"),
             "--residual-length": (residual_length, "group" in kv_methods, "--kv-method group"),
             "--outlier-ratio": (outlier_ratio, "outlier" in kv_methods or "outlier" in weight_methods,
                                 "--kv-method outlier or --weight-method outlier")}
    for flag, (value, used, by) in users.items():
        if value is not None and not used:
            raise ValueError(f"{flag} {value} has no effect on the chosen settings: it is used by {by}")
    if not (kv_bits or kv_method or weight_bits or weight_method or evictions or prunings):
        return default_grid()
    settings = [BASELINE]
    for method in kv_methods:
        for bits in kv_bits or [4]:
            options = {"group_size": group_size, "residual_length": residual_length} if method == "group" else {}
            if method == "outlier" and outlier_ratio is not None:
                options = {"outlier_ratio": outlier_ratio}
            settings.append(Setting(kv=KVQuantSpec(method, bits, **options)))
    for method in weight_methods:
        for bits in weight_bits or [4]:
            options = {"group_size": group_size} if method != "rtn" and group_size is not None else {}
            if method == "outlier" and outlier_ratio is not None:
                options["outlier_ratio"] = outlier_ratio
            settings.append(Setting(weights=WeightQuantSpec(method, bits, **options)))
    if kv_methods and (weight_bits or weight_method):  # both asked: also their combination
        settings += [Setting(w.weights, k.kv) for w in settings if not w.weights.is_float
                     for k in settings if not k.kv.is_float]
    kv_settings = [s.kv for s in settings if not s.kv.is_float and s.weights.is_float]
    for evict in evictions:
        settings.append(Setting(evict=evict))
        settings += [Setting(kv=kv, evict=evict) for kv in kv_settings if evict.method != "adakv"]
    settings += [Setting(vtok=spec) for spec in prunings]
    return list(dict.fromkeys(settings))
