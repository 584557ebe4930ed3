"""Records of a run and what is derived from them alone (flips, the JSON form), so the
controller of an xdist run rebuilds everything from the records its workers send."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..metrics import higher_is_better, normalize_answer
from .settings import BASELINE, Setting


@dataclass
class Record:
    """One (model, setting, task) evaluated over its dataset."""

    model: str
    setting: str
    task: str
    capability: str
    primary: str
    metrics: dict[str, float]
    predictions: list[str] = field(repr=False)
    items: list[str] = field(default_factory=list, repr=False)     # each prediction's item id
    prompts: list[str] = field(default_factory=list, repr=False)   # ... and the prompt the model was given
    prompt_style: str = ""   # whose task prompts the model was asked with (tasks.prompts), as the report names it
    intervals: dict[str, list[float]] = field(default_factory=dict)   # 95% bootstrap CI per metric
    p_values: dict[str, float] = field(default_factory=dict)          # paired test vs the baseline
    samples: int = 0
    clusters: int = 0    # independent units the statistics resample and test (images, pairs, sets)
    seconds: float = 0.0
    generated: int = 0   # samples generated now (the rest came from the cache)
    kv_bytes: int = 0    # KV cache of the largest batch, as stored (packed)
    kv_ratio: float | None = None    # ... over the same tokens in the float dtype: what the setting saved
    peak_memory_bytes: int = 0
    notes: dict[str, str] = field(default_factory=dict)   # metric -> why its value is a convention (0/0)
    details: dict[str, dict] = field(default_factory=dict)   # metric -> its own test's numbers (SampleStats.details)
    judge: str = ""      # the task's judge, where its official scorer has one (HallusionBench, MM-Vet)
    cache_rejected: int = 0   # cached answers found corrupt (checksum or code hash mismatch) and regenerated
    invariance: dict | None = None   # --lvlm-check-invariance: answers that changed alone / shuffled
    calibration: str = ""   # AWQ's calibration source (shapes, coco); empty when nothing was calibrated
    published: list[dict] = field(default_factory=list)   # full FP16 baselines beside published scores
    noninferiority: dict[str, dict] = field(default_factory=dict)   # metric -> {"margin": δ, "p": one-sided p, "method"}
    paired: dict[str, dict] = field(default_factory=dict)   # metric -> metrics.paired.PairedComparison.as_dict()
    interaction: dict[str, dict] = field(default_factory=dict)   # weights+KV settings: metric -> Interaction.as_dict()
    subgroup_flips: list[dict] = field(default_factory=list)   # social tasks: flips per attribute value
    code: str = ""          # hash of the generating and compressing code (the generation cache's)
    fingerprint: str = ""   # the model's checkpoint fingerprint
    weight_bytes: int = 0            # quantized linears as stored (0: weights not quantized)
    weight_bytes_expected: int = 0   # ... their closed form from the spec and shapes (quant.weights)
    weight_ratio: float | None = None    # ... over the same linears in the float dtype
    # --weight-targets: language / vision / projector -> [float bytes, stored bytes]
    weight_bytes_by_part: dict[str, list[int]] = field(default_factory=dict)
    roofline: dict | None = None   # decode steps timed now: bytes per step, GB/s, share of copy (engine.roofline)
    # the prefill, as measured when the answers were generated (engine.roofline.DecodeClock.prefill):
    # {"ttft_seconds": the batches' mean time to first token, "prefill_seconds_per_prompt": their
    #  times to first token over their prompts, "prompts", "batches": what was timed,
    #  "kept_by_layer": per decoder layer, the mean share of the prompt's KV entries it kept}
    prefill: dict | None = None

    @property
    def kv_kept(self) -> float | None:
        """The share of the prompt's KV entries kept, mean over layers (1.0 unless tokens were dropped)."""
        kept = (self.prefill or {}).get("kept_by_layer")
        return sum(kept) / len(kept) if kept else None

    @property
    def key(self) -> tuple[str, str, str]:
        return self.model, self.setting, self.task

    @property
    def parsed_setting(self) -> Setting:
        """The setting this record's id names (parsed once per id)."""
        return Setting.from_id(self.setting)

    @property
    def is_baseline(self) -> bool:
        return self.setting == BASELINE.id

    def as_dict(self, answers: bool = True) -> dict:
        """Plain JSON values (numpy scalars of the statistics become Python numbers): what the JSON
        report writes and what crosses from an xdist worker to the controller (execnet takes no numpy)."""
        entry = json.loads(json.dumps(asdict(self), default=_plain))
        if not answers:
            for key in ANSWER_FIELDS:
                entry.pop(key)
        return entry


