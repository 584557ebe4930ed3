"""What a run reports: per model a degradation table (rows capability / dataset / metric,
columns the baseline then each setting, cells ``value (Δ)`` with significance marks, plus
the flips per setting), the JSON report and the metric-vs-bits plot.

Files are written atomically (:mod:`.files`), so a crash never leaves half a report."""

from __future__ import annotations

import platform

from tabulate import tabulate

from quant.kernels import kernel_path

from ..metrics import benjamini_hochberg, direction_mark, higher_is_better
from ..metrics.paired import MIN_CHANGED_CLUSTERS, PairedComparison
from ..analysis.noninferiority import ALPHA as NONINFERIORITY_ALPHA, verdicts
from ..analysis.proof import compression_notes
from ..analysis.sensitivity import sensitivity_lines
from ..analysis.subgroups import describe
from ..analysis.published import PublishedCheck
from ..core.records import Record, Results, flips
from ..core.settings import BASELINE
from ..tasks.prompts import describe_style

SIGNIFICANCE = 0.05
FEW_CLUSTERS = 30   # below this many independent units a task's cells carry † (intervals and tests rest on few)


def machine_info(options) -> dict:
    import torch
    import transformers

    return {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
            "transformers": transformers.__version__, "device": options.device,
            "dtype": options.dtype_name,
            "quant_kernels": kernel_path(options.device)}   # triton, triton-interpreter or torch


def adjusted_p_values(records: list[Record]) -> dict[tuple[str, str, str], float]:
    """Benjamini-Hochberg over every paired test of one model's table: (setting, task, metric) -> p."""
    tests = [((r.setting, r.task, metric), p) for r in records for metric, p in r.p_values.items()]
    return dict(zip([key for key, _ in tests], benjamini_hochberg([p for _, p in tests])))


def _per_model(results: Results) -> list[tuple[str, list[Record], dict, dict]]:
    """(model, its records, its adjusted paired p-values, its verdicts), each model's table one family."""
    out = []
    for model in dict.fromkeys(r.model for r in results):
        records = [r for r in results if r.model == model]
        adjusted = adjusted_p_values(records)
        out.append((model, records, adjusted, verdicts(records, adjusted, SIGNIFICANCE)))
    return out



def delta_interval(record: Record, metric: str) -> tuple[float, float] | None:
    """The paired 95% interval of Δ = setting − fp16 (from the worsening's, :mod:`.metrics.paired`)."""
    paired = record.paired.get(metric)
    if paired is None:
        return None
    if higher_is_better(metric):
        return -paired["high"] + 0.0, -paired["low"] + 0.0
    return paired["low"], paired["high"]


def few_clusters(record: Record) -> bool:
    return 0 < record.clusters < FEW_CLUSTERS


def _cell(record: Record, metric: str, base: Record | None, adjusted: dict, verdict: str | None = None,
          interval: bool = False) -> str:
    value = record.metrics[metric]
    if base is None:  # the baseline column carries the 95% interval
        low, high = record.intervals.get(metric, (value, value))
        return f"{value:.3f} ±{(high - low) / 2:.3f}" + ("†" if few_clusters(record) else "")
    delta = value - base.metrics[metric]
    bounds = delta_interval(record, metric) if interval else None
    paired = f" [{bounds[0]:+.3f}, {bounds[1]:+.3f}]" if bounds else ""
    return f"{value:.3f} ({delta:+.3f}{paired}{_mark(record, metric, base, adjusted, verdict)})"


