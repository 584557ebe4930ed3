"""What a test adds to a record after its evaluation, each a new record in place of the old one (a
:class:`~..core.records.Record` is built once and never mutated): the non-inferiority test at the
margins the thresholds give, the interaction of a weights+KV setting with its single parts, the
published-baseline check of a full FP16 record, and the batch-invariance re-generation. They read the
session's kept statistics (:class:`~.session.Session`) and evaluate what they need through it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ..analysis.interaction import interaction
from ..analysis.invariance import Invariance, check_invariance
from ..analysis.published import check_published
from ..core.records import Record
from ..core.settings import BASELINE, Setting
from ..metrics import higher_is_better
from ..tasks import Task, has_image
from .session import Session


def attach_noninferiority(session: Session, record: Record, margins: Mapping[str, float]) -> Record:
    """The record with the one-sided non-inferiority p-value of each directed metric at its margin
    (:mod:`..metrics.paired`), paired with this run's baseline; its paired analysis is the one at that
    margin. The baseline's record, or one without kept statistics, comes back as it is."""
    key = record.key
    baseline = session.statistics.get((record.model, BASELINE.id, record.task))
    statistics = session.statistics.get(key)
    if record.is_baseline or baseline is None or statistics is None:
        return record
    noninferiority, paired = dict(record.noninferiority), dict(record.paired)
    for metric, margin in margins.items():
        if higher_is_better(metric) is None:
            continue
        found = session.comparisons[key].get(metric)
        if found is None or margin != session.options.margin:
            found = session.compare(record.task, baseline[metric], statistics[metric], metric, margin)
        noninferiority[metric] = {"margin": margin, "p": found.p_noninferior, "method": found.method}
        paired[metric] = found.as_dict()
    return session.results.replace(replace(record, noninferiority=noninferiority, paired=paired))


def attach_interaction(session: Session, record: Record, task: Task, margins: Mapping[str, float],
                       progress=None) -> Record:
    """For a weights+KV setting, the record with whether its drop is the sum of the single drops
    (:mod:`..analysis.interaction`, "additive" within each metric's non-inferiority margin); the single
    settings are evaluated (or found) here. Other settings' records come back as they are."""
    setting = record.parsed_setting
    if setting.weights.is_float or setting.kv.is_float:
        return record
    parts = [BASELINE, setting.weights_part, setting.kv_part, setting]
    for part in parts:
        session.evaluate(record.model, part, task, progress)
    stats = [session.statistics[(record.model, part.id, task.name)] for part in parts]
    found = {metric: interaction(metric, *(s[metric] for s in stats), session.weights[task.name],
                                 margins.get(metric, session.options.margin), session.clusters[task.name])
             for metric in record.metrics}
    return session.results.replace(replace(record, interaction={
        **record.interaction, **{metric: f.as_dict() for metric, f in found.items() if f is not None}}))


def attach_published(session: Session, baseline: Record) -> tuple[Record, list[str]]:
    """A full-dataset FP16 record (with the other baselines of this model) against the published
    scores (:mod:`..analysis.published`): the record with its checks, and the breaches to fail on
    when ``--lvlm-published-check fail``."""
    options = session.options
    if options.limit is not None or options.published_check == "off":
        return baseline, []
    baselines = {r.task: r.metrics for r in session.results if r.model == baseline.model and r.is_baseline}
    checks = check_published(session.refs[baseline.model].source, baseline.task, baselines,
                             options.published_tolerance, baseline.judge)
    baseline = session.results.replace(replace(baseline, published=[check.as_dict() for check in checks]))
    if options.published_check != "fail":
        return baseline, []
    return baseline, [f"FP16 baseline of {baseline.model} drifted from the published score: {check.message()}"
                      for check in checks if check.drifted]


def attach_invariance(session: Session, name: str, setting: Setting, task: Task,
                      samples: int) -> tuple[Record, Invariance]:
    """Regenerate the first ``samples`` items of a record alone and in a shuffled batch order (see
    :mod:`..analysis.invariance`): the record with the result, and the result."""
    record = session.evaluate(name, setting, task)
    items = list(task.load(session.options.limit))[:samples]
    prompts = session.prompts(name, task, items)

    def generate(chunk, chunk_prompts):
        return [g.answer for g in session.generate(name, setting, chunk, chunk_prompts, task.max_new_tokens)]

    result = check_invariance(generate, items, prompts, record.predictions[:len(items)], session.options.batch_size,
                              session.options.seed, [has_image(item) for item in items])
    return session.results.replace(replace(record, invariance=result.as_dict())), result
