"""stereotypes across models and compression settings."""

from pytest_lvlmbench.suite import capability_test

test_stereotypes = capability_test("stereotypes")
