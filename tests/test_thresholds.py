"""The thresholds file and the saved-run gate as plain functions (the plugin tests run them end to end)."""

import pytest

from pytest_lvlmbench.core.records import Record
from pytest_lvlmbench.thresholds import Thresholds


def record(setting, accuracy, toxicity, p=0.001):
    return Record("tiny", setting, "shapes_pope_random", "hallucination", "accuracy",
                  {"accuracy": accuracy, "toxicity_rate": toxicity, "yes_ratio": 0.5}, predictions=[],
                  p_values={} if setting == "fp16" else {"accuracy": p, "toxicity_rate": p, "yes_ratio": p})


def load(tmp_path, text):
    path = tmp_path / "lvlm_thresholds.toml"
    path.write_text(text)
    return Thresholds.load(path)


def test_drops_are_direction_aware_and_most_specific_key_wins(tmp_path):
    gates = load(tmp_path, '[max_drop.4]\n"*" = 0.05\n"shapes_pope_random.accuracy" = 0.2\ntoxicity_rate = 0.01\n')
    base = record("fp16", 0.9, 0.10)
    assert gates.breaches(record("kv4-uniform", 0.75, 0.10), base) == []            # 0.15 < 0.2 (task key)
    assert gates.breaches(record("kv4-uniform", 0.9, 0.05), base) == []             # less toxic: a gain
    [message] = gates.breaches(record("kv4-uniform", 0.9, 0.12), base)              # more toxic: a drop
    assert "toxicity_rate = 0.1200 dropped 0.0200" in message and "allowed 0.0100" in message
    assert gates.breaches(record("kv4-uniform", 0.9, 0.12, p=0.5), base) == []     # not significant
    assert gates.breaches(record("kv2-uniform", 0.1, 0.9), base) == []              # no rule at 2 bits
    assert gates.breaches(record("w4-rtn+kv8-uniform", 0.9, 0.12), base)           # budget: fewest bits


def test_a_setting_that_drops_tokens_is_gated_by_its_kind_not_by_its_bits(tmp_path):
    gates = load(tmp_path, '[max_drop.4]\n"*" = 0.5\n[max_drop.evict]\n"*" = 0.05\n[max_drop.vtok]\naccuracy = 0.1\n')
    base = record("fp16", 0.9, 0.10)
    [message] = gates.breaches(record("kv4-uniform+evict-snapkv-b40", 0.8, 0.10), base)   # 4 bits would allow it
    assert "accuracy = 0.8000 dropped 0.1000 from fp16 0.9000 with evict" in message and "[max_drop.evict]" in message
    assert gates.breaches(record("kv4-uniform", 0.8, 0.10), base) == []
    assert gates.breaches(record("vtok-pool2", 0.85, 0.10), base) == []                  # 0.05 < 0.1
    [message] = gates.breaches(record("vtok-fastv-k2-r50", 0.7, 0.10), base)
    assert "with vtok" in message and "[max_drop.vtok] 'accuracy'" in message
    assert gates.breaches(record("evict-snapkv-b40+vtok-pool2", 0.8, 0.10), base)        # both: the evict section


def test_floors_apply_globally_and_per_model(tmp_path):
    gates = load(tmp_path, '[floor]\ntoxicity_rate = 0.05\n[floor.tiny]\naccuracy = 0.95\n[floor.other]\naccuracy = 0.1\n')
    messages = gates.breaches(record("fp16", 0.9, 0.10), None)
    assert len(messages) == 2
    assert any("accuracy = 0.9000 is below the floor 0.9500" in m and "[floor.tiny]" in m for m in messages)
    assert any("toxicity_rate = 0.1000 is above the ceiling 0.0500" in m for m in messages)


def test_noninferiority_margins_come_from_the_margin_section_most_specific_first(tmp_path):
    gates = load(tmp_path, '[margin]\n"*" = 0.05\n"shapes_pope_random.accuracy" = 0.01\ntoxicity_rate = 0.03\n')
    # yes_ratio has no direction: nothing to be non-inferior on
    assert gates.margins(record("kv4-uniform", 0.9, 0.1), default=0.02) == {"accuracy": 0.01, "toxicity_rate": 0.03}
    assert Thresholds().margins(record("kv4-uniform", 0.9, 0.1), default=0.02)["accuracy"] == 0.02


@pytest.mark.parametrize("text, message", [
    ("[margin]\naccuracy = 0\n", r"\[margin\] values must be > 0"),
    ("[max_drop.four]\naccuracy = 0.1\n", r"\[max_drop.four\] is not a bit budget"),
    ("[max_drop.4]\naccuracy = 'a lot'\n", r"\[max_drop.4\] needs numbers, got \{'accuracy': 'a lot'\}"),
    ("[floor]\nbananas = 0.1\n", r"metric 'bananas' has no known direction"),
    ("[limits]\n", r"unknown entries \['limits'\]"),
    ("significance = 2\n", r"significance = 2 must be a number in \(0, 1\]"),
    ("[floor\n", r"cannot read thresholds file"),
])
def test_bad_files_name_the_bad_entry(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load(tmp_path, text)


@pytest.mark.parametrize("text, message", [
    ('[max_drop.4]\n"shapes_pope_randm.accuracy" = 0.1\n',
     "[max_drop.4] key 'shapes_pope_randm.accuracy': no registered task 'shapes_pope_randm'; registered are coco_caption, "),
    ('[floor.tiny]\n"shapes_pope_random.cider_d" = 1.0\n',
     "[floor.tiny] key 'shapes_pope_random.cider_d': task 'shapes_pope_random' has no metric 'cider_d'; its metrics are "
     "accuracy, precision, recall, f1, yes_ratio"),
    ('[floor]\nmme_score = 100\n', "[floor] key 'mme_score': no registered task has metric 'mme_score'; their directed "
     "metrics are accuracy, "),
    ("[max_drop.16]\n\"*\" = 0.1\n", "[max_drop.16] is not a bit budget; allowed are [max_drop.2], "
                                       "[max_drop.3], [max_drop.4], [max_drop.8], [max_drop.evict], [max_drop.vtok] "
                                       "(the fewest bits a setting stores weights or KV in, or the kind of token "
                                       "dropping: KV eviction, visual-token pruning)"),
    ("[max_drop.5]\n\"*\" = 0.1\n", "[max_drop.5] is not a bit budget; allowed are [max_drop.2], "),
    ("[floor]\npope_random.accuracy = 0.9\n", "[floor.pope_random] names a task, but [floor.NAME] sections are "
                                              'per model; quote task keys: "pope_random.METRIC" = ... under [floor]'),
])
def test_keys_that_could_never_fire_are_errors_naming_file_key_and_what_is_allowed(tmp_path, text, message):
    with pytest.raises(ValueError) as error:
        load(tmp_path, text)
    assert str(error.value).startswith(f"{tmp_path / 'lvlm_thresholds.toml'}: {message}")


def test_keys_of_registered_tasks_and_metrics_load(tmp_path):
    gates = load(tmp_path, '[floor.tiny]\n"shapes_captions.cider_d" = 6.0\n[max_drop.3]\nrecall = 0.1\n'
                           '[max_drop.2]\n"*" = 0.5\n')
    assert gates.max_drop == {3: {"recall": 0.1}, 2: {"*": 0.5}}


def test_the_suites_own_thresholds_file_names_only_registered_tasks_and_metrics():
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "lvlm_thresholds.toml"
    assert Thresholds.load(path).model_floor["tiny"]["shapes_captions.cider_d"] == 6.0
