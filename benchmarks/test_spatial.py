"""spatial across models and compression settings."""

from pytest_lvlmbench.suite import capability_test

test_spatial = capability_test("spatial")
