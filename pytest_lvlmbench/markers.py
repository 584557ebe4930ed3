"""The marks the suite's tests carry: a mark per capability and per kind of compression, and
xdist's ``xdist_group``. Dependency-free, so registering them costs a project without the suite
nothing, and ``--strict-markers`` accepts them with or without pytest-xdist."""

from __future__ import annotations

from .core.capabilities import CAPABILITIES

KIND_MARKERS = {"baseline": "the uncompressed baseline", "kv_quant": "settings that quantize the KV cache",
                "weight_quant": "settings that quantize weights", "kv_evict": "settings that evict KV entries",
                "vtok_prune": "settings that prune visual tokens"}
XDIST_GROUP = "xdist_group(name): pytest-xdist's --dist loadgroup keeps a group on one worker (a no-op without xdist)"


def marker_lines(with_xdist: bool) -> list[str]:
    """The ``markers`` ini lines to add; xdist's own line when it is not installed."""
    lines = [f"{name}: lvlmbench tests of the {name} capability" for name in CAPABILITIES]
    lines += [f"{name}: lvlmbench {text}" for name, text in KIND_MARKERS.items()]
    return lines + ([] if with_xdist else [XDIST_GROUP])
