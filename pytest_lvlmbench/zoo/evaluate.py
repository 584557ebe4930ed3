"""Accuracy of an embedded tiny LLaVA per capability, and its degradation under compression.

    python -m pytest_lvlmbench.zoo.evaluate --model pytest_lvlmbench/zoo/models/tiny --n 500 \
        --settings fp16,kv8-uniform,kv2-uniform,w8-rtn

Every capability has one primary score in [0, 1], higher is better, so "points lost" compare
across capabilities (CIDEr-D, which is not bounded, is reported beside it); the social metrics
(toxicity rate, MaxSkew, counterfactual consistency) are reported too.
"""

from __future__ import annotations

import argparse
import copy
import json
from collections import defaultdict
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from quant import KVQuantSpec, WeightQuantSpec, quantize_model

from .. import metrics
from ..generation import generate_batch
from .build import prompt
from .world import CAPABILITIES, NEGATIVE_TRAITS, ROLE_PRIOR, Item, calibration_examples, evaluation_split

MAX_NEW_TOKENS = 16


def load(path: str | Path):
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    return model, AutoProcessor.from_pretrained(path)


def generate_answers(model, processor, items: list[Item], kv_spec: KVQuantSpec = KVQuantSpec(),
                     batch_size: int = 64) -> list[str]:
    """Greedy answers, batched with left padding, the KV spec applied through the quantized cache."""
    answers: list[str] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        answers += [g.answer for g in generate_batch(model, processor, [item.image() for item in chunk],
                                                     [prompt(item.question) for item in chunk], kv_spec,
                                                     MAX_NEW_TOKENS)]
    return answers


def cluster_of(item: Item) -> str:
    """The unit a bootstrap resamples whole: a counterfactual set, an illusion question pair,
    a POPE image, else the item itself."""
    meta = item.meta
    return str(meta.get("set_id") or meta.get("question_pair_id") or meta.get("image_id") or item.id)


def exact_match_stats(items: list[Item], predictions: list[str]) -> metrics.SampleStats:
    return metrics.share_stats([metrics.vqa_accuracy(p, list(item.answers)) for p, item in zip(predictions, items)])


def capability_statistics(capability: str, items: list[Item], predictions: list[str]) -> dict[str, metrics.SampleStats]:
    """Every metric of one capability as per-sample statistics (value, CI and paired tests)."""
    correct = exact_match_stats(items, predictions)
    if capability == "language_generation":
        references = [list(item.answers) for item in items]
        return {"exact_match": correct,
                "cider": metrics.share_stats(metrics.cider_d_scores(predictions, references)),
                "bleu": metrics.bleu_statistics(predictions, references)}
    if capability == "hallucination":
        return metrics.pope_statistics(predictions, [item.answers[0] for item in items])
    if capability == "visual_illusion":
        return metrics.hallusion_statistics([{**item.meta, "prediction": p, "label": item.answers[0]}
                                             for p, item in zip(predictions, items)])
    if capability == "toxicity":
        return {"exact_match": correct, "toxicity": metrics.toxicity_statistics(predictions, NEGATIVE_TRAITS)}
    if capability not in ("stereotypes", "bias"):
        return {"accuracy": correct}
    sets = [item.meta["set_id"] for item in items]
    said = [metrics.normalize_answer(p) for p in predictions]
    first = {}
    for answer, set_id in zip(said, sets):
        first.setdefault(set_id, answer)
    social = {"max_skew": metrics.max_skew_statistics([item.meta["group"] for item in items], predictions),
              "consistency": metrics.all_correct_stats([a == first[s] for a, s in zip(said, sets)], sets)}
    if capability == "stereotypes":
        follows_prior = [a in ROLE_PRIOR[item.meta["shirt"]] for a, item in zip(said, items)]
        return {"stereotype_rate": metrics.share_stats(follows_prior), **social}
    return {"accuracy": correct, **social}


PRIMARY = {"language_generation": "exact_match", "hallucination": "accuracy", "visual_illusion": "aAcc",
           "toxicity": "exact_match"}


def capability_scores(capability: str, items: list[Item], predictions: list[str]) -> dict[str, float]:
    """All metric values of one capability; ``primary`` is the [0, 1] higher-is-better headline
    of the model cards (exact answers), also for the social capabilities."""
    scores = metrics.metric_values(capability_statistics(capability, items, predictions))
    headline = PRIMARY.get(capability, "accuracy")
    primary = scores[headline] if headline in scores else exact_match_stats(items, predictions).value()
    return {"primary": primary, **scores}


def compressed_model(model, setting: str, calibration=None):
    """(model, kv spec) for a setting id: ``fp16``, a KV id (kv4-uniform) or a weight id (w4-group-g128)."""
    if setting.startswith("w"):
        quantized = copy.deepcopy(model)
        quantize_model(quantized, WeightQuantSpec.from_id(setting), calibration=calibration)
        return quantized, KVQuantSpec()
    return model, KVQuantSpec.from_id(setting)


def evaluate(model, processor, settings: list[str], n: int, capabilities=CAPABILITIES) -> dict[str, dict]:
    """{setting: {capability: scores}} on the first ``n`` held-out items of each capability."""
    splits = {c: evaluation_split(c, n) for c in capabilities}
    calibration = None
    if any(s.startswith("w") and "awq" in s for s in settings):
        examples = calibration_examples()
        calibration = [dict(processor(images=[scene.image() for scene, _ in examples],
                                      text=[prompt(question) for _, question in examples],
                                      return_tensors="pt", padding=True))]
    results: dict[str, dict] = {}
    for setting in settings:
        compressed, kv_spec = compressed_model(model, setting, calibration)
        results[setting] = {c: capability_scores(c, items, generate_answers(compressed, processor, items, kv_spec))
                            for c, items in splits.items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--settings", default="fp16")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, processor = load(args.model)
    results = evaluate(model, processor, args.settings.split(","), args.n)
    for setting, by_capability in results.items():
        print(setting, {c: round(s["primary"], 3) for c, s in by_capability.items()}, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
