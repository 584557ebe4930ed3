"""What every capability module of benchmarks/ is made of: one parametrized test per capability."""

from __future__ import annotations

import pytest

from .tasks import tasks_for


def capability_test(capability: str):
    """A test over this capability's tasks, marked with the capability's name; the plugin adds the
    model x setting parametrization (and the marks baseline, kv_quant, weight_quant,
    kv_evict, vtok_prune)."""
    @getattr(pytest.mark, capability)
    @pytest.mark.parametrize("task", tasks_for(capability), ids=str)
    def test(lvlm_run, task) -> None:
        lvlm_run(task)

    test.__name__ = f"test_{capability}"
    return test
