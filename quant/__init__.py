"""Compression library for LVLMs: affine quantization, bit-packing, quantized weights and KV caches,
KV eviction and visual-token pruning.

Names resolve on first use (PEP 562), so ``import quant.spec`` or ``quant.layers`` — all that option
parsing needs — does not import torch and transformers."""

from __future__ import annotations

import importlib

_HOMES = {
    "affine": ["NonFiniteError", "QParams", "block_size_for", "choose_qparams", "dequantize", "quantize"],
    "kvcache": ["QuantizedKVCache", "QuantizedKVLayer"],
    "memory": ["nbytes"],
    "packed_attention": ["enable_packed_attention"],
    "packing": ["PackedCodes", "pack", "unpack"],
    "spec": ["KVQuantSpec", "WeightQuantSpec"],
    "token_spec": ["EvictSpec", "VTokSpec"],
    "weights": ["QuantizationSummary", "QuantizedLinear", "quantize_model"],
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = list(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'quant' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