ANSWER_FIELDS = ("predictions", "items", "prompts")


def keyed_answers(record: Record) -> list[dict]:
    """Each item's id, prompt and answer together: what the JSON report holds with
    ``--lvlm-report-answers yes``, so a reader can audit what the model was asked."""
    return [{"id": item, "prompt": prompt, "answer": answer}
            for item, prompt, answer in zip(record.items, record.prompts, record.predictions)]


def _plain(value):
    """numpy scalars (np.int64, np.bool_) as Python ones; np.float64 is a float already."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"a record holds {type(value).__name__}, not a JSON value: {value!r}")


def flips(record: Record, baseline: Record) -> float:
    """Share of samples whose (normalised) answer differs from the baseline's."""
    changed = [normalize_answer(a) != normalize_answer(b) for a, b in zip(record.predictions, baseline.predictions)]
    return sum(changed) / len(changed) if changed else 0.0


class Results:
    """The records of a run, one per (model, setting, task), iterated in the grid's order whatever
    order the tests ran in (pytest-randomly, ``--ff``, xdist): models, settings and tasks as ``order``
    gives them (the plugin: the grid's, and the task registry's); anything not listed after, by name."""

    def __init__(self, records: list[Record] | None = None,
                 order: tuple[Sequence[str], ...] = ((), (), ())) -> None:
        self._records: dict[tuple[str, str, str], Record] = {}
        self._rank = [{name: i for i, name in enumerate(names)} for names in (*order, (), (), ())[:3]]
        for record in records or []:
            self.add(record)

    def _key(self, record: Record) -> tuple:
        models, settings, tasks = self._rank
        return (models.get(record.model, len(models)), record.model, settings.get(record.setting, len(settings)),
                record.setting, tasks.get(record.task, len(tasks)), record.task)

    def add(self, record: Record) -> Record:
        """Keep ``record`` unless the run has one for its key already; the one kept."""
        return self._records.setdefault(record.key, record)

    def replace(self, record: Record) -> Record:
        """Keep ``record`` in place of the one with its key (a test's additions: :mod:`..engine.reruns`)."""
        self._records[record.key] = record
        return record

    def find(self, model: str, setting: str, task: str) -> Record | None:
        return self._records.get((model, setting, task))

    def baseline_of(self, record: Record) -> Record | None:
        base = self.find(record.model, BASELINE.id, record.task)
        return None if base is record else base

    def flips(self, record: Record) -> float | None:
        base = self.baseline_of(record)
        return None if base is None else flips(record, base)

    def __iter__(self):
        return iter(sorted(self._records.values(), key=self._key))

    def __len__(self) -> int:
        return len(self._records)

    def as_json(self, answers: bool = False) -> list[dict]:
        return [{**r.as_dict(answers=False), **({"answers": keyed_answers(r)} if answers else {}),
                 "flips": self.flips(r),
                 "samples_per_second": r.generated / r.seconds if r.generated and r.seconds else None}
                for r in self]


def worsening(metric: str, before: float, after: float) -> float:
    """How much worse ``after`` is than ``before`` (negative: better), by the metric's direction."""
    return before - after if higher_is_better(metric) else after - before
