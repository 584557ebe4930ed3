"""The run's state: parsed options, loaded models, the generation cache and every record.

The one evaluation path: the pytest suite, the model cards and any script evaluate a (model,
setting, task) through :meth:`Session.evaluate`, so they share prompts (the chat template), batching,
the generation cache, weight-quantized copies and calibration. Nothing here imports pytest.
"""

from __future__ import annotations

import gc
from dataclasses import asdict
import resource
import time
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from quant import QuantizationSummary, enable_packed_attention, quantize_model
from quant.kernels import kernel_path, use_triton

from ..metrics import SampleStats, bootstrap_interval, bootstrap_weights, higher_is_better, undefined_notes
from ..metrics.paired import PairedComparison, compare, share_interval
from .gencache import (Generated, GenerationCache, device_kind, generation_key, hub_fingerprint, image_hash,
                       model_fingerprint)
from .calibration import calibration_source
from ..tasks.data import DatasetUnavailable
from .generation import generate_batch, model_inputs
from .roofline import DecodeClock, copy_bandwidth, decode_weight_bytes, roofline
from .judges import scorers_from_options
from .families import Family, load_processor, render_prompt
from .models import ModelRef, load_pretrained, model_family, resolve_model
from ..analysis.subgroups import subgroup_flips
from ..core.options import Options, dtype_name
from ..core.records import Record, Results
from ..core.settings import BASELINE, Setting
from ..tasks import Task, has_image
from ..tasks.prompts import style_prompt, task_style


def resolve_dtype(name: str, device: str) -> torch.dtype:
    """The torch dtype of :func:`~..core.options.dtype_name`."""
    return getattr(torch, dtype_name(name, device))


def peak_memory_bytes(device: str) -> int:
    """Peak GPU memory allocated since the last reset on CUDA; the process's peak RSS on CPU."""
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def batches(todo: Sequence[int], with_image: Sequence[bool], size: int) -> Iterator[tuple[int, list[int]]]:
    """(items done before, batch) over ``todo``: questions with an image first, then text-only ones,
    a batch never mixing the two (the processor takes a batch of images or none)."""
    done = 0
    for flag in (True, False):
        group = [i for i, w in zip(todo, with_image) if w is flag]
        for begin in range(0, len(group), size):
            yield done, group[begin:begin + size]
            done += len(group[begin:begin + size])