def user_properties_of(record: Record, baseline: Record) -> list[tuple[str, object]]:
    """The test's record as pytest ``user_properties`` (JUnit XML ``<property>``, pytest-html,
    pytest-json-report): its primary metric, the change vs fp16 with the paired 95% interval, the
    unadjusted p-values and this test's own verdict. The report's table adjusts over the whole table
    (Benjamini-Hochberg), so a cell there can be less decided than this test alone."""
    metric = record.primary
    found = [("lvlm_model", record.model), ("lvlm_setting", record.setting), ("lvlm_task", record.task),
             ("lvlm_metric", metric), ("lvlm_value", round(record.metrics[metric], 6)),
             ("lvlm_samples", record.samples), ("lvlm_clusters", record.clusters),
             ("lvlm_generated", record.generated)]
    if record is baseline or record.is_baseline:
        low, high = record.intervals.get(metric, (record.metrics[metric],) * 2)
        return _plain_values(found + [("lvlm_ci95", f"[{low:.4f}, {high:.4f}]")])
    found += [("lvlm_fp16", round(baseline.metrics[metric], 6)),
              ("lvlm_delta", round(record.metrics[metric] - baseline.metrics[metric], 6))]
    bounds = delta_interval(record, metric)
    if bounds:
        found.append(("lvlm_delta_ci95", f"[{bounds[0]:+.4f}, {bounds[1]:+.4f}]"))
    if metric in record.p_values:
        found.append(("lvlm_p_change", round(record.p_values[metric], 6)))
    test = record.noninferiority.get(metric)
    if test:
        alone = Record(**{**record.__dict__, "noninferiority": {metric: test}})
        verdict = verdicts([alone, baseline], record.p_values, SIGNIFICANCE)[(record.setting, record.task, metric)]
        found += [("lvlm_margin", test["margin"]), ("lvlm_p_noninferior", round(test["p"], 6)),
                  ("lvlm_verdict", verdict)]
    agreement = 1 - flips(record, baseline)
    found += [("lvlm_agreement", round(agreement, 6))]
    found += [(name, round(value, 6)) for name, value in (("lvlm_kv_ratio", record.kv_ratio),
                                                         ("lvlm_weight_ratio", record.weight_ratio)) if value]
    return _plain_values(found)


def _plain_values(pairs: list[tuple[str, object]]) -> list[tuple[str, object]]:
    """numpy scalars as Python ones: properties cross from xdist workers (execnet takes no numpy)."""
    return [(name, value.item() if hasattr(value, "item") else value) for name, value in pairs]


def tables(results: Results, options, full: bool = False, width: int = 120) -> list[str]:
    """One rendered report per model: by default each dataset's primary metric with settings as
    rows, wrapped to ``width`` columns; ``full`` (pytest -v): every metric and per-dataset row
    (flips, bytes, memory, invariance), settings as columns."""
    out = []
    for model, records, adjusted, verdict in _per_model(results):
        body = (_full_table(results, records, adjusted, verdict) if full
                else _compact_table(records, width, adjusted, verdict))
        out.append(_header(model, options, full) + "\n" + body + _footer(records, verdict))
    return out


def _settings(records: list[Record]) -> list[str]:
    return [BASELINE.id] + [s for s in dict.fromkeys(r.setting for r in records) if s != BASELINE.id]


def _header(model: str, options, full: bool) -> str:
    what = ("every metric, * primary; fp16 column: value ±95% CI half-width; other columns: value (Δ vs fp16 "
            "[paired 95% CI])" if full else
            "each dataset's primary metric (↑/↓ direction): fp16 row value, other rows Δ vs fp16\n(pytest -v: "
            "every metric, paired intervals, flips, bytes, memory)")
    return (f"lvlmbench: {model} ({machine_info(options)['dtype']} baseline on {options.device}, quant/ kernels: "
            f"{kernel_path(options.device)})\n{what}\n▲/▼ significantly better/worse than fp16 (paired, clustered "
            f"by image/pair/set: score test for accuracies,\n    swap permutation otherwise; Benjamini-Hochberg over "
            f"the table at {SIGNIFICANCE})\n≈ non-inferior: the paired 95% interval of the worsening lies below the "
            f"margin (default {options.margin};\n    one-sided {NONINFERIORITY_ALPHA}, Benjamini-Hochberg)\n"
            f"without ≈ or ▼: inconclusive; † fewer than {FEW_CLUSTERS} clusters: intervals and tests rest on few units")


def _mark(record: Record, metric: str, base: Record, adjusted: dict, verdict: str | None) -> str:
    delta = record.metrics[metric] - base.metrics[metric]
    better = higher_is_better(metric)
    mark = ""
    if (better is not None and abs(delta) > 1e-12
            and adjusted.get((record.setting, record.task, metric), 1.0) < SIGNIFICANCE):
        mark = "▲" if (delta > 0) == better else "▼"
    return mark + ("≈" if verdict == "non-inferior" else "")


