"""Which decoder layers a spec compresses: ``0-7``, ``3``, ``0-3,8-11``, ``first4``, ``last8``.

A selection is text until it meets a model: :meth:`LayerSelection.layers` resolves it against
the model's number of decoder layers, and an index past the end is an error naming both, never a
silently smaller selection. Layers outside a selection stay in full precision.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FORMS = "'0-7', '3', '0-3,8-11', 'first4' or 'last8'"
_PART = re.compile(r"(\d+)(?:-(\d+))?|first(\d+)|last(\d+)")


@dataclass(frozen=True)
class LayerSelection:
    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text:
            raise ValueError(f"invalid layers={self.text!r}: expected {FORMS}")
        for part in self.text.split(","):
            match = _PART.fullmatch(part)
            if not match:
                raise ValueError(f"invalid layers={self.text!r}: {part!r} is not a layer range; expected {FORMS}")
            if match.group(2) is not None and int(match.group(2)) < int(match.group(1)):
                raise ValueError(f"invalid layers={self.text!r}: range {part!r} ends before it starts")
            if (match.group(3) or match.group(4) or "1") == "0" and not match.group(1):
                raise ValueError(f"invalid layers={self.text!r}: {part!r} selects no layer")

    def layers(self, count: int) -> frozenset[int]:
        """The selected indices of a model with ``count`` decoder layers."""
        chosen: set[int] = set()
        for part in self.text.split(","):
            start, end, first, last = _PART.fullmatch(part).groups()
            if first is not None or last is not None:
                n = int(first or last)
                if n > count:
                    raise ValueError(f"layers={self.text!r}: {part!r} asks for {n} layers of a {count}-layer model")
                chosen |= set(range(n)) if first is not None else set(range(count - n, count))
                continue
            low, high = int(start), int(end if end is not None else start)
            if high >= count:
                raise ValueError(f"layers={self.text!r}: layer {high} is out of range for a {count}-layer model "
                                 f"(layers 0-{count - 1})")
            chosen |= set(range(low, high + 1))
        return frozenset(chosen)


    def others(self, count: int) -> LayerSelection | None:
        """The layers of a ``count``-layer model this selection leaves out (None: it takes them all)."""
        rest = sorted(set(range(count)) - self.layers(count))
        return LayerSelection(",".join(map(str, rest))) if rest else None


def blocks(count: int, size: int) -> list[LayerSelection]:
    """Consecutive blocks of ``size`` layers covering a ``count``-layer model (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"invalid block size={size}: must be >= 1")
    return [LayerSelection(f"{i}-{min(i + size, count) - 1}") for i in range(0, count, size)]


def layer_index(module_name: str) -> int | None:
    """Decoder layer of a dotted module name (``....layers.12.self_attn.k_proj`` -> 12), None outside."""
    match = re.search(r"(?:^|\.)layers\.(\d+)\.", module_name)
    return int(match.group(1)) if match else None


__all__ = ["FORMS", "LayerSelection", "blocks", "layer_index"]
