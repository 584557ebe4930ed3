"""Visual-token pruning: fewer image tokens reach the language model's later layers.

The image tokens of a prompt are those holding the model's image token id (each image's
embeddings replace them). A pruning method picks, per prompt, which image tokens the decoder
layers from ``VTokSpec.first_pruned_layer`` on still see; the others are removed from the hidden
states before that layer (forward pre-hooks on the decoder layers, no model code patched), so those
layers compute, attend and cache fewer tokens, and the prefill really gets cheaper. Kept tokens
keep their original positions (rotary embeddings and position ids are gathered, not renumbered),
as FastV does.

- FastV (pkunlp-icler/FastV d165972 ``src/FastV/llava-hf/.../modeling_llama.py``
  ``LlamaModel.fastv_forward``): at layer K-1, the last prompt token's attention averaged over all
  heads ranks the image tokens; the top ``round(N·(1 - R))`` stay from layer K on (text tokens always
  stay). FastV ranks batch element 0's row for the whole batch; ours ranks each prompt by its own row.
  Ties: a stable sort (the earlier token wins); FastV's ``topk`` leaves them unspecified.
- random: the same share of image tokens dropped before layer 0, chosen uniformly by a generator
  seeded per question (the generation seeds it from the prompt and the picture; the baseline
  UniPruneBench finds strong).
- pool: each ``f×f`` block of an image's square token grid (row-major, edge blocks partial) becomes
  one token, the mean of the block's input embeddings, placed at the block's first position (the
  spatial-pooling baseline VTC-Bench finds strong). It needs a square grid per image (LLaVA-1.5's
  24×24, the embedded models' 3×3); LLaVA-NeXT's anyres layout, with its newline tokens, is refused.

- VisionZip (dvlab-research/VisionZip 3151f6d ``visionzip/clip_encoder.py``
  ``CLIPVisionTower_VisionZip.forward``): in the CLIP vision tower, the CLS query's attention (summed
  over heads) of the layer that produces LLaVA's selected features (``attentions[-2]`` for
  LLaVA-1.5's feature layer -2) picks the dominant patches; the other patches, in positional order,
  give ``contextual`` evenly spaced targets (``step = max(1, |R| // contextual)``), every other patch
  joins the target whose key (averaged over heads) is most cosine-similar, and a target becomes its
  own features plus the mean of its members' (``X[t] + mean(X[members])``), all before the projector.
  The budget is ``keep_count`` image tokens, split as VisionZip's settings split theirs
  (:meth:`VTokSpec.visionzip_split`). Differences: HF LLaVA drops CLS from the features
  (``vision_feature_select_strategy='default'``), so the dominant tokens are patches only (VisionZip
  keeps CLS as one of them); kept tokens keep their grid positions (VisionZip's LLaVA-1.5 path hands
  the LLM 64 contiguous tokens; its AnyRes path restores grid order too). LLaVA (CLIP with a CLS token)
  only.

Prompts of one batch must share their length (no padding: the generation groups them); a pruned
batch keeps the same number of tokens in every prompt.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import torch

from .eviction import attention_probs, stable_top
from .scored_attention import observing_attention
from .token_spec import VTokSpec


def image_positions(input_ids: torch.Tensor, image_token: int) -> torch.Tensor:
    """``[b, N]`` positions of each prompt's image tokens; every prompt must hold the same number."""
    counts = (input_ids == image_token).sum(dim=1).tolist()
    if len(set(counts)) != 1 or not counts[0]:
        raise ValueError(f"visual-token pruning: the prompts hold {counts} image tokens (id {image_token}); it needs "
                         "at least one, and the same number in every prompt of a batch")
    return (input_ids == image_token).nonzero()[:, 1].reshape(len(counts), counts[0])