def _compact_table(records: list[Record], width: int, adjusted: dict, verdict: dict) -> str:
    """Settings as rows, datasets as columns (primary metric), with the setting's KV and weight
    bytes over float, its agreement with fp16 (the share of answers identical to fp16's, EffiVLM-Bench's
    "loyalty"), the share of the prompt's KV entries kept and the prefill time per prompt (time to first
    token over the batch's prompts), each the mean over the datasets; dataset columns wrap into blocks that fit ``width``."""
    settings, tasks = _settings(records), list(dict.fromkeys(r.task for r in records))
    by_key = {(r.setting, r.task): r for r in records}

    def mean(values, digits: int = 3):
        values = [v for v in values if v is not None]
        return f"{sum(values) / len(values):.{digits}f}" if values else ""

    def cell(setting: str, task: str) -> str:
        record, base = by_key.get((setting, task)), by_key.get((BASELINE.id, task))
        if record is None:
            return ""
        metric = record.primary
        if record is base or base is None:
            return f"{record.metrics[metric]:.3f}"
        return (f"{record.metrics[metric] - base.metrics[metric]:+.3f}"
                + _mark(record, metric, base, adjusted, verdict.get((setting, task, metric))))

    def agreement(setting: str, task: str) -> float | None:
        record, base = by_key.get((setting, task)), by_key.get((BASELINE.id, task))
        return None if record is None or base is None or record is base else 1 - flips(record, base)

    def prefill(setting: str, task: str) -> float | None:
        measured = by_key[(setting, task)].prefill if (setting, task) in by_key else None
        return measured["prefill_seconds_per_prompt"] * 1000 if measured else None

    sizes = {s: [mean(by_key[(s, t)].kv_ratio for t in tasks if (s, t) in by_key),
                 mean(by_key[(s, t)].weight_ratio for t in tasks if (s, t) in by_key),
                 mean(agreement(s, t) for t in tasks),
                 mean(by_key[(s, t)].kv_kept for t in tasks if (s, t) in by_key),
                 mean((prefill(s, t) for t in tasks), 2)] for s in settings}
    primary = {r.task: r.primary for r in records}
    flagged = {r.task for r in records if few_clusters(r)}
    columns = [(f"{t}{'†' * (t in flagged)}\n{primary[t]}{direction_mark(primary[t])}", [cell(s, t) for s in settings])
               for t in tasks]
    def render(block: list[tuple[str, list[str]]]) -> str:
        rows = [[s, *sizes[s], *(cells[i] for _, cells in block)] for i, s in enumerate(settings)]
        return tabulate(rows, headers=["setting", "KV/float", "W/float", "agree", "kept", "prefill ms",
                                       *(h for h, _ in block)], disable_numparse=True)

    rendered, block = [], []
    for column in columns:   # greedy: a block takes dataset columns while it still fits
        if block and max(len(line) for line in render(block + [column]).splitlines()) > width:
            rendered.append(render(block))
            block = []
        block.append(column)
    rendered.append(render(block))
    return "\n\n".join(rendered)


