"""Triton helpers every kernel shares: reading packed codes and rounding like torch.

Packed rows (quant/packing.py) are a little-endian bit stream: code ``d`` of a row occupies bits
``d·b … d·b + b - 1`` (for 3 bits too: 8 codes in 3 bytes, LSB first). So code ``d`` starts in
byte ``d·b // 8`` at bit ``d·b % 8`` and, only for 3 bits, may continue into the next byte.

:class:`Specialisation` is one launchable compile-time variant of a kernel; every kernel module
launches through it from its own table of them (see the class).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
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


# Triton's pointer element types for the tensors the kernels take (bfloat16 also travels as int16 views).
POINTER_TYPES: dict[torch.dtype, str] = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32",
                                         torch.uint8: "u8", torch.int16: "i16"}
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32)  # the float dtypes every kernel launches for


@dataclass(frozen=True)
class Specialisation:
    """Every compile-time choice of one kernel launch: pointer element types, constexpr values and
    launch options (num_warps, num_stages, enable_fp_fusion; absent ones take Triton's defaults).

    Each kernel module enumerates all the specialisations its dispatch can launch in one table
    (``specialisations()``) and launches only through :meth:`launch`, which refuses one missing
    from that table. tests/test_kernels_compiled.py compiles from that same table ahead of time
    for every GPU architecture (a cover of every pair of choices; all with LVLMBENCH_COMPILE_ALL=1),
    so no launch path can bring a GPU a choice nobody compiled.
    (At launch Triton also specialises on argument values: an integer equal to 1 becomes a constant,
    multiples of 16 and 16-byte aligned pointers get divisibility hints. Those refine the same code:
    the test compiles aligned pointers and generic integers.)"""

    kernel: triton.runtime.JITFunction
    pointers: tuple[tuple[str, str], ...]  # (argument, element type), e.g. ("x_ptr", "fp16")
    constexprs: tuple[tuple[str, int | bool], ...]
    options: tuple[tuple[str, int | bool], ...] = ()

    @property
    def name(self) -> str:
        """A readable id: kernel, pointer types, constexprs, options."""
        parts = [f"{a.removesuffix('_ptr')}:{t}" for a, t in self.pointers]
        parts += [f"{k}={int(v)}" for k, v in self.constexprs + self.options]
        return f"{self.kernel.__name__}[{','.join(parts)}]"

    def signature(self) -> dict[str, str]:
        """``triton.compiler.ASTSource``'s signature: ``*type`` pointers, ``constexpr``, ``i32`` for the
        remaining (integer) arguments."""
        pointers, constexprs = dict(self.pointers), dict(self.constexprs)
        return {arg: f"*{pointers[arg]}" if arg in pointers else "constexpr" if arg in constexprs else "i32"
                for arg in self.kernel.arg_names}

    def launch(self, table: frozenset[Specialisation], grid: tuple[int, ...], *args: object) -> None:
        """Run the kernel on ``grid`` with positional runtime ``args`` (tensors and integers) and this
        specialisation's constexprs and options; ``table``: the module's specialisations."""
        if self not in table:
            raise RuntimeError(f"kernel specialisation {self.name} is not in its module's specialisations() table: "
                               "add it there, so that tests/test_kernels_compiled.py compiles it for every GPU")
        types = {arg: POINTER_TYPES.get(a.dtype) for arg, a in zip(self.kernel.arg_names, args)
                 if isinstance(a, torch.Tensor)}
        if types != dict(self.pointers):
            raise RuntimeError(f"kernel specialisation {self.name} launched with pointer types {types}")
        self.kernel[grid](*args, **dict(self.constexprs), **dict(self.options))