def pool_blocks(run: int, factor: int) -> list[list[int]]:
    """The ``factor×factor`` blocks of a square grid of ``run`` tokens (row-major), each a list of
    offsets in the run, the block's first (top-left) token first: a 3×3 grid pooled by 2 gives
    [[0,1,3,4], [2,5], [6,7], [8]]."""
    side = math.isqrt(run)
    if side * side != run:
        raise ValueError(f"vtok-pool{factor}: an image gives {run} tokens, not a square grid; pooling needs each "
                         "image's tokens as a square grid (LLaVA-1.5: 24x24; LLaVA-NeXT's anyres tiles are not)")
    return [[r * side + c for r in range(top, min(top + factor, side)) for c in range(left, min(left + factor, side))]
            for top in range(0, side, factor) for left in range(0, side, factor)]


def image_runs(positions: list[int]) -> list[list[int]]:
    """Consecutive positions grouped: one run per image."""
    runs: list[list[int]] = []
    for p in positions:
        if runs and p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def fastv_keep(attention: torch.Tensor, images: torch.Tensor, spec: VTokSpec) -> torch.Tensor:
    """FastV's choice: of the image positions ``images [b, N]``, the ``round(N·(1 - R))`` most attended by
    the last prompt token (``attention [b, L]``, its row averaged over heads), in positional order."""
    top = stable_top(attention.gather(1, images), spec.keep_count(images.shape[1]))
    return images.gather(1, top)


