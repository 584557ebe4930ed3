"""An attention implementation that lets token-dropping methods see the prefill's queries.

Eviction scores (SnapKV's window vote, H2O's column sums) and FastV's ranking need attention
probabilities, which transformers' cache ``update`` never receives (it gets keys and values only).
kvpress recomputes the queries in forward hooks on the attention modules; ours is the
attention function itself (transformers' ``AttentionInterface``): while :func:`observing_attention`
is active, the language model's attention calls go through :func:`scored_attention`, which runs
the model's own implementation (SDPA, or the packed decode attention) and then hands the prefill's
post-rotary ``query`` and ``key`` to the observer of that layer. At decode steps an observer may
add a key bias (AdaKV's padded heads). The vision tower and any call outside the context are
untouched; no model code is patched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

SCORED_ATTENTION = "lvlmbench_scored"

# observer(layer_idx, query [b,H,L,D], key [b,Hkv,L,D], scaling) at each prefill attention call
PrefillObserver = Callable[[int, torch.Tensor, torch.Tensor, float], None]
# key_bias(layer_idx, key) -> additive [b, Hkv, kv] bias (0 / -inf) or None, at decode steps
KeyBias = Callable[[int, torch.Tensor], torch.Tensor | None]


@dataclass
class Observers:
    """What one generate call watches: prefill observers and decode key biases, by decoder layer."""

    layers: dict[int, int] = field(default_factory=dict)    # id(attention module) -> decoder layer index
    prefill: list[PrefillObserver] = field(default_factory=list)
    key_bias: list[KeyBias] = field(default_factory=list)
    delegate: Callable = sdpa_attention_forward


_active: ContextVar[Observers | None] = ContextVar("lvlmbench_scored_attention", default=None)


def decoder_attention_modules(model) -> dict[int, int]:
    """id of each language-model attention module -> its decoder layer index."""
    return {id(layer.self_attn): index for index, layer in enumerate(model.get_decoder().layers)}


@contextmanager
def observing_attention(model, prefill: list[PrefillObserver], key_bias: list[KeyBias] | None = None) -> Iterator[None]:
    """Route the language model's attention through :func:`scored_attention` for the duration."""
    AttentionInterface.register(SCORED_ATTENTION, scored_attention)
    AttentionMaskInterface.register(SCORED_ATTENTION, sdpa_mask)
    from .packed_attention import PACKED_ATTENTION

    config = model.get_decoder().config
    previous = config._attn_implementation
    if previous not in ("sdpa", PACKED_ATTENTION):   # both build SDPA's masks, which the scored attention keeps
        raise ValueError("KV eviction and visual-token pruning run on SDPA attention (or quant's packed decode "
                         f"attention, which uses SDPA's masks); this model runs attn_implementation={previous!r}: "
                         "load it with attn_implementation='sdpa'")
    delegate = ALL_ATTENTION_FUNCTIONS[previous]
    token = _active.set(Observers(decoder_attention_modules(model), prefill, key_bias or [], delegate))
    config._attn_implementation = SCORED_ATTENTION
    try:
        yield
    finally:
        config._attn_implementation = previous
        _active.reset(token)


def scored_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs):
    state = _active.get()
    layer = None if state is None else state.layers.get(id(module))
    delegate = sdpa_attention_forward if state is None else state.delegate
    if scaling is None:
        scaling = query.shape[-1] ** -0.5
    if layer is not None and query.shape[2] == 1:
        if attention_mask is not None and attention_mask.shape[-1] != key.shape[-2]:
            # layers keep different numbers of entries after dropping: a decode mask sized for another
            # layer's cache would pick the wrong columns (the generation runs these batches unpadded,
            # so SDPA needs no decode mask at all)
            raise ValueError(f"decoder layer {layer}: a decode attention mask over {attention_mask.shape[-1]} keys "
                             f"for a cache of {key.shape[-2]} entries; run batches with token dropping unpadded")
        biases = [b for b in (bias(layer, key) for bias in state.key_bias) if b is not None]
        if biases:
            attention_mask = _with_bias(attention_mask, sum(biases).to(query.dtype), query.shape[1])
    output = delegate(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    if layer is not None and query.shape[2] > 1:
        for observe in state.prefill:
            observe(layer, query, key, scaling)
    return output


def _with_bias(attention_mask: torch.Tensor | None, bias: torch.Tensor, heads: int) -> torch.Tensor:
    """The decode mask plus a per-KV-head key bias ``[b, Hkv, kv]``, as one float ``[b, H, 1, kv]`` mask."""
    full = bias.repeat_interleave(heads // bias.shape[1], dim=1)[:, :, None, :]
    if attention_mask is None:
        return full
    if attention_mask.dtype == torch.bool:
        attention_mask = torch.zeros_like(attention_mask, dtype=full.dtype).masked_fill(~attention_mask, float("-inf"))
    return attention_mask.to(full.dtype) + full
