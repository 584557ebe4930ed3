"""recognition across models and compression settings."""

from pytest_lvlmbench.suite import capability_test

test_recognition = capability_test("recognition")