def visionzip_choice(cls_attention: torch.Tensor, keys: torch.Tensor, dominant: int, contextual: int
                     ) -> tuple[torch.Tensor, list[tuple[int, list[int]]]]:
    """VisionZip for one image: ``cls_attention [N]`` (the CLS row over the patches, summed over heads),
    ``keys [N, d]`` (averaged over heads). Returns the dominant patches (positional order) and, per
    contextual target, (its patch, the patches merged into it). Ties: a stable sort (earlier wins)."""
    chosen = stable_top(cls_attention, dominant)
    rest = torch.ones(cls_attention.numel(), dtype=torch.bool, device=cls_attention.device)
    rest[chosen] = False
    remaining = rest.nonzero()[:, 0]
    if not contextual or not remaining.numel():
        return chosen, []
    step = max(1, remaining.numel() // contextual)
    targets = torch.arange(0, remaining.numel(), step, device=remaining.device)[:contextual]
    normed = torch.nn.functional.normalize(keys[remaining].float(), dim=-1)
    others = torch.ones(remaining.numel(), dtype=torch.bool, device=remaining.device)
    others[targets] = False
    nearest = (normed[others] @ normed[targets].T).argmax(dim=-1).tolist()   # first maximum on ties
    members = [[] for _ in targets.tolist()]
    for patch, target in zip(remaining[others].tolist(), nearest):
        members[target].append(patch)
    return chosen, [(int(remaining[t]), group) for t, group in zip(targets.tolist(), members)]


def random_keep(images: torch.Tensor, spec: VTokSpec, seeds: list[int]) -> torch.Tensor:
    """``[b, k]`` image positions kept at random, each row by its own seed (the generation seeds it from
    the question's prompt and picture, so a choice never depends on its batch mates), in positional order."""
    rows = []
    for seed, row in zip(seeds, images):
        generator = torch.Generator().manual_seed(seed)
        pick = torch.randperm(row.numel(), generator=generator)[:spec.keep_count(row.numel())]
        rows.append(row[pick.to(row.device)].sort().values)
    return torch.stack(rows)


class VisualTokenPruner:
    """For one generate call: which prompt positions the pruned layers see, and the hooks that apply it."""

    def __init__(self, spec: VTokSpec, input_ids: torch.Tensor, image_token: int, seeds: list[int] | None = None) -> None:
        self.spec = spec
        self.length = input_ids.shape[1]
        self.images = image_positions(input_ids, image_token)
        self.owner: torch.Tensor | None = None    # pool: [b, L] the position each token is averaged into
        self.kept: torch.Tensor | None = None     # [b, L'] positions the pruned layers see
        if spec.method == "random":
            self._keep_images(random_keep(self.images, spec, seeds or [0] * len(input_ids)))
        elif spec.method == "visionzip" and len(image_runs(self.images[0].tolist())) != 1:
            raise ValueError(f"{spec.id}: VisionZip takes one image per prompt (one run of image tokens)")
        elif spec.method == "pool":
            blocks = [[[run[i] for i in block] for run in image_runs(row) for block in pool_blocks(len(run), spec.pool)]
                      for row in self.images.tolist()]
            owner = torch.arange(self.length).repeat(len(blocks), 1)
            for row, row_blocks in enumerate(blocks):
                for block in row_blocks:
                    owner[row, block] = block[0]
            self.owner = owner.to(input_ids.device)
            self._keep_images(torch.tensor([[block[0] for block in row] for row in blocks], device=input_ids.device))

    def _keep_images(self, images: torch.Tensor) -> None:
        text = torch.ones(self.images.shape[0], self.length, dtype=torch.bool, device=images.device)
        text.scatter_(1, self.images, False)
        text.scatter_(1, images, True)
        self.kept = text.nonzero()[:, 1].reshape(text.shape[0], -1)

    def visionzip(self, cls_attention: torch.Tensor, keys: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The projector's input ``features [images, N, d]`` with each contextual target merged, and the
        kept image tokens set (one image per prompt, in prompt order)."""
        dominant, contextual = self.spec.visionzip_split(features.shape[1])
        merged, kept = features.clone(), []
        for image in range(features.shape[0]):
            chosen, groups = visionzip_choice(cls_attention[image], keys[image], dominant, contextual)
            for target, group in groups:
                if group:
                    merged[image, target] = features[image, target] + features[image, group].mean(dim=0)
            kept.append(torch.cat([chosen, torch.tensor([t for t, _ in groups], dtype=torch.long,
                                                        device=chosen.device)]).sort().values)
        self._keep_images(self.images.gather(1, torch.stack(kept).to(self.images.device)))
        return merged

    def observe(self, layer: int, query: torch.Tensor, key: torch.Tensor, scaling: float) -> None:
        """FastV's ranking at layer K-1: the last query's attention, mean over heads, over the image tokens."""
        if self.spec.method != "fastv" or layer != self.spec.layer - 1 or key.shape[2] != self.length:
            return
        self._keep_images(fastv_keep(attention_probs(query, key, scaling, 1)[:, :, 0].mean(dim=1), self.images,
                                     self.spec))

    def before_layer(self, layer: int, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        """Forward pre-hook of decoder layer ``layer``: at the prefill, from the first pruned layer on,
        gather the kept tokens (pool: merge each block into its first token first)."""
        hidden = args[0] if args else kwargs["hidden_states"]
        if layer < self.spec.first_pruned_layer or hidden.shape[1] == 1 or self.kept is None:
            return None
        if hidden.shape[1] == self.length:   # the first pruned layer: the full prompt arrives
            if self.owner is not None:   # each block's mean into its first position (others are dropped below)
                index = self.owner[..., None].expand(-1, -1, hidden.shape[-1])
                sums = torch.zeros_like(hidden, dtype=torch.float32).scatter_add_(1, index, hidden.float())
                counts = torch.zeros(self.owner.shape, device=hidden.device).scatter_add_(
                    1, self.owner, torch.ones(self.owner.shape, device=hidden.device))
                hidden = (sums / counts.clamp(min=1)[..., None]).to(hidden.dtype)
            hidden = hidden.gather(1, self.kept[..., None].expand(-1, -1, hidden.shape[-1]))
        kwargs = {**kwargs, **{name: _gather_positions(kwargs[name], self.kept, self.length)
                               for name in ("position_embeddings", "position_ids", "attention_mask")
                               if kwargs.get(name) is not None}}
        return ((hidden, *args[1:]), kwargs) if args else ((), {**kwargs, "hidden_states": hidden})


def _gather_positions(value, kept: torch.Tensor, length: int):
    """The kept positions of a per-position input: rotary (cos, sin) ``[b, L, d]``, position ids
    ``[..., b, L]``, or a 4-D mask ``[b, 1, L, L]`` (rows and columns)."""
    if isinstance(value, tuple):
        return tuple(_gather_positions(v, kept, length) for v in value)
    if value.is_floating_point() and value.dim() == 3 and value.shape[1] == length:       # cos / sin
        return value.expand(kept.shape[0], -1, -1).gather(1, kept[..., None].expand(-1, -1, value.shape[-1]))
    if value.dim() == 4 and value.shape[-1] == length:                                      # attention mask
        rows = value.expand(kept.shape[0], -1, -1, -1).gather(2, kept[:, None, :, None].expand(-1, value.shape[1], -1, length))
        return rows.gather(3, kept[:, None, None, :].expand(-1, value.shape[1], kept.shape[1], -1))
    if value.shape[-1] == length:                                                             # position ids
        expanded = value.expand(*value.shape[:-2], kept.shape[0], length)
        return expanded.gather(-1, kept.expand(*value.shape[:-2], -1, -1))
    return value


@contextmanager
def pruning_visual_tokens(model, spec: VTokSpec, input_ids: torch.Tensor, image_token: int | None,
                          prefill: list | None = None, key_bias: list | None = None,
                          seeds: list[int] | None = None) -> Iterator[VisualTokenPruner]:
    """Prune the image tokens of this generate call's prompts by ``spec``; ``prefill``/``key_bias``:
    other attention observers to run alongside (KV eviction); ``seeds``: random pruning's, per prompt."""
    if image_token is None:
        raise ValueError(f"{spec.id}: the model config names no image token id (image_token_id / image_token_index)")
    if "sliding_attention" in (getattr(model.config.get_text_config(decoder=True), "layer_types", None) or ()):
        raise ValueError(f"{spec.id}: this model has sliding-window layers, whose mask counts tokens, not positions; "
                         "after pruning the two differ, so visual-token pruning is not supported for it")
    pruner = VisualTokenPruner(spec, input_ids, image_token, seeds)
    with ExitStack() as stack:
        stack.enter_context(observing_attention(model, [pruner.observe, *(prefill or [])], key_bias))
        if spec.method == "visionzip":
            _visionzip_hooks(model, pruner, stack)
        for index, layer in enumerate(model.get_decoder().layers):
            handle = layer.register_forward_pre_hook(
                lambda module, args, kwargs, index=index: pruner.before_layer(index, args, kwargs), with_kwargs=True)
            stack.callback(handle.remove)
        yield pruner


def _visionzip_hooks(model, pruner: VisualTokenPruner, stack: ExitStack) -> None:
    """Hooks on a LLaVA model's CLIP tower and projector: the CLS attention and keys of the layer that
    produces the selected features (computed from that layer's attention input with its own
    projections), then the projector's input merged by :meth:`VisualTokenPruner.visionzip`."""
    config = model.config
    inner = model.model
    tower, projector = getattr(inner, "vision_tower", None), getattr(inner, "multi_modal_projector", None)
    layer = config.vision_feature_layer if hasattr(config, "vision_feature_layer") else None
    if (config.model_type != "llava" or tower is None or projector is None or not isinstance(layer, int)
            or config.vision_feature_select_strategy != "default"):
        raise ValueError(f"{pruner.spec.id}: VisionZip needs a LLaVA model (a CLIP tower with a CLS token, one "
                         f"feature layer, CLS dropped from the features); this one is {config.model_type!r}")
    encoder_layers = (tower.vision_model if hasattr(tower, "vision_model") else tower).encoder.layers
    attention = encoder_layers[layer % (len(encoder_layers) + 1) - 1].self_attn
    seen: dict[str, torch.Tensor] = {}

    def capture(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        batch, tokens, _ = hidden.shape
        split = lambda x: x.view(batch, tokens, module.num_heads, module.head_dim).transpose(1, 2)  # noqa: E731
        query, key = split(module.q_proj(hidden)).float(), split(module.k_proj(hidden)).float()
        cls = ((query[:, :, :1] @ key.transpose(-1, -2)) * module.scale).softmax(dim=-1)[:, :, 0]   # [b, heads, T]
        seen["cls"], seen["keys"] = cls.sum(dim=1)[:, 1:], key.mean(dim=1)[:, 1:]

    def merge(module, args):
        return (pruner.visionzip(seen["cls"], seen["keys"], args[0]), *args[1:])

    for handle in (attention.register_forward_pre_hook(capture, with_kwargs=True),
                   projector.register_forward_pre_hook(merge)):
        stack.callback(handle.remove)
