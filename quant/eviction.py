"""KV eviction: which prompt entries a cache keeps after the prefill, by the reference rules.

Every method here is prefill-only, as kvpress's presses and KVCache-Factory's clusters are: the
prefill attends the whole prompt, then each layer keeps ``EvictSpec.keep_count(L)`` of its ``L``
prompt entries per KV head (the window included) and every decoded token. References, read at
these commits (notes in docs/dev/eviction-references.md):

- StreamingLLM: mit-han-lab/streaming-llm 2e50426 ``streaming_llm/kv_cache.py`` ``StartRecentKVCache``;
  kvpress (NVIDIA/kvpress 8bb29b9) ``presses/streaming_llm_press.py`` ``StreamingLLMPress.score``:
  the first ``sinks`` entries and the most recent ones; fewer kept than sinks keeps the first ones.
- H2O: KVCache-Factory (Zefan-Cai/KVCache-Factory c97f9d7) ``pyramidkv/pyramidkv_utils.py``
  ``H2OKVCluster.update_kv``: each key's causal softmax attention summed over all prompt queries,
  the top ``n - w`` of the keys before the recent window, plus the window's ``w``. (H2O's own
  ``H2OKVCache_LayerWise`` also evicts at every decode step and has no GQA; not that.)
- SnapKV: FasterDecoding/SnapKV e216ddc ``snapkv/monkeypatch/snapkv_utils.py`` ``SnapKVCluster.update_kv``:
  the last ``w`` queries' softmax attention (causal within the window) summed over them,
  ``avg_pool1d(kernel, padding=kernel//2, stride=1)`` (padding counted), top ``n - w``, plus the window.
- PyramidKV: KVCache-Factory ``PyramidKVCluster.update_kv``: SnapKV's vote, the non-window budget
  ``B = n - w`` spread linearly from ``2B - B//beta`` (layer 0) down to ``B//beta`` (last layer),
  capped at ``L - w``; prompts shorter than ``2B`` get SnapKV's ``B`` everywhere.
- AdaKV: FFY0/AdaKV efe4e2e ``adaptive_snapkv/monkeypatch/snapkv_utils.py``
  ``AdaptiveSnapKVCluster.calcul_attn_sore`` / ``update_kv_gqa``: the window's mean attention (ours
  sums, as SnapKV does: every head shares the window, so the ranking and the competition are the same),
  ``max_pool1d(kernel)``, then a layer-wide competition: the top ``Hkv·B`` entries over all heads
  give head h ``c_h`` of them, and its budget is ``round(c_h·(1 - alpha) + int(B·alpha))``.

GQA: scores are averaged over the query heads of each KV head (kvpress, KVCache-Factory's default,
AdaKV's ``gqa_func='mean'``); the references' original code stored ``repeat_kv``-inflated caches.

Deliberate differences, all documented here:
- Ties: the references call ``torch.topk``, whose order among equal scores is unspecified (it
  differs by device). Ours is a stable descending sort, so of equal scores the earlier token wins,
  and the kept entries are stored in positional order (the references store score order; attention
  over a set is order-free, so only ties can change an answer).
- Budgets are a share of each prompt (kvpress), not the references' absolute capacities, and a
  prompt is always compressed (the originals skip prompts shorter than their capacity).
- A window longer than the budget is cut to the budget (the most recent ``n`` entries).
- AdaKV's heads keep different numbers of entries; this cache stores each head padded to the
  layer's largest budget (the pad slots repeat the newest prompt entry and are masked out of
  attention by a key bias). Its bytes leave the pad slots out, as the reference's flattened varlen
  layout (``flash_attn_varlen``) stores none; that count is exact for a float cache only, so AdaKV
  does not compose with KV quantization here (the other four methods do).

Composition with quantization: evict, then quantize what stays. The prefill attention of an
evicting layer reads the float prompt (that is what its scores see); the kept entries are then
compressed by the layer's KV spec, and decode steps read them as any quantized cache.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .token_spec import EvictSpec


def stable_top(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Positions of the ``count`` largest scores along the last dim, in positional order; of equal
    scores the earlier position wins (the references' topk leaves ties unspecified)."""
    best = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :count]
    return best.sort(dim=-1).values


