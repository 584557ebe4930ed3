"""bias across models and compression settings."""

from pytest_lvlmbench.suite import capability_test

test_bias = capability_test("bias")
