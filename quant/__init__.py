"""Compression library for LVLMs: affine quantization, bit-packing, quantized weights and KV caches."""

from .affine import NonFiniteError, QParams, block_size_for, choose_qparams, dequantize, quantize
from .kvcache import QuantizedKVCache, QuantizedKVLayer
from .memory import nbytes
from .packed_attention import enable_packed_attention
from .packing import PackedCodes, pack, unpack
from .spec import KVQuantSpec, WeightQuantSpec
from .weights import QuantizationSummary, QuantizedLinear, quantize_model

__all__ = [
    "KVQuantSpec", "WeightQuantSpec", "NonFiniteError", "QParams", "block_size_for", "choose_qparams", "quantize",
    "dequantize", "PackedCodes", "pack", "unpack", "nbytes", "QuantizedLinear", "QuantizationSummary",
    "quantize_model", "QuantizedKVCache", "QuantizedKVLayer", "enable_packed_attention",
]
