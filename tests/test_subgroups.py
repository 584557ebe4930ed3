"""Flips by counterfactual subgroup (pytest_lvlmbench/analysis/subgroups.py)."""

from dataclasses import dataclass, field

import pytest

from pytest_lvlmbench.analysis.subgroups import describe, subgroup_flips


@dataclass
class Item:
    id: str
    references: tuple
    meta: dict = field(default_factory=dict)


def test_flips_are_counted_per_attribute_value_with_mcnemar_and_the_worst_examples():
    items = [Item(f"i{k}", ("doctor",), {"shirt": "orange" if k < 10 else "purple", "hat": "hat" if k % 2 else "no"})
             for k in range(20)]
    base = ["doctor"] * 20
    answers = ["chef"] * 8 + ["doctor"] * 12          # 8 orange items broke, purple untouched
    entries = {(e["attribute"], e["value"]): e for e in subgroup_flips(items, base, answers, ("shirt", "hat"))}
    orange, purple = entries[("shirt", "orange")], entries[("shirt", "purple")]
    assert (orange["items"], orange["changed"], orange["right_to_wrong"], orange["wrong_to_right"]) == (10, 8, 8, 0)
    assert orange["p"] == pytest.approx(2 / 2 ** 8)    # exact McNemar: 8 discordant pairs, all one way
    assert purple["changed"] == 0 and purple["p"] == 1.0
    assert [e["id"] for e in orange["examples"]] == ["i0", "i1", "i2", "i3", "i4"]
    assert orange["examples"][0] == {"id": "i0", "fp16": "doctor", "answer": "chef"}
    assert entries[("hat", "hat")]["changed"] == 4 and entries[("hat", "no")]["changed"] == 4
    assert describe(list(entries.values())).startswith("shirt=orange 8/10 changed (8↓ 0↑, p 0.0078)")


def test_open_ended_answers_count_changes_only():
    items = [Item(f"s{k}", (), {"a1": "race-a" if k < 2 else "race-b"}) for k in range(4)]
    [a, b] = subgroup_flips(items, ["kind", "tall", "kind", "tall"], ["kind", "lazy", "kind", "tall"], ("a1",))
    assert (a["value"], a["changed"], a["right_to_wrong"], a["p"]) == ("race-a", 1, None, None)
    assert b["changed"] == 0 and describe([a, b]) == "a1=race-a 1/2 changed"