class Session:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.refs: dict[str, ModelRef] = {name: resolve_model(name) for name in options.models}
        self.dtype = resolve_dtype(options.dtype, options.device)
        self.results = Results()
        self.statistics: dict[tuple[str, str, str], dict[str, SampleStats]] = {}
        self.weights: dict[str, np.ndarray] = {}   # bootstrap draws per task: shared by all its records
        self.clusters: dict[str, list[str]] = {}    # each item's cluster per task (an image, a pair, a set)
        self.comparisons: dict[tuple[str, str, str], dict[str, PairedComparison]] = {}   # at the default margin
        self._models: dict[tuple[str, str], object] = {}
        self._load_errors: dict[tuple[str, str], Exception] = {}
        self._weight_summaries: dict[tuple[str, str], QuantizationSummary] = {}   # measured when a model is built
        self._processors: dict[str, object] = {}
        self._families: dict[str, Family] = {}
        self._fingerprints: dict[str, str] = {}
        self._warm: set[tuple[str, str]] = set()   # model copies that generated once (engine.session.warm_up)
        self.cache = GenerationCache(options.generations_path)
        self.scorers = scorers_from_options(options.judge_url, options.judge_model, options.toxicity_model,
                                            options.cache_dir)

    # ------------------------------------------------------------ models
    def processor(self, name: str):
        if name not in self._processors:
            self._processors[name] = load_processor(self.refs[name].source, self.family(name))
        return self._processors[name]

    def family(self, name: str) -> Family:
        """The model's family (:mod:`.families`): which processor it needs and whose task prompts apply."""
        if name not in self._families:
            self._families[name] = model_family(self.refs[name])
        return self._families[name]

    def model(self, name: str, setting: Setting):
        """The float model once per name; a weight-quantized model once per (name, weight spec)."""
        key = (name, setting.weights_id)
        if key in self._load_errors:   # failed once: every later test fails at once, naming the first error
            raise self._load_errors[key]
        if key not in self._models:
            try:
                self._models[key] = self._load(name, setting)
            except Exception as error:
                self._load_errors[key] = RuntimeError(f"model {name!r} ({self.refs[name].source}) with weights "
                                                      f"{setting.weights_id} failed to load: "
                                                      f"{type(error).__name__}: {error}")
                raise self._load_errors[key] from error
        return self._models[key]

    def _load_float(self, name: str):
        model = load_pretrained(self.refs[name], self.dtype).to(self.options.device).eval()
        if use_triton(self.options.device):   # decode attention reads the packed KV cache (SDPA elsewhere)
            enable_packed_attention(model)
        return model

    def _load(self, name: str, setting: Setting):
        """The float model, or a weight-quantized one. A quantized model is built from a fresh load,
        quantized in place, after every other quantized model is freed: with pytest's ordering by
        setting, a 7B/13B model needs the float copy plus one copy being quantized, never more."""
        if setting.weights.is_float:
            return self._load_float(name)
        for key in [k for k in self._models if k[0] == name and k[1] != BASELINE.weights_id]:
            del self._models[key]
        gc.collect()
        if self.options.device.startswith("cuda"):
            torch.cuda.empty_cache()
        calibration = self.calibration(name) if setting.needs_calibration else None
        model = self._load_float(name)
        summary = quantize_model(model, setting.weights, calibration=calibration, layers=setting.weight_layers,
                                 rest=setting.weights_rest)   # mixed precision: the other layers at rest
        self._weight_summaries[(name, setting.weights_id)] = summary
        self.cache.put_measurement(self._summary_key(name, setting), asdict(summary))
        return model

    def _summary_key(self, name: str, setting: Setting) -> str:
        calibration = self.calibration_source(name) if setting.needs_calibration else ""
        return "weights:" + "\0".join([self.fingerprint(name), setting.weights_id, str(self.dtype),
                                        device_kind(self.options.device), calibration])

    def weight_summary(self, name: str, setting: Setting) -> QuantizationSummary | None:
        """What quantizing the weights stored, measured when the model was built: in this run, else
        as stored beside the cached answers, else by building it now. So a record whose answers all
        come from the cache still carries its proof of compression."""
        if setting.weights.is_float:
            return None
        key = (name, setting.weights_id)
        if key not in self._weight_summaries:
            stored = self.cache.get_measurement(self._summary_key(name, setting))
            if stored is not None:
                self._weight_summaries[key] = QuantizationSummary(**stored)
            else:
                self.model(name, setting)
        return self._weight_summaries[key]

    def calibration_source(self, name: str) -> str:
        """Where AWQ's calibration activations come from for this model (``--lvlm-calibration``)."""
        return calibration_source(self.options.calibration, self.refs[name].source)

    def calibration(self, name: str) -> list[dict]:
        """AWQ calibration batch: never an evaluated item. ``shapes``: shapes-world training examples
        (what the embedded models were trained on); ``coco``: the first COCO-Caption2017 *test* images
        (the coco_caption task evaluates val) with the caption prompt. One batch, whatever
        ``--lvlm-batch-size`` is, so the quantized weights never depend on it."""
        from .calibration import calibration_examples

        images, questions = calibration_examples(self.calibration_source(name))
        return [dict(model_inputs(self.processor(name), images, [self.prompt(name, q) for q in questions],
                                  self.options.device, self.dtype))]

    def fingerprint(self, name: str) -> str:
        if name not in self._fingerprints:
            ref = self.refs[name]
            self._fingerprints[name] = (model_fingerprint(ref.source, memo=self.cache) if ref.is_local
                                        else hub_fingerprint(ref.source))
        return self._fingerprints[name]

    def prompt(self, name: str, question: str, with_image: bool = True) -> str:
        """The question in the checkpoint's own chat template (an image part first, as LLaVA's evals)."""
        return render_prompt(self.processor(name), question, with_image)

    def prompts(self, name: str, task: Task, items) -> list[str]:
        """The chat-template prompt of each item: the task's question text, as the model family's published
        evaluation words it (:mod:`..tasks.prompts`), in the model's template."""
        style = self.family(name).prompts
        return [self.prompt(name, style_prompt(task, item, style), has_image(item)) for item in items]

    # ------------------------------------------------------------ generation
    def evaluate(self, name: str, setting: Setting, task: Task, progress=None) -> Record:
        """The record of (model, setting, task): reused if this run already has it. Evaluate
        the baseline first: a setting's paired tests compare against it."""
        found = self.results.find(name, setting.id, task.name)
        if found is not None:
            return found
        with self.cache.claim(name, setting.id, task.name):   # xdist: one worker generates, the others read
            return self.run(name, setting, task, progress)

    def run(self, name: str, setting: Setting, task: Task, progress=None) -> Record:
        """Answers for every item (cached ones reused), scored; the record is kept and returned."""
        start = time.perf_counter()
        items = task.load(self.options.limit)
        if not items:
            limit = self.options.limit
            raise DatasetUnavailable(f"task {task.name!r}: this copy of its dataset holds no item the task evaluates"
                                     + (f" among the rows --lvlm-limit {limit} reads" if limit else ""))
        prompts = self.prompts(name, task, items)
        config = {"max_new_tokens": task.max_new_tokens, "do_sample": False, "dtype": str(self.dtype),
                  "device": device_kind(self.options.device), "kernels": kernel_path(self.options.device)}
        if setting.needs_calibration:   # the weights depend on what they were calibrated on
            config["calibration"] = self.calibration_source(name)
        keys = [generation_key(self.fingerprint(name), setting.id, p, image_hash(item.image()), config, self.cache.code)
                for p, item in zip(prompts, items)]
        rejected_before = self.cache.rejected
        answers = self.cache.get_many(keys)
        cache_rejected = self.cache.rejected - rejected_before   # corrupt entries: regenerated below
        todo = [i for i, k in enumerate(keys) if k not in answers]
        if todo:
            self.warm_up(name, setting, items[todo[0]], prompts[todo[0]])
        if self.options.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(self.options.device)
        clock = DecodeClock()
        for begin, batch in batches(todo, [has_image(items[i]) for i in todo], self.options.batch_size):
            generated = self.generate(name, setting, [items[i] for i in batch], [prompts[i] for i in batch],
                                       task.max_new_tokens, clock)
            new = {keys[i]: g for i, g in zip(batch, generated)}
            self.cache.put_many(new)   # written per batch: an interrupted run loses at most one batch
            answers.update(new)
            if progress:
                progress(len(items) - len(todo) + begin + len(batch), len(items), time.perf_counter() - start)
        predictions = [answers[k].answer for k in keys]
        largest = max((answers[k] for k in keys), key=lambda g: g.kv_float_bytes)  # the largest batch's cache
        statistics = task.statistics(items, predictions, self.scorers)
        self.statistics[(name, setting.id, task.name)] = statistics
        if task.name not in self.weights:
            self.clusters[task.name] = [task.cluster(item) for item in items]
            self.weights[task.name] = bootstrap_weights(self.clusters[task.name], self.options.resamples,
                                                         self.options.seed)
        baseline = self.statistics.get((name, BASELINE.id, task.name))
        comparisons = {} if setting.is_baseline or baseline is None else {
            m: self.compare(task.name, baseline[m], stat, m, self.options.margin) for m, stat in statistics.items()}
        self.comparisons[(name, setting.id, task.name)] = comparisons
        base_record = self.results.find(name, BASELINE.id, task.name)
        flips = (subgroup_flips(items, base_record.predictions, predictions, task.subgroups)
                 if task.subgroups and base_record is not None and not setting.is_baseline else [])
        summary = self.weight_summary(name, setting)
        line = roofline(decode_weight_bytes(self.model(name, setting)), clock.kv_byte_steps, clock.steps,
                        clock.seconds, copy_bandwidth(self.options.device)) if clock.steps else None
        return self.results.add(Record(
            name, setting.id, task.name, task.capability, task.primary,
            metrics={m: stat.value() for m, stat in statistics.items()}, predictions=predictions,
            items=[str(item.id) for item in items], prompts=prompts, prompt_style=task_style(task, self.family(name).prompts),
            intervals={m: list(self.interval(task.name, stat)) for m, stat in statistics.items()},
            p_values={m: c.p_change for m, c in comparisons.items()},
            paired={m: c.as_dict() for m, c in comparisons.items() if higher_is_better(m) is not None},
            samples=len(items), clusters=len(set(self.clusters[task.name])),
            seconds=time.perf_counter() - start, generated=len(todo),
            kv_bytes=largest.kv_bytes,
            kv_ratio=largest.kv_bytes / largest.kv_float_bytes if largest.kv_float_bytes else None,
            peak_memory_bytes=peak_memory_bytes(self.options.device), notes=undefined_notes(statistics),
            details={m: dict(stat.details) for m, stat in statistics.items() if stat.details},
            judge=task.scored_by(self.scorers), cache_rejected=cache_rejected,
            calibration=self.calibration_source(name) if setting.needs_calibration else "",
            subgroup_flips=flips, code=self.cache.code, fingerprint=self.fingerprint(name),
            weight_bytes=summary.bytes_after if summary else 0,
            weight_bytes_expected=summary.bytes_expected if summary else 0,
            weight_ratio=summary.ratio if summary else None,
            weight_bytes_by_part=dict(summary.bytes_by_part) if summary else {}, roofline=line,
            prefill=self.prefill_summary(name, setting, task, clock, whole=len(todo) == len(items))))

    def interval(self, task: str, stats: SampleStats) -> tuple[float, float]:
        """95% interval of a metric: Wilson on the clusters' effective sample size for a share of 0/1
        outcomes (:func:`~.metrics.paired.share_interval`), the cluster-bootstrap percentile interval
        otherwise. (Not BCa: for the MaxSkew excess, whose resamples are biased low because a repeated set
        repeats its permutations, BCa's bias correction covered a true 0 in only 82-85% of null runs, the
        percentile interval in 99-100%; tests/test_max_skew_null.py.)"""
        if stats.binary:
            return share_interval(stats, self.clusters[task])
        return bootstrap_interval(stats, self.weights[task])

    def compare(self, task: str, baseline: SampleStats, stats: SampleStats, metric: str,
                 margin: float) -> PairedComparison:
        """The paired analysis (:mod:`.metrics.paired`) of a setting's metric against the baseline's."""
        return compare(baseline, stats, higher_is_better(metric) is not False, margin, self.clusters[task],
                       self.weights[task], self.options.seed)

    def generate(self, name: str, setting: Setting, items, prompts, max_new_tokens: int,
                 clock: DecodeClock | None = None) -> list[Generated]:
        torch.manual_seed(self.options.seed)
        return generate_batch(self.model(name, setting), self.processor(name), [item.image() for item in items],
                              prompts, setting.kv, max_new_tokens, self.options.device, self.dtype,
                              kv_layers=setting.kv_layers, kv_rest=setting.kv_rest, clock=clock,
                              evict=setting.evict, vtok=setting.vtok)

    def warm_up(self, name: str, setting: Setting, item, prompt: str) -> None:
        """One untimed one-token answer the first time a model copy generates (its first forward pays
        one-off costs: allocator growth, kernel selection, lazy initialisation), so that the first setting
        timed is not charged for them and prefill times compare across settings."""
        key = (name, setting.weights_id)
        if key not in self._warm:
            self._warm.add(key)
            generate_batch(self.model(name, setting), self.processor(name), [item.image()], [prompt], setting.kv, 1,
                           self.options.device, self.dtype, kv_layers=setting.kv_layers, kv_rest=setting.kv_rest)

    def prefill_summary(self, name: str, setting: Setting, task: Task, clock: DecodeClock, whole: bool
                        ) -> dict | None:
        """Time to first token and tokens kept, as measured when this record's answers were generated:
        in this run (then stored beside the answers, when ``whole``: every item was generated now), else as
        stored by the run that generated them all; a run that regenerated a few answers (a corrupt or
        interrupted cache) keeps the stored measurement of the whole set where there is one."""
        key = "prefill:" + "\0".join([self.fingerprint(name), setting.id, task.name, str(self.dtype),
                                       device_kind(self.options.device), str(self.options.batch_size)])
        measured = clock.prefill()
        stored = None if whole and measured is not None else self.cache.get_measurement(key)
        if stored is not None:
            return stored
        if measured is not None:
            self.cache.put_measurement(key, measured)
        return measured