def group_mean(scores: torch.Tensor, kv_heads: int) -> torch.Tensor:
    """``[b, H, ...]`` scores of the query heads -> ``[b, Hkv, ...]``, the mean over each KV head's group."""
    batch, heads = scores.shape[:2]
    return scores.reshape(batch, kv_heads, heads // kv_heads, *scores.shape[2:]).mean(dim=2)


def attention_probs(query: torch.Tensor, key: torch.Tensor, scaling: float, rows: int) -> torch.Tensor:
    """The causal softmax attention (fp32) of the last ``rows`` queries over every key,
    ``[b, H, rows, L]``; keys are repeated over the query heads of their group (``repeat_kv``)."""
    q = query[:, :, -rows:].float()
    k = key.float().repeat_interleave(query.shape[1] // key.shape[1], dim=1)
    logits = q @ k.transpose(-1, -2) * scaling
    length = key.shape[2]
    position = torch.arange(length - rows, length, device=key.device)[:, None]
    logits = logits.masked_fill(torch.arange(length, device=key.device)[None, :] > position, float("-inf"))
    return logits.softmax(dim=-1)


def pool(scores: torch.Tensor, kernel: int, mode: str) -> torch.Tensor:
    """SnapKV's smoothing along tokens: ``avg_pool1d`` (padding counted, always / kernel) or AdaKV's
    ``max_pool1d``, stride 1, padding ``kernel // 2``."""
    shape = scores.shape
    flat = scores.reshape(-1, 1, shape[-1])
    if mode == "avg":
        out = F.avg_pool1d(flat, kernel, stride=1, padding=kernel // 2, count_include_pad=True)
    else:
        out = F.max_pool1d(flat, kernel, stride=1, padding=kernel // 2)
    return out.reshape(shape)


def streaming_keep(length: int, kept: int, sinks: int) -> torch.Tensor:
    """StreamingLLM: the first ``sinks`` positions and the last ``kept - sinks`` (kvpress zeroes the
    scores right after the sinks): ``L=16, kept=8, sinks=4`` keeps 0-3 and 12-15."""
    sinks = min(sinks, kept)
    return torch.cat([torch.arange(sinks), torch.arange(length - (kept - sinks), length)])


def window_vote(query: torch.Tensor, key: torch.Tensor, scaling: float, window: int, kv_heads: int) -> torch.Tensor:
    """SnapKV's vote: the window's attention to each key before it, summed over the ``window``
    queries, averaged over each KV head's query heads: ``[b, Hkv, L - window]``."""
    probs = attention_probs(query, key, scaling, window)[..., :key.shape[2] - window]
    return group_mean(probs.sum(dim=2), kv_heads)


H2O_QUERY_CHUNK = 256   # query rows per step of H2O's column sums: memory b·H·256·L, not b·H·L·L


def h2o_scores(query: torch.Tensor, key: torch.Tensor, scaling: float, window: int, kv_heads: int) -> torch.Tensor:
    """H2O (KVCache-Factory ``H2OKVCluster``): every prompt query's causal attention to each key
    before the recent window, summed: ``[b, Hkv, L - window]``. The reference builds the whole
    ``(b, H, L, L)`` matrix; here the sums go over chunks of query rows (the same numbers)."""
    length = key.shape[2]
    total = torch.zeros(*query.shape[:2], length, device=key.device)
    for end in range(length, 0, -H2O_QUERY_CHUNK):   # rows end - chunk .. end - 1 see keys 0 .. end - 1
        rows = min(H2O_QUERY_CHUNK, end)
        total[..., :end] += attention_probs(query[:, :, :end], key[:, :, :end], scaling, rows).sum(dim=2)
    return group_mean(total[..., :length - window], kv_heads)


def pyramid_budget(length: int, kept: int, window: int, layer: int, layers: int, beta: int) -> int:
    """PyramidKV's non-window entries at ``layer`` (KVCache-Factory, integer arithmetic): with
    ``B = kept - window``, from ``2B - B//beta`` at layer 0 down by ``(max - min) // (layers - 1)``
    per layer; 4 layers, ``L=100, kept=40, w=8, beta=20`` give 63, 43, 23, 3."""
    budget = kept - window
    if length < 2 * budget or layers == 1:
        return budget
    low = budget // beta
    high = 2 * budget - low
    if high >= length - window:
        high = length - window
        low = 2 * budget - high
    return high - layer * ((high - low) // (layers - 1))


def adakv_budgets(scores: torch.Tensor, budget: int, alpha: int) -> list[list[int]]:
    """AdaKV's per-head budgets for one layer: ``scores [b, Hkv, n]`` (pooled), ``budget`` the
    per-head average ``B``; the top ``Hkv·B`` of all heads' scores give head h ``c_h`` and its budget
    is ``round(c_h·(1 - alpha) + int(B·alpha))`` (alpha in percent; Python's round). Two heads
    ``[.40,.30,.10,.08,.07,.05]`` and ``[.20,.18,.17,.16,.15,.14]`` with B=4, alpha=50: c = (2, 6),
    budgets (3, 5)."""
    batch, heads, tokens = scores.shape
    floor = budget * alpha // 100
    top = stable_top(scores.reshape(batch, heads * tokens), heads * budget)
    counts = torch.stack([(top // tokens == h).sum(dim=-1) for h in range(heads)], dim=-1)
    return [[min(round(c * (100 - alpha) / 100 + floor), tokens) for c in row] for row in counts.tolist()]


def observation_window(spec: EvictSpec, length: int) -> tuple[int, int]:
    """(entries kept, window) of a ``length``-token prompt: the window is cut to the budget."""
    kept = spec.keep_count(length)
    return kept, (0 if spec.method == "streaming" else min(spec.window, kept))


def prompt_scores(spec: EvictSpec, query: torch.Tensor, key: torch.Tensor, scaling: float) -> torch.Tensor | None:
    """Each KV head's score of every prompt entry before the window, ``[b, Hkv, L - w]`` (pooled where
    the method pools); None for StreamingLLM, which scores nothing. ``query [b, H, L, D]`` and
    ``key [b, Hkv, L, D]`` are the prefill's, after rotary embedding."""
    if spec.method == "streaming":
        return None
    _, window = observation_window(spec, key.shape[2])
    kv_heads = key.shape[1]
    if spec.method == "h2o":
        return h2o_scores(query, key, scaling, window, kv_heads)
    return pool(window_vote(query, key, scaling, window, kv_heads), spec.kernel, "max" if spec.method == "adakv" else "avg")


def keep_from_scores(spec: EvictSpec, scores: torch.Tensor | None, length: int, layer: int = 0, layers: int = 1,
                     batch: int = 1, kv_heads: int = 1) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The rule that turns scores into the kept prompt positions, ``[b, Hkv, n]`` in positional order,
    and (AdaKV, whose heads keep different counts) a ``[b, Hkv, n]`` mask of the real entries, else None.
    ``scores``: :func:`prompt_scores`'s (``batch``/``kv_heads`` only size StreamingLLM's answer)."""
    kept, window = observation_window(spec, length)
    if scores is None:
        return streaming_keep(length, kept, spec.sinks).expand(batch, kv_heads, -1), None
    device = scores.device
    recent = torch.arange(length - window, length, device=device).expand(*scores.shape[:2], -1)
    if spec.method == "adakv":
        budgets = adakv_budgets(scores, kept - window, spec.alpha)
        widest = max(max(row) for row in budgets)
        order = torch.sort(scores, dim=-1, descending=True, stable=True).indices[..., :widest]
        real = torch.arange(widest, device=device) < torch.tensor(budgets, device=device)[..., None]
        positions = torch.where(real, order, length).sort(dim=-1).values   # real entries first, by position
        positions = torch.where(real, positions, length - 1)   # pad slots repeat the last (a window entry)
        return torch.cat([positions, recent], dim=-1), torch.cat([real, torch.ones_like(recent, dtype=torch.bool)], -1)
    count = kept - window
    if spec.method == "pyramidkv":
        count = pyramid_budget(length, kept, window, layer, layers, spec.beta)
    return torch.cat([stable_top(scores, count), recent], dim=-1), None


def select_kept(spec: EvictSpec, query: torch.Tensor, key: torch.Tensor, scaling: float, layer: int,
                layers: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The prompt positions a layer keeps after its prefill (see :func:`keep_from_scores`)."""
    batch, kv_heads, length = key.shape[:3]
    positions, valid = keep_from_scores(spec, prompt_scores(spec, query, key, scaling), length, layer, layers,
                                        batch, kv_heads)
    return positions.to(key.device), valid
