"""The run's state: parsed options, loaded models, the generation cache and every record.

The one evaluation path: the pytest suite, the model cards and any script evaluate a (model,
setting, task) through :meth:`Session.evaluate`, so they share prompts (the chat template), batching,
the generation cache, weight-quantized copies and calibration. Nothing here imports pytest.
"""

from __future__ import annotations

import copy
import resource
import time

import numpy as np
import torch

from quant import quantize_model

from .metrics import SampleStats, bootstrap_interval, bootstrap_weights, paired_p, undefined_notes
from .gencache import (Generated, GenerationCache, device_kind, generation_key, hub_fingerprint, image_hash,
                       model_fingerprint)
from .generation import generate_batch
from .models import ModelRef, resolve_model
from .options import Options
from .results import Record, Results
from .settings import BASELINE, Setting
from .tasks import Task


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """``auto``: float16 on GPU, float32 on CPU (half-precision CPU kernels are slow)."""
    if name == "auto":
        return torch.float16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def peak_memory_bytes(device: str) -> int:
    """Peak GPU memory allocated since the last reset on CUDA; the process's peak RSS on CPU."""
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Session:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.refs: dict[str, ModelRef] = {name: resolve_model(name) for name in options.models}
        self.dtype = resolve_dtype(options.dtype, options.device)
        self.results = Results()
        self._statistics: dict[tuple[str, str, str], dict[str, SampleStats]] = {}
        self._weights: dict[str, np.ndarray] = {}   # bootstrap draws per task: shared by all its records
        self._models: dict[tuple[str, str], object] = {}
        self._load_errors: dict[tuple[str, str], Exception] = {}
        self._processors: dict[str, object] = {}
        self._fingerprints: dict[str, str] = {}
        self.cache = GenerationCache(options.cache_dir / "generations.sqlite")

    # ------------------------------------------------------------ models
    def processor(self, name: str):
        if name not in self._processors:
            from transformers import AutoProcessor

            self._processors[name] = AutoProcessor.from_pretrained(self.refs[name].source)
        return self._processors[name]

    def model(self, name: str, setting: Setting):
        """The float model once per name; a weight-quantized copy once per (name, weight spec)."""
        key = (name, setting.weights.id)
        if key in self._load_errors:   # failed once: every later test fails at once, naming the first error
            raise self._load_errors[key]
        if key not in self._models:
            try:
                self._models[key] = self._load(name, setting)
            except Exception as error:
                self._load_errors[key] = RuntimeError(f"model {name!r} ({self.refs[name].source}) with weights "
                                                      f"{setting.weights.id} failed to load: "
                                                      f"{type(error).__name__}: {error}")
                raise self._load_errors[key] from error
        return self._models[key]

    def _load(self, name: str, setting: Setting):
        """Load the float model, or quantize a copy of it for a weight spec."""
        if setting.weights.is_float:
            from transformers import AutoModelForImageTextToText

            return AutoModelForImageTextToText.from_pretrained(
                self.refs[name].source, dtype=self.dtype, use_safetensors=True).to(self.options.device).eval()
        model = copy.deepcopy(self.model(name, BASELINE))
        quantize_model(model, setting.weights, calibration=self._calibration(name))
        return model

    def _calibration(self, name: str) -> list[dict]:
        """AWQ calibration batch: shapes-world training examples (never an evaluated item)."""
        from .tasks.shapes.world import calibration_examples

        examples = calibration_examples()
        batch = self.processor(name)(images=[scene.image() for scene, _ in examples],
                                     text=[self.prompt(name, question) for _, question in examples],
                                     return_tensors="pt", padding=True)
        return [dict(batch.to(self.options.device))]

    def fingerprint(self, name: str) -> str:
        if name not in self._fingerprints:
            ref = self.refs[name]
            self._fingerprints[name] = (model_fingerprint(ref.source, memo=self.cache) if ref.is_local
                                        else hub_fingerprint(ref.source))
        return self._fingerprints[name]

    def prompt(self, name: str, question: str) -> str:
        conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        return self.processor(name).apply_chat_template(conversation, add_generation_prompt=True)

    def prompts(self, name: str, task: Task, items) -> list[str]:
        """The chat-template prompt of each item: the task's question text in the model's template."""
        return [self.prompt(name, task.prompt(item)) for item in items]

    # ------------------------------------------------------------ generation
    def evaluate(self, name: str, setting: Setting, task: Task, progress=None) -> Record:
        """The record of (model, setting, task): reused if this run already has it. Evaluate
        the baseline first: a setting's paired tests compare against it."""
        return self.results.find(name, setting.id, task.name) or self.run(name, setting, task, progress)

    def run(self, name: str, setting: Setting, task: Task, progress=None) -> Record:
        """Answers for every item (cached ones reused), scored; the record is kept and returned."""
        start = time.perf_counter()
        items = task.load(self.options.limit)
        prompts = self.prompts(name, task, items)
        config = {"max_new_tokens": task.max_new_tokens, "do_sample": False, "dtype": str(self.dtype),
                  "device": device_kind(self.options.device)}
        keys = [generation_key(self.fingerprint(name), setting.id, p, image_hash(item.image()), config, self.cache.code)
                for p, item in zip(prompts, items)]
        rejected_before = self.cache.rejected
        answers = self.cache.get_many(keys)
        cache_rejected = self.cache.rejected - rejected_before   # corrupt entries: regenerated below
        todo = [i for i, k in enumerate(keys) if k not in answers]
        if self.options.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(self.options.device)
        for begin in range(0, len(todo), self.options.batch_size):
            batch = todo[begin:begin + self.options.batch_size]
            generated = self._generate(name, setting, [items[i] for i in batch], [prompts[i] for i in batch],
                                       task.max_new_tokens)
            new = {keys[i]: g for i, g in zip(batch, generated)}
            self.cache.put_many(new)   # written per batch: an interrupted run loses at most one batch
            answers.update(new)
            if progress:
                progress(len(items) - len(todo) + begin + len(batch), len(items), time.perf_counter() - start)
        predictions = [answers[k].answer for k in keys]
        largest = max((answers[k] for k in keys), key=lambda g: g.kv_float_bytes)  # the largest batch's cache
        statistics = task.statistics(items, predictions)
        self._statistics[(name, setting.id, task.name)] = statistics
        if task.name not in self._weights:
            self._weights[task.name] = bootstrap_weights([task.cluster(item) for item in items],
                                                         self.options.resamples, self.options.seed)
        weights = self._weights[task.name]
        baseline = self._statistics.get((name, BASELINE.id, task.name))
        record = Record(name, setting.id, task.name, task.capability, task.primary,
                        metrics={m: stat.value() for m, stat in statistics.items()}, predictions=predictions,
                        intervals={m: list(bootstrap_interval(stat, weights)) for m, stat in statistics.items()},
                        p_values={} if setting.is_baseline or baseline is None else
                        {m: paired_p(baseline[m], stat, weights) for m, stat in statistics.items()},
                        samples=len(items), seconds=time.perf_counter() - start, generated=len(todo),
                        kv_bytes=largest.kv_bytes,
                        kv_ratio=largest.kv_bytes / largest.kv_float_bytes if largest.kv_float_bytes else None,
                        peak_memory_bytes=peak_memory_bytes(self.options.device), notes=undefined_notes(statistics),
                        judge=task.judge, cache_rejected=cache_rejected)
        return self.results.add(record)

    def _generate(self, name: str, setting: Setting, items, prompts, max_new_tokens: int) -> list[Generated]:
        torch.manual_seed(self.options.seed)
        return generate_batch(self.model(name, setting), self.processor(name), [item.image() for item in items],
                              prompts, setting.kv, max_new_tokens, self.options.device, self.dtype)

    def check_invariance(self, name: str, setting: Setting, task: Task, samples: int):
        """Regenerate the first ``samples`` items of a record alone and in a shuffled batch order (see
        :mod:`.invariance`); the result is kept on the record."""
        from .invariance import check_invariance

        record = self.evaluate(name, setting, task)
        items = list(task.load(self.options.limit))[:samples]
        prompts = self.prompts(name, task, items)

        def generate(chunk, chunk_prompts):
            return [g.answer for g in self._generate(name, setting, chunk, chunk_prompts, task.max_new_tokens)]

        result = check_invariance(generate, items, prompts, record.predictions[:len(items)], self.options.batch_size,
                                  self.options.seed)
        record.invariance = result.as_dict()
        return result
