"""hallucination across models and compression settings."""

from pytest_lvlmbench.suite import capability_test

test_hallucination = capability_test("hallucination")
