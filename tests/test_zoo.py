"""The embedded tiny models: shipped weights load offline and reproduce their model card;
the training script runs; processor and config agree."""

import json
import random
import sys

import pytest
import torch

from pytest_lvlmbench.zoo import MODELS_DIR, world
from pytest_lvlmbench.zoo import train as train_module
from pytest_lvlmbench.zoo.build import VARIANTS, build_model, build_processor, prompt
from pytest_lvlmbench.zoo.evaluate import evaluate, load
from pytest_lvlmbench.zoo.train import train, training_batches
from pytest_lvlmbench.zoo.world import CAPABILITIES, evaluation_split


@pytest.fixture(scope="module", params=VARIANTS)
def shipped(request):
    path = MODELS_DIR / request.param
    model, processor = load(path)
    return request.param, model, processor, json.loads((path / "card.json").read_text())


def test_shipped_weights_reproduce_the_model_card(shipped):
    _, model, processor, card = shipped
    results = evaluate(model, processor, ["fp16"], card["check_items"])["fp16"]
    for capability in CAPABILITIES:
        assert results[capability]["primary"] == pytest.approx(card["check"][capability]["primary"], abs=0.01), \
            capability


TARGETS = {"hallucination": 0.90, "recognition": 0.90, "spatial": 0.80, "visual_reasoning": 0.75, "knowledge": 0.75}


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_cards_meet_the_accuracy_targets_and_show_a_compression_curve(variant):
    """The card's 500-item results (pinned to the weights by the check slice above): accurate
    uncompressed, 8-bit close to free, 2-bit per-tensor KV costing >= 10 points on half the capabilities."""
    results = json.loads((MODELS_DIR / variant / "card.json").read_text())["results"]
    missed = {c: results["fp16"][c]["primary"] for c, target in TARGETS.items() if results["fp16"][c]["primary"] < target}
    assert not missed
    drops = {setting: [100 * (results[setting][c]["primary"] - results["fp16"][c]["primary"]) for c in CAPABILITIES]
             for setting in ("kv8-uniform", "w8-rtn", "kv2-uniform")}
    assert sum(drops["kv8-uniform"]) / len(CAPABILITIES) >= -1 and sum(drops["w8-rtn"]) / len(CAPABILITIES) >= -1
    assert sum(drop <= -10 for drop in drops["kv2-uniform"]) >= len(CAPABILITIES) / 2


def test_shipped_files_are_small_safetensors_with_a_processor(shipped):
    variant, _, processor, _ = shipped
    files = {p.name: p.stat().st_size for p in (MODELS_DIR / variant).iterdir()}
    assert "model.safetensors" in files and not any(name.endswith(".bin") for name in files)
    assert files["model.safetensors"] < 20 * 2**20
    assert {"processor_config.json", "tokenizer.json", "README.md", "card.json"} <= set(files)
    assert processor.tokenizer.padding_side == "left"


def test_processor_and_config_agree_on_image_tokens(shipped):
    _, model, processor, _ = shipped
    item = evaluation_split("recognition", 2)[0]
    inputs = processor(images=[item.image()], text=[prompt(item.question)], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert torch.isfinite(logits).all()


def test_ten_training_steps_run_and_the_result_reloads(tmp_path):
    summary = train("tiny-next", 10, tmp_path, batch_size=8, threads=1, log_every=5, bucket=2, bf16=True,
                    text_hidden=64, text_layers=1)
    assert summary["steps"] == 10 and len(summary["log"]) >= 2
    model, processor = load(tmp_path)
    item = evaluation_split("spatial", 1)[0]
    inputs = processor(images=[item.image()], text=[prompt(item.question)], return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3


def test_ema_decay_zero_ships_the_last_steps_weights(tmp_path):
    """After one step from the same start, the EMA at decay d is d * start + (1 - d) * last."""
    small = dict(text_hidden=64, text_layers=1)
    start = build_model("tiny", **small).state_dict()
    shipped = {}
    for decay in (0.0, 0.5):
        train("tiny", 1, tmp_path / str(decay), batch_size=4, threads=1, ema_decay=decay, **small)
        shipped[decay] = load(tmp_path / str(decay))[0].state_dict()
    last, half = shipped[0.0], shipped[0.5]
    assert any(not torch.equal(last[name], start[name]) for name in start)
    for name in start:
        torch.testing.assert_close(half[name], (start[name] + last[name]) / 2)


@pytest.mark.parametrize("bad, message", [(dict(steps=0), "steps must be positive, got 0"),
                                          (dict(ema_decay=1.0), r"ema_decay must be in \[0, 1\)"),
                                          (dict(bucket=0), "bucket must be a positive number of batches, got 0")])
def test_training_rejects_meaningless_settings(bad, message):
    settings = dict(steps=1, batch_size=2, threads=1, text_hidden=64, text_layers=1) | bad
    with pytest.raises(ValueError, match=message):
        train("tiny", settings.pop("steps"), None, **settings)


def test_a_fresh_processor_matches_the_shipped_one(shipped):
    variant, _, processor, _ = shipped
    fresh = build_processor(variant)
    assert fresh.tokenizer.get_vocab() == processor.tokenizer.get_vocab()


def test_length_buckets_regroup_the_same_conversations_with_less_padding():
    processor = build_processor("tiny")
    plain, bucketed = (training_batches(processor, random.Random(0), 16, turns=4, bucket=bucket) for bucket in (1, 4))
    plain, bucketed = [next(plain) for _ in range(4)], [next(bucketed) for _ in range(4)]

    def answers(batches):
        return sorted(tuple(row[row >= 0].tolist()) for batch in batches for row in batch["labels"])

    def padded_tokens(batches):
        return sum(int((batch["attention_mask"] == 0).sum()) for batch in batches)

    assert answers(bucketed) == answers(plain)
    assert padded_tokens(bucketed) < padded_tokens(plain) / 2
    lengths = [int(batch["attention_mask"].sum(1).max()) for batch in bucketed]
    assert lengths == sorted(lengths)


def test_training_labels_cover_every_answer_and_nothing_else():
    processor = build_processor("tiny")
    batch = next(training_batches(processor, random.Random(0), 6, turns=3))
    conversations = [world.training_conversation(rng, 3)[1] for rng in [random.Random(0)] for _ in range(6)]
    for labels, conversation in zip(batch["labels"], conversations):
        supervised = processor.tokenizer.convert_ids_to_tokens(labels[labels >= 0].tolist())
        assert supervised == " ".join(f"{a} </s>" for _, a in conversation).split()


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_training_command_defaults_to_the_shipped_recipe(variant, monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(train_module, "train", lambda *args, **kwargs: calls.append((args, kwargs)))
    monkeypatch.setattr(sys, "argv", ["train", "--variant", variant, "--out", str(tmp_path)])
    train_module.main()
    [((_, steps, _), kwargs)] = calls
    recipe = train_module.SHIPPED_RECIPES[variant]
    assert {"steps": steps, **{key: kwargs[key] for key in ("bucket", "bf16", "ema_decay")}} == recipe
    shipped = json.loads((MODELS_DIR / variant / "training.json").read_text())
    assert {key: shipped[key] for key in recipe} == recipe
