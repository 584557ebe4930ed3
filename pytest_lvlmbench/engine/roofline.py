"""The memory roofline of decoding: bytes a decode step must read, the bandwidth that implies, and
how it compares with the device's measured copy bandwidth.

A decode step of a batch reads every weight the language model applies to one token (as stored:
packed for a quantized linear, float otherwise) and the whole KV cache the batch has built (as
stored). Decoding is bound by that traffic, so ``bytes per step / seconds per step`` (achieved GB/s)
over a plain device-to-device copy's GB/s (measured in the same run) says how close a setting runs to
the memory roofline. A share above 1 is a speed the bytes do not allow from the device's memory: the
bytes were undercounted, the timing is wrong, or they were served from a cache level faster than
DRAM (small models on CPU) -- so it is flagged rather than reported as a win.
"""

from __future__ import annotations

import functools
import time

import torch
from torch import nn
from transformers import LogitsProcessor

COPY_BYTES = {"cuda": 256 * 2 ** 20, "cpu": 64 * 2 ** 20}   # source buffer: far above L2 (GPU) and L3 (CPU)
COPY_REPEATS = 5   # best of: well under a second on either device
FLAG_SHARE = 1.0   # achieved / copy bandwidth above this: faster than the bytes allow


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@functools.cache
def copy_bandwidth(device: str) -> float:
    """GB/s (1e9 bytes) of ``dst.copy_(src)`` on ``device``, counting bytes read + written, best of
    :data:`COPY_REPEATS` after one warm-up: the reference a decode step's traffic is held against.
    Measured once per process and device (about 0.1 s on CPU)."""
    dev = torch.device(device)
    size = COPY_BYTES["cuda" if dev.type == "cuda" else "cpu"]
    src = torch.ones(size, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    dst.copy_(src)
    best = float("inf")
    for _ in range(COPY_REPEATS):
        _sync(dev)
        start = time.perf_counter()
        dst.copy_(src)
        _sync(dev)
        best = min(best, time.perf_counter() - start)
    return 2 * size / best / 1e9


def tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


def decode_weight_bytes(model: nn.Module) -> int:
    """Bytes of the weights one decode step reads, as stored: every parameter and buffer of the text
    decoder (a QuantizedLinear's packed codes, scales and zeros are buffers) plus the output head. The
    input embedding table is left out (a step reads one row of it) unless the head shares it; the
    vision tower and projector run only at prefill."""
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    embedding = model.get_input_embeddings().weight
    tensors: dict[int, torch.Tensor] = {}
    for module in (decoder, head):
        for tensor in (*module.parameters(), *module.buffers()):
            tensors[tensor.data_ptr()] = tensor
    head_weight = getattr(head, "weight", None)   # a quantized head stores codes, never the table
    if head_weight is None or head_weight.data_ptr() != embedding.data_ptr():
        tensors.pop(embedding.data_ptr(), None)
    return sum(tensor_bytes(t) for t in tensors.values())


class DecodeClock(LogitsProcessor):
    """Times the prefill and decode steps of ``generate`` calls, sums the KV bytes each step read,
    and averages the prompt entries each layer kept.

    ``generate`` calls a logits processor once per new token: the first call of a generation ends the
    prefill (its time since :meth:`begin` is the batch's time to first token), and each later call ends
    one decode step, so the time between consecutive calls is a decode step's (its forward pass, argmax
    and stopping checks). :meth:`begin` before a generation, :meth:`end` after it with the batch's KV
    cache bytes at its end (an upper bound on what each of its steps read: the cache grows by one token
    per step, and the prompt dominates). Scores pass through unchanged."""

    def __init__(self) -> None:
        self.steps = 0
        self.seconds = 0.0
        self.kv_byte_steps = 0   # sum over steps of the KV bytes read
        self.prompts = 0
        self.batches = 0
        self.prefill_seconds = 0.0          # sum over batches of their time to first token
        self.reference_seconds = 0.0        # ... of the same batches without token dropping (when timed)
        self.kept_sums: list[float] = []    # per layer, sum over prompts of the share of prompt entries kept
        self._previous: float | None = None
        self._start = 0.0
        self._first = 0.0
        self._batch_steps = 0

    def begin(self) -> None:
        self._previous, self._batch_steps = None, 0
        self._start = time.perf_counter()

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        _sync(scores.device)
        now = time.perf_counter()
        if self._previous is not None:
            self.seconds += now - self._previous
            self._batch_steps += 1
        else:
            self._first = now - self._start
        self._previous = now
        return scores

    def end(self, kv_bytes: int, prompts: int = 0, kept: list[float] | None = None,
            reference: DecodeClock | None = None) -> None:
        """After a batch of ``prompts``; ``kept``: per layer, the share of the prompt's entries it stored;
        ``reference``: the clock of the same batch's prefill without token dropping, timed beside it."""
        self.steps += self._batch_steps
        self.kv_byte_steps += kv_bytes * self._batch_steps
        self.prompts += prompts
        self.batches += 1 if prompts else 0
        self.prefill_seconds += self._first if prompts else 0.0
        if reference is not None:
            self.reference_seconds += reference._first
        if kept:
            self.kept_sums = [a + b * prompts for a, b in zip(self.kept_sums or [0.0] * len(kept), kept)]
        self._previous, self._batch_steps = None, 0

    def prefill(self) -> dict | None:
        """The prefill summary of the batches timed: their mean time to first token, the prefill time per
        prompt (the batches' times to first token over their prompts: comparable across settings whose
        batches differ in size, e.g. eviction's, split by prompt length) and, per layer, the mean share of
        prompt entries kept; with token dropping, ``prefill_vs_undropped``: the batches' time to first token
        over the same batches' without dropping (same model copy, KV spec and batching, timed beside
        them in the run, alternating which goes first), the prefill cost the dropping changed. None
        before any batch."""
        if not self.prompts:
            return None
        summary = {"ttft_seconds": self.prefill_seconds / self.batches, "prompts": self.prompts,
                   "batches": self.batches, "prefill_seconds_per_prompt": self.prefill_seconds / self.prompts,
                   "kept_by_layer": [round(k / self.prompts, 6) for k in self.kept_sums]}
        if self.reference_seconds:
            summary["prefill_vs_undropped"] = self.prefill_seconds / self.reference_seconds
        return summary


def roofline(weight_bytes: int, kv_byte_steps: int, steps: int, seconds: float, copy_gbps: float) -> dict | None:
    """One roofline entry: bytes per decode step (weights + mean KV read), achieved GB/s over the
    decode time, its share of the measured copy bandwidth, and ``flagged`` when that share is above
    :data:`FLAG_SHARE`. None without a timed decode step (every answer came from the cache, or every
    answer ended after its first token)."""
    if steps <= 0 or seconds <= 0:
        return None
    kv_per_step = kv_byte_steps / steps
    per_step = weight_bytes + kv_per_step
    achieved = per_step * steps / seconds / 1e9
    share = achieved / copy_gbps
    return {"weight_bytes_per_step": weight_bytes, "kv_bytes_per_step": round(kv_per_step),
            "bytes_per_step": round(per_step), "decode_steps": steps, "decode_seconds": seconds,
            "achieved_gbps": achieved, "copy_gbps": copy_gbps, "share_of_copy": share,
            "flagged": share > FLAG_SHARE}
