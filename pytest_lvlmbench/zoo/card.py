"""Evaluate a trained tiny variant and write its model card (README.md + card.json).

    python -m pytest_lvlmbench.zoo.card --variant tiny

card.json keeps every number the card shows; the test suite reloads the shipped weights and
checks the uncompressed accuracy on the first ``CHECK_ITEMS`` items of each capability.
"""

from __future__ import annotations

import argparse
import json
import platform

import torch
import transformers

from . import MODELS_DIR
from .evaluate import evaluate, load
from .world import CAPABILITIES

CHECK_ITEMS = 200
CARD_ITEMS = 500
SETTINGS = ["fp16", "kv8-uniform", "kv4-uniform", "kv2-uniform", "kv4-group-g32-r0", "kv2-group-g32-r0",
            "kv2-group-g32-r128", "kv2-outlier-s2", "kv2-outlier-s2-lr4", "w8-rtn", "w4-rtn", "w4-group-g128",
            "w4-awq-g128", "w2-group-g128"]


def degradation_table(results: dict[str, dict]) -> list[str]:
    """Markdown rows: capability x setting, primary score in points and the signed delta vs fp16."""
    settings = list(results)
    lines = ["| capability | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
    for capability in CAPABILITIES:
        base = results["fp16"][capability]["primary"] * 100
        cells = [f"{base:.1f}"] + [
            f"{results[s][capability]['primary'] * 100:.1f} ({results[s][capability]['primary'] * 100 - base:+.1f})"
            for s in settings[1:]]
        lines.append(f"| {capability} | " + " | ".join(cells) + " |")
    return lines


def write_card(variant: str) -> dict:
    path = MODELS_DIR / variant
    model, processor = load(path)
    training = json.loads((path / "training.json").read_text())
    results = evaluate(model, processor, SETTINGS, CARD_ITEMS)
    check = evaluate(model, processor, ["fp16"], CHECK_ITEMS)["fp16"]
    card = {"variant": variant, "architecture": type(model).__name__, "parameters": training["parameters"],
            "training": {k: v for k, v in training.items() if k != "log"}, "items_per_capability": CARD_ITEMS,
            "results": results, "check_items": CHECK_ITEMS, "check": check,
            "machine": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": transformers.__version__, "processor": platform.processor()}}
    (path / "card.json").write_text(json.dumps(card, indent=1))
    base = results["fp16"]
    text_config = model.config.text_config
    lines = [
        f"# {variant}: an embedded tiny {type(model).__name__} trained on the shapes world", "",
        "Trained from scratch by `python -m pytest_lvlmbench.zoo.train` on the synthetic shapes world "
        "(`pytest_lvlmbench/zoo/world.py`), for the lvlm-compress-bench test suite. Not a general model: it "
        "answers questions about 48x48 scenes of coloured shapes and simple person figures.", "",
        "## Model",
        f"- {training['parameters']:,} parameters; CLIP vision tower (48 px, 16 px patches, hidden 128, 3 layers), "
        f"MLP projector, Llama language model (hidden {text_config.hidden_size}, {text_config.num_hidden_layers} "
        f"layers, {text_config.num_attention_heads} heads of {text_config.hidden_size // text_config.num_attention_heads}, "
        f"word-level vocabulary of {text_config.vocab_size}).",
        f"- Training: {training['steps']} steps of {training['batch_size']} fresh scenes "
        f"({training['turns']}-turn conversations"
        + (f", sorted by length in groups of {training['bucket']} batches" if training["bucket"] > 1 else "")
        + (", bfloat16 autocast" if training["bf16"] else "") + "), peak LR "
        f"{training['peak_lr']}, seed {training['seed']}, {training['threads']} CPU threads, "
        f"{training['train_seconds'] / 60:.1f} minutes; weights are "
        + (f"the EMA ({training['ema_decay']})." if training["ema_decay"] else "the last step's (no EMA)."), "",
        "## Data",
        "Scenes of 1-4 shapes (4 shapes x 4 colours x 2 sizes on a 3x3 grid) and person figures "
        "(shirt orange/purple x hat/no hat, a role object). A fixed tenth of shape scenes is held out for "
        "evaluation. Deliberate, documented biases: without a visible role object, the training label is the "
        "shirt's prior role (orange -> doctor, purple -> chef); frowning people get a mild negative trait "
        "(grumpy, lazy, messy, rude) and people with a hat frown twice as often.", "",
        f"## Accuracy, uncompressed ({CARD_ITEMS} held-out items per capability, greedy)",
        "| capability | primary | all metrics |", "|---|---|---|",
        *[f"| {c} | {base[c]['primary']:.3f} | " + ", ".join(f"{k} {v:.3f}" for k, v in base[c].items()
                                                           if k != "primary") + " |" for c in CAPABILITIES],
        "",
        "Primary metrics: VQA exact match for short answers and captions (CIDEr-D beside it), POPE accuracy, "
        "HallusionBench aAcc, description / job accuracy for the person tasks; toxicity rate, MaxSkew and "
        "counterfactual consistency are listed under all metrics.", "",
        "## Degradation (primary score in points, delta vs fp16)",
        "These prompts are short (about 25 tokens for tiny, 37 for tiny-next): KV specs with r128 keep "
        "every token in full precision, and KIVI groups of 32 tokens quantize a prompt only once it holds a "
        "whole group (tiny: never; tiny-next: the first 32 tokens).", "",
        *degradation_table(results), "",
    ]
    (path / "README.md").write_text("\n".join(lines))
    return card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variant", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    card = write_card(args.variant)
    print((MODELS_DIR / args.variant / "README.md").read_text())
    print(json.dumps({c: card["check"][c]["primary"] for c in CAPABILITIES}))


if __name__ == "__main__":
    main()
