import itertools
import math

import pytest
import torch

from quant import pack, unpack
from quant.packing import PackedCodes, packed_row_bytes, unpack_into


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_every_code_at_every_position_round_trips(bits):
    # Every value in every slot of a packing group (and across a group boundary).
    values = torch.arange(2 ** bits, dtype=torch.uint8)
    codes = torch.stack([torch.roll(values.repeat(3), shift) for shift in range(9)])
    packed = pack(codes, bits)
    assert torch.equal(unpack(packed), codes)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 3, 13), (4, 1, 2, 17), (0, 9)])
def test_arbitrary_shapes_and_odd_lengths_round_trip(bits, shape):
    codes = torch.randint(0, 2 ** bits, shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    packed = pack(codes, bits)
    assert packed.shape == shape
    assert torch.equal(unpack(packed), codes)


@pytest.mark.parametrize("bits, length", list(itertools.product([2, 3, 4, 8], [1, 2, 3, 7, 8, 9, 64, 127, 1000])))
def test_packed_size_is_the_bit_count_up_to_group_padding(bits, length):
    packed = pack(torch.zeros(5, length, dtype=torch.uint8), bits)
    exact = math.ceil(length * bits / 8)
    padding = 2 if bits == 3 else 0  # 3-bit codes pack 8 to 3 bytes
    assert exact <= packed_row_bytes(length, bits) <= exact + padding
    assert packed.nbytes == 5 * packed_row_bytes(length, bits)
    assert packed.data.dtype == torch.uint8


def test_packed_rows_concatenate_along_leading_dims():
    a = torch.randint(0, 8, (2, 11), dtype=torch.uint8)
    b = torch.randint(0, 8, (3, 11), dtype=torch.uint8)
    joined = torch.cat([pack(a, 3).data, pack(b, 3).data])
    assert torch.equal(unpack(type(pack(a, 3))(joined, 3, 11)), torch.cat([a, b]))


def test_bad_input_is_rejected_by_name():
    with pytest.raises(ValueError, match=r"bits=5.*allowed packing bits are \(2, 3, 4, 8\)"):
        pack(torch.zeros(4, dtype=torch.uint8), 5)
    with pytest.raises(ValueError, match=r"dtype=torch.int64.*uint8"):
        pack(torch.zeros(4, dtype=torch.int64), 4)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("length", [64, 63, 8, 7])
def test_unpack_into_writes_the_codes_as_floats(bits, length):
    """The decode path's unpack: the same codes as unpack, also from a prefix view of a longer
    buffer (a cache segment's spare room behind its tokens), also into a slice of a larger tensor."""
    gen = torch.Generator().manual_seed(bits * 100 + length)
    codes = torch.randint(0, 2 ** bits, (2, 3, 9, length), dtype=torch.uint8, generator=gen)
    packed = pack(codes, bits)
    prefix = PackedCodes(packed.data[:, :, :5], bits, length)
    whole = torch.full((2, 3, 7, length), -1.0)
    assert torch.equal(unpack_into(prefix, whole[:, :, 1:6]), codes[:, :, :5].float())
    assert torch.equal(whole[:, :, 0], torch.full((2, 3, length), -1.0))   # nothing outside the slice


def test_unpack_into_names_a_wrong_target():
    packed = pack(torch.zeros(2, 8, dtype=torch.uint8), 4)
    with pytest.raises(ValueError, match=r"invalid out: must be a float tensor of the unpacked shape \(2, 8\), "
                                         r"got torch.int64 of shape \(2, 8\)"):
        unpack_into(packed, torch.zeros(2, 8, dtype=torch.long))
    with pytest.raises(ValueError, match=r"got torch.float32 of shape \(2, 7\)"):
        unpack_into(packed, torch.zeros(2, 7))
