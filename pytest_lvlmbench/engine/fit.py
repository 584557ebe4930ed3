"""Whether a compression setting can apply to a model, decided from the checkpoint's config.json
before any test runs (a KIVI group that does not divide the head dimension, a weight group that does
not divide a linear's input width, layers past the model's depth). The rules are quant/'s own
(:meth:`quant.kvcache.QuantizedKVCache.__init__`, :func:`quant.weights.weight_block_size`,
:meth:`quant.layers.LayerSelection.layers`), stated on the config's numbers instead of on tensors."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..core.settings import Setting, with_layers

NEEDED = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads")


@dataclass(frozen=True)
class TextShape:
    """The language model's numbers that compression settings depend on."""

    layers: int
    head_dim: int
    in_features: tuple[int, ...]   # input widths of the decoder's linears: q/k/v/gate/up, o_proj, down_proj
    model_type: str = ""           # the checkpoint's top-level model_type (llava, llava_next, qwen2_vl, ...)
    windowed: bool = False         # some decoder layers attend a sliding window (Gemma 3)


# families whose image tokens are not one square grid per image (anyres tiles with newline tokens)
UNPOOLED_TYPES = ("llava_next", "llava_onevision")


def text_shape(source: str, is_local: bool) -> TextShape:
    """Read from config.json with the json module when it states every number (the embedded models,
    most local checkpoints: no torch import), else from transformers' AutoConfig with its defaults."""
    config = _config_json(source, is_local)
    text = None if config is None else config.get("text_config", config)
    model_type = "" if config is None else config.get("model_type", "")
    if text is None or any(key not in text for key in NEEDED):
        from transformers import AutoConfig

        loaded = AutoConfig.from_pretrained(source)
        text, model_type = loaded.get_text_config(decoder=True).to_dict(), loaded.model_type
    head_dim = text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]
    widths = (text["hidden_size"], text["num_attention_heads"] * head_dim, text["intermediate_size"])
    windowed = "sliding_attention" in (text.get("layer_types") or ())
    return TextShape(text["num_hidden_layers"], head_dim, tuple(sorted(set(widths))), model_type, windowed)


def _config_json(source: str, is_local: bool) -> dict | None:
    if is_local:
        path = Path(source) / "config.json"
    else:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source, "config.json")
        if not isinstance(found, str):
            return None
        path = Path(found)
    return json.loads(path.read_text())


def _divisors(width: int, largest: int) -> str:
    return ", ".join(str(g) for g in (2 ** k for k in range(1, 13)) if g <= largest and width % g == 0)


def unfit_reason(setting: Setting, shape: TextShape) -> str | None:
    """Why ``setting`` cannot apply to a model of this shape (with the fix), or None when it can."""
    for spec in (setting.kv, setting.kv_rest):
        if spec.method == "group" and not spec.is_float and shape.head_dim % spec.group_size:
            return (f"{spec.id}: KIVI's group_size={spec.group_size} must divide the model's head_dim="
                    f"{shape.head_dim} (it groups value channels); use --group-size "
                    f"{_divisors(shape.head_dim, shape.head_dim)}")
    for spec in (setting.weights, setting.weights_rest):
        if spec.group_size is not None and not spec.is_float:
            bad = [w for w in shape.in_features if w % spec.group_size]
            if bad:
                return (f"{spec.id}: group_size={spec.group_size} must divide every quantized linear's input "
                        f"width, and {bad[0]} (of {', '.join(map(str, shape.in_features))}) is not a multiple; "
                        f"use --group-size {_divisors(math.gcd(*shape.in_features), 128)}")
    vtok = setting.vtok
    if setting.evict is not None and setting.evict.method == "adakv" and not (setting.kv.is_float
                                                                           and setting.kv_rest.is_float):
        return (f"{setting.evict.id}: AdaKV's heads keep different numbers of entries, stored padded; its bytes are "
                "exact for a float cache only, so it does not compose with KV quantization (snapkv, pyramidkv, h2o "
                "and streaming do)")
    if setting.drops_tokens and shape.windowed:
        return (f"{(setting.evict or vtok).id}: the model's sliding-window layers mask by cache slot, not position; "
                "after tokens are dropped the two differ, so eviction and pruning are not supported for it")
    if vtok is not None and vtok.method == "fastv" and vtok.layer >= shape.layers:
        return (f"{vtok.id}: FastV prunes from layer K={vtok.layer} on, and the model has {shape.layers} decoder layers; "
                f"use k1..k{shape.layers - 1}")
    if vtok is not None and vtok.method == "pool" and shape.model_type in UNPOOLED_TYPES:
        return (f"{vtok.id}: {shape.model_type}'s anyres layout (tiles with newline tokens) is not one square grid of "
                "image tokens per image; pool needs one (use vtok-fastv-... or vtok-random-...)")
    if vtok is not None and vtok.method == "visionzip" and shape.model_type != "llava":
        return (f"{vtok.id}: VisionZip reads the CLS attention of LLaVA's CLIP tower; {shape.model_type or 'this model'} "
                "is not a LLaVA model (use vtok-fastv-..., vtok-random-... or vtok-pool...)")
    for selection in (setting.kv_layers, setting.weight_layers):
        if selection is not None:
            try:
                selection.layers(shape.layers)
            except ValueError as error:
                return str(error)
    return None


def sweep_settings(options, shapes: dict) -> list:
    """The grid plus, with ``--lvlm-layer-sweep N``, each compressed setting on every block of N
    layers alone (``shapes``: each model's :class:`TextShape`)."""
    if not options.layer_sweep:
        return options.settings
    depths = {name: shape.layers for name, shape in shapes.items()}
    if len(set(depths.values())) > 1:
        raise ValueError(f"--lvlm-layer-sweep: the models have different depths {depths}; sweep one at a time")
    return with_layers(options.settings, sweep=options.layer_sweep, layer_count=next(iter(depths.values())))


def fit_grid(options) -> dict[tuple[str, str], str]:
    """Check every (model, setting) of the grid against the model's config.json, before any test:
    a setting the user asked for that cannot apply is a ValueError naming setting, model and fix;
    a default-grid one is returned, (model, setting id) -> reason, for its tests to skip."""
    from .models import check_hub_model, resolve_model

    shapes = {}
    for name in options.models:
        ref = resolve_model(name)
        if not ref.is_local:
            check_hub_model(ref)
        shapes[name] = text_shape(ref.source, ref.is_local)
    options.settings = sweep_settings(options, shapes)
    unfit = {(name, setting.id): reason for name, shape in shapes.items() for setting in options.settings
             if (reason := unfit_reason(setting, shape))}
    if options.settings_asked and unfit:
        raise ValueError("settings that cannot apply: " + "; ".join(
            f"{setting} on model {name!r}: {reason}" for (name, setting), reason in unfit.items()))
    return unfit
