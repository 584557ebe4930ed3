"""The run's state without pytest: resuming from the generation cache, GPU pinning per worker."""

from dataclasses import replace

import pytest
import torch

from quant import KVQuantSpec

from pytest_lvlmbench.core.options import Options
from pytest_lvlmbench.options import worker_device
from pytest_lvlmbench.engine.reruns import attach_invariance
from pytest_lvlmbench.engine.session import Session
from pytest_lvlmbench.core.settings import BASELINE, Setting
from pytest_lvlmbench.tasks import TASKS


def test_an_interrupted_run_resumes_without_regenerating_finished_samples(tmp_path, monkeypatch):
    options = Options(models=["tiny"], settings=[BASELINE], limit=12, batch_size=4, cache_dir=tmp_path / "cache")
    task = TASKS["shapes_pope_random"]
    generate, batches = Session.generate, []

    def interrupted_after_two_batches(self, *args):
        if len(batches) == 2:
            raise KeyboardInterrupt
        batches.append(args)
        return generate(self, *args)

    monkeypatch.setattr(Session, "generate", interrupted_after_two_batches)
    with pytest.raises(KeyboardInterrupt):
        Session(options).run("tiny", BASELINE, task)
    monkeypatch.undo()
    resumed = Session(options).run("tiny", BASELINE, task)
    assert resumed.generated == 4 and resumed.samples == 12   # 8 answers came from the cache
    fresh = Session(replace(options, cache_dir=tmp_path / "fresh")).run("tiny", BASELINE, task)
    assert fresh.generated == 12
    assert resumed.predictions == fresh.predictions and resumed.metrics == fresh.metrics


def test_settings_are_tested_against_the_baseline_with_intervals_on_every_metric(tmp_path):
    session = Session(Options(models=["tiny"], settings=[BASELINE], limit=20, cache_dir=tmp_path))
    task = TASKS["shapes_pope_random"]
    base = session.evaluate("tiny", BASELINE, task)
    record = session.evaluate("tiny", Setting.from_id("kv2-uniform"), task)
    assert session.evaluate("tiny", BASELINE, task) is base            # evaluated once
    assert set(base.intervals) == set(base.metrics) and base.p_values == {}
    assert set(record.p_values) == set(record.metrics)
    for r in (base, record):
        low, high = r.intervals["accuracy"]
        assert low <= r.metrics["accuracy"] <= high
    low, high = record.intervals["accuracy"]   # 2-bit KV gets some of 20 wrong: a wide interval
    assert record.metrics["accuracy"] < base.metrics["accuracy"] and high - low > 0.1


@pytest.mark.parametrize("device, worker, gpus, expected", [
    ("cuda", "gw0", 4, "cuda:0"), ("cuda", "gw5", 4, "cuda:1"), ("cuda", None, 4, "cuda"),
    ("cuda", "gw1", 1, "cuda"), ("cuda:2", "gw1", 4, "cuda:2"), ("cpu", "gw1", 4, "cpu"),
])
def test_each_xdist_worker_pins_its_own_gpu(device, worker, gpus, expected):
    assert worker_device(device, worker, gpus) == expected


def test_answers_do_not_depend_on_the_batch_they_were_generated_in(tmp_path):
    session = Session(Options(models=["tiny"], settings=[BASELINE], limit=12, batch_size=6, cache_dir=tmp_path))
    for setting in (BASELINE, *map(Setting.from_id, ("kv2-uniform", "kv2-outlier-s2", "kv2-group-g8-r0",
                                                     "kv4-group-g32-r128"))):
        _, result = attach_invariance(session, "tiny", setting, TASKS["shapes_vqa"], 8)
        assert result.ok and result.samples == 8, result.message()
        record = session.results.find("tiny", setting.id, "shapes_vqa")
        assert record.invariance["share_changed_batch_1"] == 0.0 and record.invariance["changed_shuffled"] == []


def test_an_answer_that_changes_with_its_batch_is_named():
    from pytest_lvlmbench.analysis.invariance import check_invariance

    items = [type("S", (), {"id": f"q{i}"})() for i in range(4)]
    # a "model" whose answer for q2 depends on whether q2 is generated alone
    generate = lambda chunk, prompts: [("alone" if len(chunk) == 1 and s.id == "q2" else "x") for s in chunk]
    result = check_invariance(generate, items, ["p"] * 4, ["x"] * 4, batch_size=2, seed=0)
    assert not result.ok and result.changed_batch_1 == ["q2"] and result.changed_shuffled == []
    assert result.message() == "1 of 4 answers changed at batch size 1 (items q2)"


def test_a_tampered_cache_entry_is_regenerated_and_counted_on_the_record(tmp_path):
    import sqlite3

    options = Options(models=["tiny"], settings=[BASELINE], limit=4, batch_size=4, cache_dir=tmp_path)
    task = TASKS["shapes_pope_random"]
    first = Session(options).run("tiny", BASELINE, task)   # a new Session per run: a run keeps its first record
    assert first.generated == 4 and first.cache_rejected == 0
    with sqlite3.connect(tmp_path / "generations.sqlite") as db:
        db.execute("UPDATE generations SET answer = 'forged' WHERE rowid IN (SELECT rowid FROM generations LIMIT 2)")
    tampered = Session(options).run("tiny", BASELINE, task)
    assert tampered.cache_rejected == 2 and tampered.generated == 2
    assert tampered.predictions == first.predictions and "forged" not in tampered.predictions
    again = Session(options).run("tiny", BASELINE, task)   # the regenerated answers replaced the forged ones
    assert again.cache_rejected == 0 and again.generated == 0


def test_token_anchored_specs_generate_per_prompt_length_without_padding():
    from pytest_lvlmbench.engine.generation import equal_length_rows, token_anchored, without_padding

    assert [token_anchored(KVQuantSpec.from_id(s)) for s in ("kv2-group-g8-r0", "kv4-uniform", "kv4-outlier-s2",
                                                            "kv4-group-g32-r128")] == [True, False, False, True]
    assert token_anchored(KVQuantSpec.from_id("kv4-uniform"), KVQuantSpec.from_id("kv2-group-g8-r0"))
    mask = torch.tensor([[0, 1, 1], [1, 1, 1], [0, 1, 1], [0, 0, 1]])
    assert equal_length_rows(mask) == [[0, 2], [1], [3]]
    inputs = {"input_ids": torch.arange(12).reshape(4, 3), "attention_mask": mask, "pixel_values": torch.zeros(4, 2),
              "mm_token_type_ids": torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 0]]),
              "image_features": torch.ones(4, 3), "other": "kept"}
    part = without_padding(inputs, [0, 2])
    assert part["input_ids"].tolist() == [[1, 2], [7, 8]] and part["attention_mask"].tolist() == [[1, 1], [1, 1]]
    assert part["mm_token_type_ids"].tolist() == [[1, 0], [0, 1]]   # token types stay aligned with the ids
    assert part["image_features"].shape == (2, 3)   # float tensors are not per-token ids: rows only
    assert part["pixel_values"].shape == (2, 2) and part["other"] == "kept"
