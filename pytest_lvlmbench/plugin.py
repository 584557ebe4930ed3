"""pytest hooks of the lvlmbench plugin. Hooks stay thin; logic lives in plain modules."""

from __future__ import annotations

import platform

import pytest


def environment_summary() -> str:
    """One line naming the library versions a benchmark result depends on."""
    import torch
    import transformers

    return (f"lvlmbench: python {platform.python_version()}, torch {torch.__version__}, "
            f"transformers {transformers.__version__}")


def pytest_report_header(config: pytest.Config) -> str:
    return environment_summary()
