"""Compression settings: one weight spec plus one KV spec, named by a single readable id."""

from __future__ import annotations

from dataclasses import dataclass

from quant import KVQuantSpec, WeightQuantSpec
from quant.layers import LayerSelection, blocks
from quant.spec import ALLOWED_BITS, KV_METHODS, WEIGHT_METHODS


@dataclass(frozen=True)
class Setting:
    """A weight spec and a KV spec, each optionally on a subset of decoder layers (``@0-7``)."""

    weights: WeightQuantSpec = WeightQuantSpec()
    kv: KVQuantSpec = KVQuantSpec()
    weight_layers: LayerSelection | None = None
    kv_layers: LayerSelection | None = None

    def __post_init__(self) -> None:
        for spec, layers, name in ((self.weights, self.weight_layers, "weight"), (self.kv, self.kv_layers, "KV")):
            if layers is not None and spec.is_float:
                raise ValueError(f"invalid {name} layers={layers.text!r}: the {name} spec compresses nothing")

    @property
    def weights_id(self) -> str:
        """The weight part's id with its layers: what a weight-quantized model copy is keyed by."""
        return self.weights.id + (f"@{self.weight_layers.text}" if self.weight_layers else "")

    @property
    def kv_id(self) -> str:
        return self.kv.id + (f"@{self.kv_layers.text}" if self.kv_layers else "")

    @property
    def id(self) -> str:
        parts = [part for part, spec in ((self.weights_id, self.weights), (self.kv_id, self.kv)) if not spec.is_float]
        return "+".join(parts) or "fp16"

    @property
    def layered(self) -> bool:
        return self.weight_layers is not None or self.kv_layers is not None

    @property
    def whole(self) -> Setting:
        """The same specs on every layer."""
        return Setting(self.weights, self.kv)

    @property
    def bits(self) -> int:
        """The bit budget: the fewest bits any part of the model is stored in (16 for fp16)."""
        return min(self.weights.bits, self.kv.bits)

    @property
    def is_baseline(self) -> bool:
        return self.weights.is_float and self.kv.is_float

    @classmethod
    def from_id(cls, text: str) -> Setting:
        weights, kv = WeightQuantSpec(), KVQuantSpec()
        weight_layers = kv_layers = None
        for part in text.split("+"):
            if part == "fp16":
                continue
            spec_id, _, selection = part.partition("@")
            layers = LayerSelection(selection) if selection else None
            if part.startswith("w"):
                weights, weight_layers = WeightQuantSpec.from_id(spec_id), layers
            else:
                kv, kv_layers = KVQuantSpec.from_id(spec_id), layers
        return cls(weights, kv, weight_layers, kv_layers)


BASELINE = Setting()


GRID_KV_GROUP = {"group_size": 8, "residual_length": 0}


def default_grid() -> list[Setting]:
    """FP16 plus KV {8,4,2} x {uniform, group, outlier} and weights {8,4} x every weight method.

    The KV group settings use G=8, R=0 rather than KIVI's paper setting G=32, R=128 (what
    ``--kv-method group`` gives): on the embedded models' ~25-token prompts, G=32/R=128 keeps every
    token in full precision and would show KIVI as free. G=8/R=0 compresses all but the newest
    partial key group, so every KV setting of the default grid stores well under its float bytes."""
    grid = [BASELINE]
    grid += [Setting(kv=KVQuantSpec(method, bits, **(GRID_KV_GROUP if method == "group" else {})))
             for bits in (8, 4, 2) for method in KV_METHODS]
    grid += [Setting(weights=WeightQuantSpec(method, bits)) for bits in (8, 4) for method in WEIGHT_METHODS]
    return grid


def with_layers(settings: list[Setting], kv_layers: str | None = None, weight_layers: str | None = None,
                sweep: int = 0, layer_count: int | None = None) -> list[Setting]:
    """``--kv-layers`` / ``--weight-layers`` restrict every setting's KV / weight part to those layers;
    ``--lvlm-layer-sweep N`` adds, for every compressed setting, one copy per block of N layers
    (``layer_count`` decoder layers; the unrestricted setting stays, as the reference)."""
    kv_sel = LayerSelection(kv_layers) if kv_layers else None
    weight_sel = LayerSelection(weight_layers) if weight_layers else None
    out = [Setting(s.weights, s.kv, None if s.weights.is_float else weight_sel, None if s.kv.is_float else kv_sel)
           for s in settings]
    if sweep:
        if layer_count is None:
            raise ValueError("--lvlm-layer-sweep needs the model's number of decoder layers")
        for setting in list(out):
            for block in ([] if setting.is_baseline else blocks(layer_count, sweep)):
                out.append(Setting(setting.weights, setting.kv, None if setting.weights.is_float else block,
                                   None if setting.kv.is_float else block))
    return list(dict.fromkeys(out))


def settings_from_options(kv_bits: list[int], kv_method: list[str], weight_bits: list[int],
                          weight_method: list[str], group_size: int | None = None,
                          residual_length: int | None = None, outlier_ratio: float | None = None) -> list[Setting]:
    """The grid the command line asks for (the baseline always first); ValueError on bad values."""
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
    if not (kv_bits or kv_method or weight_bits or weight_method):
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
    return list(dict.fromkeys(settings))
