"""Bit-packing of integer codes along the last dimension.

2-, 4- and 8-bit codes pack 4, 2 and 1 to a byte; 3-bit codes pack 8 to 3 bytes (24 bits),
so no bits are wasted beyond padding the last group of a row. A row of ``n`` codes takes
``ceil(n * bits / 8)`` bytes (3-bit: rounded up to whole 3-byte groups). Keeping the
leading dims lets callers concatenate packed rows (tokens of a KV cache, output channels
of a weight) without repacking.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import torch

from .affine import QUANT_BITS

_LITTLE_ENDIAN = sys.byteorder == "little"
_CODES_PER_GROUP = {2: 4, 3: 8, 4: 2, 8: 1}  # codes per packing group
_BYTES_PER_GROUP = {2: 1, 3: 3, 4: 1, 8: 1}


@dataclass(frozen=True)
class PackedCodes:
    """Packed codes (uint8) and what is needed to unpack them."""

    data: torch.Tensor
    bits: int
    length: int  # codes per row before padding

    @property
    def shape(self) -> tuple[int, ...]:
        return (*self.data.shape[:-1], self.length)

    @property
    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()


@functools.lru_cache(maxsize=64)
def _steps(count: int, step: int, device: torch.device) -> torch.Tensor:
    """``arange(count) · step`` as int32 (bit shifts), made once per device: packing one token per
    decode step is many small calls."""
    return torch.arange(count, dtype=torch.int32, device=device) * step


def _check_bits(bits: int) -> None:
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in QUANT_BITS:
        raise ValueError(f"invalid bits={bits!r}: allowed packing bits are {QUANT_BITS}")


def packed_row_bytes(length: int, bits: int) -> int:
    """Bytes one packed row of ``length`` codes occupies."""
    _check_bits(bits)
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"invalid length={length!r}: must be an integer >= 0")
    groups = -(-length // _CODES_PER_GROUP[bits])
    return groups * _BYTES_PER_GROUP[bits]


def pack(codes: torch.Tensor, bits: int, *, check_range: bool = True) -> PackedCodes:
    """Pack uint8 codes (each < 2**bits) along the last dim.

    A code of ``2**bits`` or more would spill into its neighbours' bits, so it is an error
    (``check_range=False`` skips the check, for codes straight from ``quantize``)."""
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"invalid codes: expected a torch.Tensor, got {type(codes).__name__}")
    if codes.dtype != torch.uint8:
        raise ValueError(f"invalid codes dtype={codes.dtype}: pack takes uint8 codes")
    if codes.dim() == 0:
        raise ValueError("invalid codes shape=(): pack needs at least one dimension")
    length = codes.shape[-1]
    packed_row_bytes(length, bits)  # validates bits
    if check_range and bits < 8 and codes.numel() and int(codes.max()) >= 2 ** bits:
        raise ValueError(f"invalid codes: max code {int(codes.max())} does not fit in bits={bits} "
                         f"(allowed codes are 0..{2 ** bits - 1})")
    per_group = _CODES_PER_GROUP[bits]
    pad = (-length) % per_group
    if pad:
        codes = torch.nn.functional.pad(codes, (0, pad))
    groups = codes.reshape(*codes.shape[:-1], codes.shape[-1] // per_group, per_group).to(torch.int32)
    shifts = _steps(per_group, bits, codes.device)
    words = (groups << shifts).sum(dim=-1, dtype=torch.int32)  # one integer per group
    n_bytes = _BYTES_PER_GROUP[bits]
    byte_shifts = _steps(n_bytes, 8, codes.device)
    data = ((words.unsqueeze(-1) >> byte_shifts) & 0xFF).to(torch.uint8)
    return PackedCodes(data.flatten(-2), bits, length)


def unpack(packed: PackedCodes) -> torch.Tensor:
    """Inverse of :func:`pack`: uint8 codes of the original shape."""
    _check_packed(packed)
    bits, data = packed.bits, packed.data
    per_group, n_bytes = _CODES_PER_GROUP[bits], _BYTES_PER_GROUP[bits]
    if n_bytes == 1:  # 2/4/8 bits: shift whole bytes, staying in uint8
        if per_group == 1:
            return data[..., :packed.length]
        mask = 2 ** bits - 1
        codes = torch.stack([(data >> shift) & mask for shift in range(0, 8, bits)], dim=-1)
        return codes.flatten(-2)[..., :packed.length]
    byte_shifts = _steps(n_bytes, 8, data.device)
    words = (data.unflatten(-1, (data.shape[-1] // n_bytes, n_bytes)).to(torch.int32) << byte_shifts).sum(
        dim=-1, dtype=torch.int32)
    shifts = _steps(per_group, bits, data.device)
    codes = (words.unsqueeze(-1) >> shifts) & (2 ** bits - 1)
    return codes.flatten(-2)[..., :packed.length].to(torch.uint8)


def unpack_into(packed: PackedCodes, out: torch.Tensor) -> torch.Tensor:
    """``out.copy_(unpack(packed))`` with fewer passes over the codes, for the CPU decode step that
    reconstructs the whole history (``out`` a float tensor of the unpacked shape; codes < 256 are
    exact in it): the codes of a byte are spread into one int16 (4-bit) or int32 (2-bit), read as
    uint8 in order, and converted in one contiguous copy, so no uint8 code tensor is stacked and no
    strided float write is made. Other cases (3/8 bits, padded rows, big-endian machines):
    ``unpack`` then copy."""
    _check_packed(packed)
    if not isinstance(out, torch.Tensor) or not out.is_floating_point() or tuple(out.shape) != packed.shape:
        raise ValueError(f"invalid out: must be a float tensor of the unpacked shape {packed.shape}, got "
                         f"{getattr(out, 'dtype', type(out).__name__)} of shape {tuple(getattr(out, 'shape', ()))}")
    bits, data = packed.bits, packed.data
    if data.shape[-1] * _CODES_PER_GROUP[bits] != packed.length or bits in (3, 8) or not _LITTLE_ENDIAN:
        return out.copy_(unpack(packed))
    if bits == 4:   # byte + 240·high = low + 256·high: as int16 in memory, low code then high code
        pairs = data.to(torch.int16)
        return out.copy_(pairs.add_(pairs >> 4, alpha=240).view(torch.uint8))
    # 2-bit: code i of a byte moved to bits 8i..8i+1 of an int32 (shifts by 6 and 12 place codes
    # 1 and 2, then 3), the rest masked off: four uint8 in order
    quads = data.to(torch.int32)
    quads.bitwise_or_(quads << 6)
    quads.bitwise_or_(quads << 12)
    return out.copy_(quads.bitwise_and_(0x03030303).view(torch.uint8))


def _check_packed(packed: PackedCodes) -> None:
    if not isinstance(packed, PackedCodes):
        raise TypeError(f"invalid packed: expected PackedCodes (from pack), got {type(packed).__name__}")
    bits, data = packed.bits, packed.data
    row_bytes = packed_row_bytes(packed.length, bits)  # validates bits and length
    if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8 or data.dim() == 0:
        raise ValueError(f"invalid packed.data: must be a uint8 tensor with at least one dim, got "
                         f"{getattr(data, 'dtype', type(data).__name__)}")
    if data.shape[-1] != row_bytes:
        raise ValueError(f"invalid packed.data shape={tuple(data.shape)}: {packed.length} codes at bits={bits} "
                         f"take {row_bytes} bytes per row, not {data.shape[-1]}")
