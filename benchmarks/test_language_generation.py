"""language generation across models and compression settings."""

from pytest_lvlmbench.suite import capability_test

test_language_generation = capability_test("language_generation")
