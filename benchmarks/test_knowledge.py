"""knowledge across models and compression settings."""

from pytest_lvlmbench.suite import capability_test

test_knowledge = capability_test("knowledge")
