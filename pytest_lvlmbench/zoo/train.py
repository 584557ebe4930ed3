"""Train an embedded tiny LLaVA on the shapes world, deterministically, on a CPU.

    python -m pytest_lvlmbench.zoo.train --variant tiny --out pytest_lvlmbench/zoo/models/tiny

Recipe (from the feasibility probes in shared/notes/tiny-llava-probe.md): AdamW, peak learning
rate 5e-4 (2e-3 and above stall at the "ignore the image" loss), linear warm-up then cosine to
5%, weight decay on matrices only, gradient clip 1, answer-only loss, fresh scenes every step,
multi-turn conversations (several questions about one scene, as in LLaVA's instruction data:
measured, 1,600 four-turn steps beat 2,500 one-turn steps on knowledge 0.44 -> 0.77, captions
0.09 -> 0.60 exact match and POPE 0.74 -> 0.84, for 1.5x the time),
spatial questions weighted up, a strong 2-D position code in the vision tower (``build_model``),
and (tiny) an exponential moving average of the weights (0.999) as the shipped model.

Steps matter more than anything else tried: selecting the named object among several (and so
spatial relations) is learned late. Measured on tiny with this recipe: the 2,500-step run ended at
loss 0.08 with spatial relations at chance (0.47); the 4,600-step run (2 threads, same wall time as
2,500 steps on one) passed loss 0.08 at step 1,750 and reached 0.004 by step 3,000, with spatial
relations then answered almost perfectly. Spend the 30-minute budget on one variant at a time.

tiny-next learns more slowly per step and is still learning spatial relations when the budget
ends, so it ships its last step's weights: the EMA lags behind (measured on 300 held-out items
of the same 4,600-step run: spatial 0.72 with the EMA, 0.82 without). Its batches are grouped by
length in fours and come shortest first, so its logged single-step losses alternate between
short and long conversations: compare every fourth log entry, not neighbours.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Iterator

import torch

from .build import VARIANTS, build_model, build_processor, prompt, save_processor
from ..tasks.shapes.world import training_conversation


# How the shipped models were trained (with --threads 2): what fits 30 minutes on 2 CPU threads.
# tiny-next costs 1.3x per step (its vision tower sees the base image and a tile; 21 image tokens),
# which length-bucketed batches and bfloat16 autocast win back: forward+backward on the same batches
# 0.456 -> 0.311 s/step side by side; whole steps in the shipped runs 0.479 (3,600 steps) -> 0.365.
SHIPPED_RECIPES = {"tiny": {"steps": 4600, "bucket": 1, "bf16": False, "ema_decay": 0.999},
                   "tiny-next": {"steps": 4600, "bucket": 4, "bf16": True, "ema_decay": 0.0},
                   "tiny-qwen": {"steps": 4600, "bucket": 4, "bf16": True, "ema_decay": 0.0}}
# Words that open a user turn and an answer, per chat format; an answer runs to (and includes) its
# end-of-turn token. Qwen2-VL's turns open with <|im_start|>, which belongs to no answer.
TURN_WORDS = {"tiny": ("USER:", "ASSISTANT:"), "tiny-next": ("USER:", "ASSISTANT:"),
              "tiny-qwen": ("user", "assistant")}


def conversation_text(conversation: list[tuple[str, str]], variant: str = "tiny") -> str:
    """The multi-turn format of the variant's chat template: the image once, then user/assistant turns."""
    (question, answer), *rest = conversation
    if variant == "tiny-qwen":
        return "".join([f"{prompt(question, variant)}{answer}<|im_end|>\n",
                        *(f"<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>\n" for q, a in rest)])
    return " ".join([f"{prompt(question)} {answer} </s>", *(f"USER: {q} ASSISTANT: {a} </s>" for q, a in rest)])


