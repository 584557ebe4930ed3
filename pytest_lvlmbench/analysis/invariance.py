"""Invariance checks the suite runs on itself: an answer must not depend on the batch it was generated in.

Harness users lose days to scores that move with batch size or GPU count (lmms-eval#236, #482, #750):
left padding, batched kernels and a KV cache quantized per batch can all leak one sample into
another. ``--lvlm-check-invariance N`` regenerates the first N items of every (model, setting, task)
twice, bypassing the generation cache: one at a time (batch size 1) and in a shuffled order with the
run's batch size, and counts the answers that differ from the run's own.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Invariance:
    samples: int
    changed_batch_1: list[str]     # ids of the items whose answer changed when generated alone
    changed_shuffled: list[str]    # ... when generated in a shuffled batch order

    @property
    def ok(self) -> bool:
        return not (self.changed_batch_1 or self.changed_shuffled)

    def as_dict(self) -> dict:
        return {"samples": self.samples, "changed_batch_1": self.changed_batch_1,
                "changed_shuffled": self.changed_shuffled,
                "share_changed_batch_1": len(self.changed_batch_1) / self.samples if self.samples else 0.0,
                "share_changed_shuffled": len(self.changed_shuffled) / self.samples if self.samples else 0.0}

    def message(self) -> str:
        parts = [f"{len(ids)} of {self.samples} answers changed {how} (items {', '.join(ids[:5])})"
                 for how, ids in (("at batch size 1", self.changed_batch_1),
                                  ("in a shuffled batch order", self.changed_shuffled)) if ids]
        return "; ".join(parts) or f"all {self.samples} answers unchanged at batch size 1 and shuffled"


def check_invariance(generate, items, prompts, answers, batch_size: int, seed: int,
                     kinds: Sequence[bool] | None = None) -> Invariance:
    """``generate(items, prompts) -> answers`` regenerates without the cache; ``answers`` are the
    run's own for ``items``. Returns the items whose answer changed in either re-run. ``kinds``
    (e.g. whether each item has an image) keeps items of different kinds out of one batch."""
    alone = [generate([item], [prompt])[0] for item, prompt in zip(items, prompts)]
    order = random.Random(seed).sample(range(len(items)), len(items))
    groups = [order] if kinds is None else [[i for i in order if kinds[i]], [i for i in order if not kinds[i]]]
    shuffled: dict[int, str] = {}
    for group in groups:
        for begin in range(0, len(group), batch_size):
            chunk = group[begin:begin + batch_size]
            shuffled.update(zip(chunk, generate([items[i] for i in chunk], [prompts[i] for i in chunk])))
    return Invariance(len(items),
                      [str(item.id) for item, a, b in zip(items, answers, alone) if a != b],
                      [str(item.id) for i, (item, a) in enumerate(zip(items, answers)) if a != shuffled[i]])
