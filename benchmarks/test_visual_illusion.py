"""visual illusion across models and compression settings."""

from pytest_lvlmbench.suite import capability_test

test_visual_illusion = capability_test("visual_illusion")
