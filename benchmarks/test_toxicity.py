"""toxicity across models and compression settings."""

from pytest_lvlmbench.suite import capability_test

test_toxicity = capability_test("toxicity")
