"""visual reasoning across models and compression settings."""

from pytest_lvlmbench.suite import capability_test

test_visual_reasoning = capability_test("visual_reasoning")