def _full_table(results: Results, records: list[Record], adjusted: dict, verdict: dict) -> str:
    settings = _settings(records)
    by_key = {(r.task, r.setting): r for r in records}
    rows = []
    for task in dict.fromkeys(r.task for r in records):
        sample = next(r for r in records if r.task == task)
        base = by_key.get((task, BASELINE.id))
        for metric in sample.metrics:
            row = [sample.capability, task, metric + (" *" if metric == sample.primary else "")]
            for setting in settings:
                record = by_key.get((task, setting))
                row.append("" if record is None else _cell(record, metric, None if record is base else base, adjusted,
                                                           verdict.get((setting, task, metric)), interval=True))
            rows.append(row)
        present = [by_key.get((task, s)) for s in settings]
        churn = [None if r is None else results.flips(r) for r in present]
        ratios = [None if r is None else r.kv_ratio for r in present]
        rows.append(["", task, "flips vs fp16"] + ["" if f is None else f"{f:.3f}" for f in churn])
        rows.append(["", task, "KV bytes / float"] + ["" if k is None else f"{k:.3f}" for k in ratios])
        if any(r is not None and r.weight_ratio is not None for r in present):
            rows.append(["", task, "weight bytes / float"] + ["" if r is None or r.weight_ratio is None
                                                              else f"{r.weight_ratio:.3f}" for r in present])
        rows.append(["", task, "peak memory MiB"] + ["" if r is None else f"{r.peak_memory_bytes / 2**20:.0f}"
                                                     for r in present])
        if any(r is not None and r.invariance for r in present):
            rows.append(["", task, "changed alone / shuffled"] + [
                "" if r is None or not r.invariance else
                f"{r.invariance['share_changed_batch_1']:.3f} / {r.invariance['share_changed_shuffled']:.3f}"
                for r in present])
    return tabulate(rows, headers=["capability", "dataset", "metric", *settings], disable_numparse=True)


