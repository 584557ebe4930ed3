"""Evaluate a trained tiny variant and write its model card (README.md + card.json).

    python -m pytest_lvlmbench.zoo.card --variant tiny

The card's numbers come from the suite's own evaluation path (:class:`~pytest_lvlmbench.engine.session.Session`:
the same chat-template prompts, batching, generation cache, weight-quantized copies and AWQ
calibration), so a card and ``pytest benchmarks/ --model tiny --lvlm-limit N`` give identical
numbers for the same setting. card.json keeps every number the card shows; the test suite reloads
the shipped weights and checks the uncompressed metrics on the first ``CHECK_ITEMS`` items.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
import transformers

from ..metrics import METRICS
from ..core.options import Options
from ..engine.session import Session
from ..core.settings import Setting
from ..tasks import Task
from ..tasks.shapes.tasks import SHAPES_TASKS
from ..engine.models import MODELS_DIR

CHECK_ITEMS = 200
CARD_ITEMS = 500
SETTINGS = ["fp16", "kv8-uniform", "kv4-uniform", "kv2-uniform", "kv2-uniform-token", "kv4-group-g8-r0",
            "kv2-group-g8-r0", "kv2-group-g32-r128", "kv2-outlier-s2", "kv2-outlier-s2-lr4", "w8-rtn", "w4-rtn",
            "w4-group-g128", "w4-awq-g128", "w4-gptq-g128", "w3-outlier-s1-g128", "w2-group-g128", "w2-gptq-g128"]

Results = dict[str, dict[str, dict[str, float]]]   # setting id -> task -> metric -> value
ARCHITECTURES = {   # what the card says the model is made of
    "LlavaForConditionalGeneration": "CLIP vision tower (48 px, 16 px patches, hidden 128, 3 layers), MLP projector, "
                                     "Llama language model",
    "LlavaNextForConditionalGeneration": "CLIP vision tower (48 px base image plus anyres tiles, 16 px patches, "
                                         "hidden 128, 3 layers), MLP projector, image newlines, Llama language model",
    "Qwen2VLForConditionalGeneration": "Qwen2-VL vision transformer (48 px, 8 px patches with 2-D rotary positions, "
                                       "hidden 128, 3 layers), patch merger (2x2) as projector, Qwen2 language "
                                       "model with multimodal RoPE",
}


def evaluate(model: str, settings: Sequence[str], limit: int, cache_dir: Path,
             tasks: Sequence[Task] = SHAPES_TASKS) -> Results:
    """{setting: {task: metrics}} of the first ``limit`` items of each task, through the suite's Session
    (with the suite's default batch size and seed)."""
    session = Session(Options(models=[model], settings=[Setting.from_id(s) for s in settings], limit=limit,
                              cache_dir=cache_dir))
    results: Results = {}
    for setting in sorted(session.options.settings, key=lambda s: not s.is_baseline):   # p-values pair with fp16
        results[setting.id] = {task.name: session.evaluate(model, setting, task).metrics for task in tasks}
    return {setting.id: results[setting.id] for setting in session.options.settings}


def degradation_table(results: Results, tasks: Sequence[Task] = SHAPES_TASKS) -> list[str]:
    """Markdown rows: task x setting, the task's primary metric and its signed delta vs fp16."""
    settings = list(results)
    lines = ["| task | primary | " + " | ".join(settings) + " |", "|---" * (len(settings) + 2) + "|"]
    for task in tasks:
        base = results["fp16"][task.name][task.primary]
        cells = [f"{base:.3f}"] + [f"{results[s][task.name][task.primary]:.3f} "
                                   f"({results[s][task.name][task.primary] - base:+.3f})" for s in settings[1:]]
        arrow = {True: "↑", False: "↓", None: ""}[METRICS[task.primary].higher_is_better]
        lines.append(f"| {task.name} | {task.primary}{arrow} | " + " | ".join(cells) + " |")
    return lines


def write_card(variant: str, cache_dir: Path) -> dict:
    path = MODELS_DIR / variant
    training = json.loads((path / "training.json").read_text())
    config = json.loads((path / "config.json").read_text())
    results = evaluate(variant, SETTINGS, CARD_ITEMS, cache_dir)
    check = evaluate(variant, ["fp16"], CHECK_ITEMS, cache_dir)["fp16"]
    card = {"variant": variant, "architecture": config["architectures"][0], "parameters": training["parameters"],
            "training": {k: v for k, v in training.items() if k != "log"}, "items_per_task": CARD_ITEMS,
            "primary": {task.name: task.primary for task in SHAPES_TASKS},
            "results": results, "check_items": CHECK_ITEMS, "check": check,
            "machine": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": transformers.__version__, "processor": platform.processor()}}
    (path / "card.json").write_text(json.dumps(card, indent=1))
    base = results["fp16"]
    text = config["text_config"]
    lines = [
        f"# {variant}: an embedded tiny {card['architecture']} trained on the shapes world", "",
        "Trained from scratch by `python -m pytest_lvlmbench.zoo.train` on the synthetic shapes world "
        "(`pytest_lvlmbench/tasks/shapes/world.py`), for the lvlm-compress-bench test suite. Not a general model: "
        "it answers questions about 48x48 scenes of coloured shapes and simple person figures.", "",
        "## Model",
        f"- {training['parameters']:,} parameters; {ARCHITECTURES[card['architecture']]} (hidden "
        f"{text['hidden_size']}, {text['num_hidden_layers']} layers, {text['num_attention_heads']} heads of "
        f"{text['hidden_size'] // text['num_attention_heads']}, {text['num_key_value_heads']} KV heads, "
        f"word-level vocabulary of {text['vocab_size']}).",
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
        f"## Uncompressed (first {CARD_ITEMS} held-out items per task, greedy, through the suite's Session)",
        "| task | capability | all metrics (primary first) |", "|---|---|---|",
        *[f"| {task.name} | {task.capability} | " + ", ".join(f"{m} {base[task.name][m]:.3f}" for m in task.metrics)
          + " |" for task in SHAPES_TASKS],
        "",
        "Metrics are those of the suite (`pytest --lvlm-list-tasks` lists them with their directions); the "
        "primary one is defined on each task.", "",
        "## Degradation (primary metric, delta vs fp16)",
        "These prompts are short (about 25 tokens for tiny, 37 for tiny-next, 32 for tiny-qwen): KV specs with "
        "r128 keep every token in full precision, and KIVI groups of 32 tokens quantize a prompt only once it "
        "holds a whole group (tiny: never; tiny-next: the first 32 tokens; tiny-qwen: those of its longer "
        "prompts).", "",
        *degradation_table(results), "",
    ]
    (path / "README.md").write_text("\n".join(lines))
    return card


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--cache", type=Path, help="generation cache to reuse (default: a fresh one)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as fresh:
        card = write_card(args.variant, args.cache or Path(fresh))
    print((MODELS_DIR / args.variant / "README.md").read_text())
    print(json.dumps({task: metrics[card["primary"][task]] for task, metrics in card["check"].items()}))


if __name__ == "__main__":
    main()