def training_batch(processor, conversations: list, variant: str = "tiny") -> dict[str, torch.Tensor]:
    """Inputs with labels on the answer tokens only (each answer and its end-of-turn token)."""
    batch = processor(images=[[scene.image()] for scene, _ in conversations],
                      text=[conversation_text(turns, variant) for _, turns in conversations], return_tensors="pt",
                      padding=True)
    ids, tokenizer = batch["input_ids"], processor.tokenizer
    user, assistant = (tokenizer.convert_tokens_to_ids(word) for word in TURN_WORDS[variant])
    answer_open = ids == assistant
    opened, asked = answer_open.cumsum(-1), (ids == user).cumsum(-1)
    in_answer = (opened == asked) & (opened > 0) & ~answer_open & (batch["attention_mask"] == 1)
    if "<|im_start|>" in tokenizer.get_vocab():
        in_answer &= ids != tokenizer.convert_tokens_to_ids("<|im_start|>")
    batch["labels"] = ids.masked_fill(~in_answer, -100)
    return dict(batch)


def training_batches(processor, rng: random.Random, size: int, turns: int = 1,
                     bucket: int = 1, variant: str = "tiny") -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches of fresh conversations. With ``bucket`` > 1, draws that many batches'
    conversations at once and batches them by length, shortest first: every sequence is padded to
    its batch's longest, and without grouping a quarter of the tokens computed are padding (about a
    tenth with ``bucket=4``)."""
    if bucket < 1:
        raise ValueError(f"bucket must be a positive number of batches, got {bucket}")
    while True:
        conversations = [training_conversation(rng, turns) for _ in range(size * bucket)]
        if bucket > 1:
            conversations.sort(key=lambda c: len(conversation_text(c[1], variant).split()))
        for start in range(0, size * bucket, size):
            yield training_batch(processor, conversations[start:start + size], variant)


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(variant: str, steps: int, out: Path | None, *, batch_size: int = 64, peak_lr: float = 5e-4,
          warmup: int = 300, seed: int = 0, threads: int = 2, turns: int = 4, bucket: int = 1,
          bf16: bool = False, ema_decay: float = 0.999, log_every: int = 250, **config_overrides) -> dict:
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    if not 0 <= ema_decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1) (0: ship the last step's weights), got {ema_decay}")
    torch.set_num_threads(threads)
    model = build_model(variant, seed=seed, **config_overrides)
    processor = build_processor(variant)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=peak_lr)
    params = dict(model.named_parameters())
    ema = {name: p.detach().clone() for name, p in params.items()} if ema_decay else {}
    batches = training_batches(processor, random.Random(f"train-{seed}"), batch_size, turns, bucket, variant)
    torch.manual_seed(seed)
    log: list[dict] = []
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, peak_lr, warmup)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(**next(batches)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            for name, average in ema.items():
                average.lerp_(params[name].detach(), 1 - ema_decay)
        if step % log_every == 0 or step == steps - 1:
            log.append({"step": step, "loss": round(loss.item(), 4), "seconds": round(time.perf_counter() - start, 1)})
            print(json.dumps(log[-1]), flush=True)
    with torch.no_grad():
        for name, average in ema.items():
            params[name].copy_(average)
    model.eval()
    summary = {"variant": variant, "steps": steps, "batch_size": batch_size, "turns": turns, "bucket": bucket,
               "bf16": bf16, "ema_decay": ema_decay, "peak_lr": peak_lr, "seed": seed, "threads": threads,
               "train_seconds": round(time.perf_counter() - start, 1),
               "parameters": sum(p.numel() for p in model.parameters()), "log": log}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out, safe_serialization=True)
        save_processor(processor, out)
        (out / "training.json").write_text(json.dumps(summary, indent=1))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--steps", type=int, help="default: the shipped model's (see SHIPPED_RECIPES)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--turns", type=int, default=4, help="questions per scene (multi-turn conversations)")
    parser.add_argument("--bucket", type=int, help="batches drawn at once and grouped by length "
                        "(default: the shipped model's)")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction,
                        help="bfloat16 autocast for the forward pass (default: the shipped model's)")
    parser.add_argument("--ema-decay", type=float, help="ship an EMA of the weights with this decay; 0: the last "
                        "step's weights (default: the shipped model's)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    given = {"steps": args.steps, "bucket": args.bucket, "bf16": args.bf16, "ema_decay": args.ema_decay}
    recipe = {**SHIPPED_RECIPES[args.variant], **{key: value for key, value in given.items() if value is not None}}
    train(args.variant, recipe.pop("steps"), args.out, batch_size=args.batch_size, peak_lr=args.lr, seed=args.seed,
          threads=args.threads, turns=args.turns, **recipe)


if __name__ == "__main__":
    main()
