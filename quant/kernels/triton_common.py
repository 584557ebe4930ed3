"""Triton helpers every kernel shares: reading packed codes and rounding like torch.

Packed rows (quant/packing.py) are a little-endian bit stream: code ``d`` of a row occupies bits
``d·b … d·b + b - 1`` (for 3 bits too: 8 codes in 3 bytes, LSB first). So code ``d`` starts in
byte ``d·b // 8`` at bit ``d·b % 8`` and, only for 3 bits, may continue into the next byte.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def round_half_even(v):
    """``torch.round``: nearest integer, ties to even (libdevice's rint is not in the interpreter)."""
    f = tl.floor(v)
    diff = v - f
    odd = (f - 2.0 * tl.floor(f * 0.5)) != 0
    return tl.where(diff > 0.5, f + 1.0, tl.where(diff < 0.5, f, tl.where(odd, f + 1.0, f)))


@triton.jit
def load_codes(row_ptr, d, row_bytes, mask, BITS: tl.constexpr):
    """int32 codes at positions ``d`` of packed rows starting at ``row_ptr`` (uint8 pointers,
    broadcastable with ``d``); ``row_bytes``: bytes per packed row; masked lanes read 0."""
    bit = d * BITS
    byte = bit // 8
    word = tl.load(row_ptr + byte, mask=mask, other=0).to(tl.int32)
    if BITS == 3:
        nxt = tl.load(row_ptr + byte + 1, mask=mask & (byte + 1 < row_bytes), other=0).to(tl.int32)
        word = word | (nxt << 8)
    return (word >> (bit % 8)) & ((1 << BITS) - 1)


@triton.jit
def sum_over(x, axis: tl.constexpr):
    """``tl.sum`` through the builtin ``tl.reduce``. Triton's own ``@jit`` helpers (tl.sum, tl.zeros)
    are compiled-mode functions when triton was imported before ``TRITON_INTERPRET`` was set (under
    pytest, transformers imports it first), and the interpreter cannot call them; builtins and our
    own helpers work either way. ``tl.standard._sum_combine`` is the combine function tl.sum itself
    passes: the interpreter recognises it and sums with numpy (any other combine function is
    called in Python per element), and on a GPU this compiles exactly as tl.sum."""
    return tl.reduce(x, axis, tl.standard._sum_combine)