def power_summary(records: list[Record], verdict: dict) -> list[dict]:
    """Per task, the primary metric's smallest detectable drop (80% power, two-sided 0.05, the median over
    the compressed settings at their churn; None when no answer changed) and, per inconclusive primary
    cell, the items that would settle it (:meth:`~.metrics.paired.PairedComparison.items_to_settle`;
    None when more items cannot, e.g. a corpus metric under its changed-cluster gate)."""
    out = []
    for task in dict.fromkeys(r.task for r in records):
        cells = [(r, PairedComparison.from_dict(r.paired[r.primary])) for r in records
                 if r.task == task and r.primary in r.paired]
        if not cells:
            continue
        record = cells[0][0]
        found = sorted(d for _, c in cells if (d := c.detectable(SIGNIFICANCE)) is not None)
        out.append({"task": task, "metric": record.primary, "samples": record.samples, "clusters": record.clusters,
                    "detectable_drop": found[len(found) // 2] if found else None,
                    "inconclusive": [{"setting": r.setting, "worsening": c.worsening, "low": c.low, "high": c.high,
                                      "changed_clusters": c.changed_clusters, "method": c.method,
                                      "reads": "≈" if c.z_margin < 0 else "▼",
                                      "items_needed": c.items_to_settle(r.samples, NONINFERIORITY_ALPHA, SIGNIFICANCE)}
                                     for r, c in cells if verdict.get((r.setting, task, r.primary)) == "inconclusive"]})
    return out


def power_lines(summary: list[dict]) -> list[str]:
    out = []
    for entry in summary:
        smallest = entry["detectable_drop"]
        out.append(f"  {entry['task']} {entry['metric']}: {entry['samples']} items, {entry['clusters']} clusters: "
                   f"smallest detectable drop " + (f"{smallest:.3f}" if smallest is not None else "n/a (no answer changed)"))
        for cell in entry["inconclusive"]:
            what = (f"~{cell['items_needed']} items would read {cell['reads']} if it held" if cell["items_needed"]
                    else f"{cell['changed_clusters']} changed clusters, a corpus metric needs {MIN_CHANGED_CLUSTERS}"
                    if cell["method"] == "bootstrap" else "more items would not settle it at this estimate")
            out.append(f"    {cell['setting']}: inconclusive (worsening {cell['worsening']:+.3f} "
                       f"[{cell['low']:+.3f}, {cell['high']:+.3f}]); {what}")
    return out


def token_drop_lines(records: list[Record]) -> list[str]:
    """Per eviction/pruning setting: the share of the prompt's KV entries each decoder layer kept and the
    time to first token (per batch and per prompt), beside fp16's (means over the datasets, as measured
    when the answers were generated)."""
    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    def timed(rows: list[Record], key: str) -> float | None:
        return mean([r.prefill[key] * 1000 for r in rows if r.prefill])

    base = [r for r in records if r.is_baseline]
    lines = []
    for setting in dict.fromkeys(r.setting for r in records):
        mine = [r for r in records if r.setting == setting and r.prefill and r.prefill.get("kept_by_layer")]
        if not mine or not mine[0].parsed_setting.drops_tokens:
            continue
        layers = [mean([r.prefill["kept_by_layer"][i] for r in mine]) for i in range(len(mine[0].prefill["kept_by_layer"]))]
        beside = [r.prefill["prefill_vs_undropped"] for r in mine if "prefill_vs_undropped" in r.prefill]
        lines.append(f"  {setting}: kept per layer " + " ".join(f"{k:.2f}" for k in layers)
                     + f" (mean {mean(layers):.3f}); TTFT {timed(mine, 'ttft_seconds'):.1f} ms per batch, prefill "
                     f"{timed(mine, 'prefill_seconds_per_prompt'):.2f} ms per prompt"
                     + (f", {mean(beside):.2f}x the same batches' without dropping" if beside else "")
                     + (f" (fp16: {timed(base, 'ttft_seconds'):.1f}, {timed(base, 'prefill_seconds_per_prompt'):.2f})"
                        if timed(base, "ttft_seconds") is not None else ""))
    return lines


def _footer(records: list[Record], verdict: dict) -> str:
    """Judges, calibration sources, published checks, interactions, power, conventions, compression checks."""
    notes = [f"  {r.setting} {r.task} {metric}: {why}" for r in records for metric, why in r.notes.items()]
    judges = {r.task: r.judge for r in records if r.judge}
    calibrated = {r.setting: r.calibration for r in records if r.calibration}
    styles = {r.model: r.prompt_style for r in records if r.prompt_style}
    published = [PublishedCheck(**{k: v for k, v in check.items() if k not in ("gap", "drifted")}).message()
                 for r in records for check in r.published]
    proofs = compression_notes(records)
    sensitivity = sensitivity_lines(records)
    flips_by_group = [f"  {r.setting} {r.task}: {describe(r.subgroup_flips)}" for r in records
                      if any(e["changed"] for e in r.subgroup_flips)]
    power = power_lines(power_summary(records, verdict))
    dropped = token_drop_lines(records)
    interactions = [f"  {r.setting} {r.task} {r.primary}: {i['verdict']}: combined drop {i['combined']:+.3f} vs "
                    f"weights {i['weights']:+.3f} + KV {i['kv']:+.3f}; interaction {i['value']:+.3f} "
                    f"[{i['low']:+.3f}, {i['high']:+.3f}]"
                    for r in records if (i := r.interaction.get(r.primary))]
    return ("".join(f"\n{model} prompted with: {describe_style(style)}" for model, style in styles.items())
            + "".join(f"\n{task} judged by: {judge}" for task, judge in judges.items())
            + "".join(f"\n{setting} calibrated on: {source}" for setting, source in calibrated.items())
            + ("\nFP16 baseline vs published (full datasets):\n" + "\n".join(f"  {m}" for m in published)
               if published else "")
            + ("\nweights + KV: does the drop add up? (drops as worsening; 95% paired bootstrap interval of the "
               "interaction;\n  additive: inside ±margin, an equivalence test)\n" + "\n".join(interactions)
               if interactions else "")
            + ("\ntokens dropped (share of the prompt's KV entries each decoder layer kept; time to first token "
               "of a batch, and over its prompts):\n" + "\n".join(dropped) if dropped else "")
            + ("\npower (primary metric; 80% power, two-sided 0.05, at each setting's churn; items: if the "
               "estimate held):\n" + "\n".join(power) if power else "")
            + ("\nlayer sensitivity (drop of the primary metric vs fp16 with one block of layers compressed, "
               "worst first):\n" + "\n".join(sensitivity) if sensitivity else "")
            + ("\nflips by subgroup vs fp16 (right→wrong ↓, wrong→right ↑, McNemar p; examples in the JSON):\n"
               + "\n".join(flips_by_group) if flips_by_group else "")
            + ("\nundefined by the official formula, reported by convention:\n" + "\n".join(notes)
               if notes else "")
            + ("\ncompression check (measured bytes vs the spec's closed form; answers that never moved):\n"
               + "\n".join(f"  {p}" for p in proofs) if proofs else ""))


