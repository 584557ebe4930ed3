"""The embedded tiny models: shipped weights load offline and reproduce their model card;
the training script runs; processor and config agree."""

import json
import random
import sys

import pytest
import torch

from transformers import AutoModelForImageTextToText

from pytest_lvlmbench.core.records import worsening
from pytest_lvlmbench.tasks import TASKS
from pytest_lvlmbench.tasks.shapes import world
from pytest_lvlmbench.tasks.shapes.tasks import SHAPES_TASKS
from pytest_lvlmbench.tasks.shapes.world import evaluation_split
from pytest_lvlmbench.engine.families import load_processor
from pytest_lvlmbench.engine.models import MODELS_DIR, model_family, resolve_model
from pytest_lvlmbench.zoo import card as card_module
from pytest_lvlmbench.zoo import train as train_module
from pytest_lvlmbench.zoo.build import VARIANTS, build_model, build_processor, prompt
from pytest_lvlmbench.zoo.train import train, training_batches


def load(path):
    """As the suite loads it (tiny-qwen's processor is built from its parts where torchvision is missing)."""
    ref = resolve_model(str(path))
    return AutoModelForImageTextToText.from_pretrained(path).eval(), load_processor(ref.source, model_family(ref))


@pytest.fixture(scope="module", params=VARIANTS)
def shipped(request):
    path = MODELS_DIR / request.param
    model, processor = load(path)
    return request.param, model, processor, json.loads((path / "card.json").read_text())


def test_shipped_weights_reproduce_the_model_card(shipped, tmp_path):
    variant, _, _, card = shipped
    results = card_module.evaluate(variant, ["fp16"], card["check_items"], tmp_path)["fp16"]
    assert set(results) == set(card["check"])
    for task, metrics in card["check"].items():
        assert results[task] == pytest.approx(metrics, abs=0.01), task


def test_cards_and_the_suite_give_identical_numbers(pytester, tmp_path):
    """The card is computed by the suite's Session: the same setting on the same items gives the same record."""
    tasks = [TASKS["shapes_pope_random"], TASKS["shapes_scienceqa"]]
    cards = card_module.evaluate("tiny", ["fp16", "kv2-uniform", "w4-awq-g128"], 8, tmp_path / "card-cache", tasks)
    pytester.makepyfile(test_suite="from pytest_lvlmbench.suite import capability_test\n"
                                   "test_hallucination = capability_test('hallucination')\n"
                                   "test_knowledge = capability_test('knowledge')\n")
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-k", "shapes_pope_random or shapes_scienceqa",
                                           "--kv-bits", "2", "--kv-method", "uniform", "--weight-bits", "4",
                                           "--weight-method", "awq", "--lvlm-limit", "8", "--lvlm-report", str(report),
                                           "--lvlm-cache", str(pytester.path / "suite-cache"))
    result.assert_outcomes(passed=8)   # also the combined w4-awq-g128+kv2-uniform
    suite = {}
    for record in json.loads(report.read_text())["records"]:
        suite.setdefault(record["setting"], {})[record["task"]] = record["metrics"]
    assert {setting: suite[setting] for setting in cards} == cards   # exact: one evaluation path


TARGETS = {"shapes_vqa": 0.90, "shapes_pope_random": 0.90, "shapes_pope_popular": 0.90, "shapes_pope_adversarial": 0.90,
           "shapes_spatial": 0.80, "shapes_gqa": 0.75, "shapes_scienceqa": 0.75}


@pytest.mark.parametrize("variant", VARIANTS)
def test_model_cards_meet_the_accuracy_targets_and_show_a_compression_curve(variant):
    """The card's 500-item results (pinned to the weights by the check slice above): accurate
    uncompressed, 8-bit close to free, 2-bit per-tensor KV clearly worse on at least half the tasks
    (by each task's primary metric and its direction: a drop of 0.10, or a tenth for unbounded CIDEr-D)."""
    results = json.loads((MODELS_DIR / variant / "card.json").read_text())["results"]
    missed = {t: results["fp16"][t]["accuracy"] for t, target in TARGETS.items() if results["fp16"][t]["accuracy"] < target}
    assert not missed

    def worse(setting, task):
        before, after = results["fp16"][task.name][task.primary], results[setting][task.name][task.primary]
        scale = max(1.0, abs(before))
        return worsening(task.primary, before, after) / scale

    for setting in ("kv8-uniform", "w8-rtn"):
        assert sum(worse(setting, task) for task in SHAPES_TASKS) / len(SHAPES_TASKS) <= 0.01, setting
    assert sum(worse("kv2-uniform", task) >= 0.10 for task in SHAPES_TASKS) >= len(SHAPES_TASKS) / 2


def test_shipped_files_are_small_safetensors_with_a_processor(shipped):
    variant, _, processor, _ = shipped
    files = {p.name: p.stat().st_size for p in (MODELS_DIR / variant).iterdir()}
    assert "model.safetensors" in files and not any(name.endswith(".bin") for name in files)
    assert files["model.safetensors"] < 20 * 2**20
    assert {"processor_config.json", "tokenizer.json", "README.md", "card.json"} <= set(files)
    assert processor.tokenizer.padding_side == "left"


def test_processor_and_config_agree_on_image_tokens(shipped):
    variant, model, processor, _ = shipped
    item = evaluation_split("recognition", 2)[0]
    inputs = processor(images=[item.image()], text=[prompt(item.question, variant)], return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("variant", ["tiny-next", "tiny-qwen"])
def test_ten_training_steps_run_and_the_result_reloads(tmp_path, variant):
    summary = train(variant, 10, tmp_path, batch_size=8, threads=1, log_every=5, bucket=2, bf16=True,
                    text_hidden=64, text_layers=1)
    assert summary["steps"] == 10 and len(summary["log"]) >= 2
    model, processor = load(tmp_path)
    item = evaluation_split("spatial", 1)[0]
    inputs = processor(images=[item.image()], text=[prompt(item.question, variant)], return_tensors="pt")
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


@pytest.mark.parametrize("variant, end", [("tiny", "</s>"), ("tiny-qwen", "<|im_end|>")])
def test_training_labels_cover_every_answer_and_nothing_else(variant, end):
    processor = build_processor(variant)
    batch = next(training_batches(processor, random.Random(0), 6, turns=3, variant=variant))
    conversations = [world.training_conversation(rng, 3)[1] for rng in [random.Random(0)] for _ in range(6)]
    for labels, conversation in zip(batch["labels"], conversations):
        supervised = processor.tokenizer.convert_ids_to_tokens(labels[labels >= 0].tolist())
        assert supervised == " ".join(f"{a} {end}" for _, a in conversation).split()


def test_tiny_qwens_training_text_is_what_its_chat_template_renders():
    """The conversations it learns from are the ones Qwen2-VL's template writes, turn for turn."""
    from pytest_lvlmbench.zoo.train import conversation_text

    processor = build_processor("tiny-qwen")
    turns = [("what color is the circle ?", "red"), ("where is the circle ?", "top left")]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": turns[0][0]}]},
                {"role": "assistant", "content": turns[0][1]}, {"role": "user", "content": turns[1][0]},
                {"role": "assistant", "content": turns[1][1]}]
    rendered = processor.tokenizer.apply_chat_template(messages, tokenize=False, chat_template=processor.chat_template)
    assert conversation_text(turns, "tiny-qwen") == rendered


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
