"""Real storage size of tensors, packed codes, modules and caches."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def nbytes(obj: Any) -> int:
    """Bytes ``obj`` occupies: a tensor, packed codes, a module (unique parameters and
    buffers, so packed layers count their codes) or anything with an ``nbytes()`` method
    such as a quantized KV cache."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, nn.Module):
        unique = {t.data_ptr(): t for t in (*obj.parameters(), *obj.buffers())}
        return sum(nbytes(t) for t in unique.values())
    size = getattr(obj, "nbytes", None)
    if isinstance(size, int):
        return size
    if callable(size):
        return int(size())
    raise TypeError(f"nbytes does not know how to size {type(obj).__name__}")
