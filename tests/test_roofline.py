"""The decode roofline (pytest_lvlmbench/engine/roofline.py): its arithmetic on a worked example, the
flagging rule, what counts as a decode step's weights, and the clock's step accounting."""

import pytest
import torch

from pytest_lvlmbench.engine.roofline import (FLAG_SHARE, DecodeClock, copy_bandwidth, decode_weight_bytes,
                                              roofline)
from tiny_models import llama_config


def test_worked_example():
    # 3 decode steps over 15 ms; weights 4 MB per step; the KV read was 0.5, 1.0 and 1.5 MB (3 MB in all)
    line = roofline(weight_bytes=4_000_000, kv_byte_steps=3_000_000, steps=3, seconds=0.015, copy_gbps=4.0)
    assert line["kv_bytes_per_step"] == 1_000_000            # 3 MB / 3 steps
    assert line["bytes_per_step"] == 5_000_000               # 4 MB weights + 1 MB KV
    assert line["achieved_gbps"] == pytest.approx(1.0)       # 5 MB x 3 / 15 ms = 1 GB/s
    assert line["share_of_copy"] == pytest.approx(0.25)      # 1 / 4 GB/s
    assert line["flagged"] is False
    assert line["decode_steps"] == 3 and line["decode_seconds"] == 0.015 and line["copy_gbps"] == 4.0


def test_a_speed_above_what_the_bytes_allow_is_flagged():
    # the same bytes in 0.3 ms: 50 GB/s from a 4 GB/s memory
    fast = roofline(4_000_000, 3_000_000, 3, 0.0003, copy_gbps=4.0)
    assert fast["share_of_copy"] == pytest.approx(12.5) and fast["flagged"] is True
    # exactly the copy bandwidth is possible, not flagged; a hair above is
    at_copy = roofline(4_000_000, 3_000_000, 3, 0.015, copy_gbps=1.0)
    assert at_copy["share_of_copy"] == pytest.approx(FLAG_SHARE) and at_copy["flagged"] is False
    assert roofline(4_000_000, 3_000_000, 3, 0.015, copy_gbps=0.999)["flagged"] is True


def test_no_timed_step_gives_no_line():
    assert roofline(4_000_000, 0, 0, 0.0, copy_gbps=4.0) is None     # every answer from the cache
    assert roofline(4_000_000, 0, 0, 0.2, copy_gbps=4.0) is None     # answers ended at their first token


def test_the_clock_counts_steps_between_logits_calls_and_kv_bytes_per_step():
    clock = DecodeClock()
    scores = torch.zeros(2, 5)
    clock.begin()
    for _ in range(4):   # prefill's token, then 3 decode steps
        assert clock(torch.zeros(2, 1, dtype=torch.long), scores) is scores
    clock.end(kv_bytes=100)
    clock.begin()
    clock(torch.zeros(2, 1, dtype=torch.long), scores)   # a batch that stopped after its first token
    clock.end(kv_bytes=1_000)
    assert clock.steps == 3 and clock.kv_byte_steps == 300 and clock.seconds > 0


@pytest.mark.parametrize("tied", [False, True])
def test_decode_weight_bytes_leave_out_the_embedding_table_unless_the_head_reads_it(tied):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM(llama_config(tie_word_embeddings=tied))
    every = sum(p.numel() * p.element_size() for p in model.parameters())   # parameters() yields a tied table once
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    table = model.get_input_embeddings().weight
    expected = every + buffers - (0 if tied else table.numel() * table.element_size())
    assert decode_weight_bytes(model) == expected


def test_copy_bandwidth_is_measured_once_and_cheaply():
    copy_bandwidth.cache_clear()
    first = copy_bandwidth("cpu")
    assert first > 0.1   # GB/s: any machine copies faster than 100 MB/s
    assert copy_bandwidth("cpu") == first   # once per process: every record of a run shares it
