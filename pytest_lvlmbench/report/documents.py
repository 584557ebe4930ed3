"""The run's records as files: JSON (every record), markdown (a PR comment) and CSV."""

from __future__ import annotations

import io
import json
from pathlib import Path
from quant.kernels import kernel_path
from ..metrics import direction_mark
from ..metrics.paired import PairedComparison
from ..analysis.noninferiority import ALPHA as NONINFERIORITY_ALPHA
from ..analysis.sensitivity import rank_blocks
from ..storage.files import atomic_write_text
from ..storage.runs import save_run
from ..core.records import Results
from ..core.settings import BASELINE
from .tables import (FEW_CLUSTERS, SIGNIFICANCE, _cell, _per_model, _settings, delta_interval, few_clusters,
                     machine_info, power_summary)


def report_json(results: Results, options, answers: bool = False) -> dict:
    per_model = _per_model(results)
    return {"machine": machine_info(options), "seed": options.seed, "limit": options.limit,
            "resamples": options.resamples, "models": options.models, "records": results.as_json(answers),
            "layer_sensitivity": [{"setting": setting, "task": task, "blocks": [{"layers": l, "drop": d} for l, d in ranked]}
                                  for (setting, task), ranked in rank_blocks(list(results)).items()],
            "noninferiority": [{"model": model, "setting": s, "task": t, "metric": metric, "verdict": v}
                               for model, _, _, found in per_model for (s, t, metric), v in found.items()],
            "power": [{"model": model, **entry} for model, records, _, found in per_model
                      for entry in power_summary(records, found)]}


def markdown_report(results: Results, options) -> str:
    """GitHub-flavoured markdown for a PR comment: per model, settings as rows and tasks as columns,
    each task's primary metric with its Δ vs fp16, ▲/▼ (significant) and ≈ (non-inferior at δ)."""
    out = []
    for model, records, adjusted, verdict in _per_model(results):
        tasks = list(dict.fromkeys(r.task for r in records))
        by_key = {(r.setting, r.task): r for r in records}
        primary = {r.task: r.primary for r in records}
        flagged = {r.task for r in records if few_clusters(r)}
        settings = _settings(records)
        out += [f"### lvlmbench: {model}", "",
                f"{machine_info(options)['dtype']} baseline on {options.device}, quant/ kernels: "
                f"{kernel_path(options.device)}; each task's primary metric (↑/↓: direction), Δ vs fp16; "
                f"▲/▼ significantly better/worse (paired, clustered; Benjamini-Hochberg at {SIGNIFICANCE}); ≈ "
                f"non-inferior (the paired 95% interval of the worsening below the margin {options.margin}; "
                f"one-sided {NONINFERIORITY_ALPHA}, Benjamini-Hochberg); neither: inconclusive; † fewer than "
                f"{FEW_CLUSTERS} clusters.", "",
                "| setting | " + " | ".join(f"{t}{'†' * (t in flagged)} ({primary[t]}{direction_mark(primary[t])})"
                                          for t in tasks) + " |",
                "|---" * (len(tasks) + 1) + "|"]
        for setting in settings:
            cells = []
            for task in tasks:
                record, base = by_key.get((setting, task)), by_key.get((BASELINE.id, task))
                if record is None:
                    cells.append("")
                    continue
                cells.append(_cell(record, primary[task], None if record is base else base, adjusted,
                                   verdict.get((setting, task, primary[task]))))
            out.append(f"| {setting} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


CSV_COLUMNS = ("model", "setting", "task", "capability", "metric", "primary", "value", "delta", "delta_low",
               "delta_high", "ci_low", "ci_high", "p_adjusted", "margin", "noninferiority_p", "verdict", "samples",
               "clusters", "detectable_drop", "kv_ratio")


def csv_report(results: Results) -> str:
    """One row per (model, setting, task, metric): value, Δ vs fp16 with its paired 95% interval, the
    value's 95% CI, adjusted paired p, non-inferiority margin, p and verdict, samples, clusters, the
    smallest detectable drop (80% power) and KV ratio."""
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for model, records, adjusted, verdict in _per_model(results):
        base = {r.task: r for r in records if r.is_baseline}
        for r in records:
            for metric, value in r.metrics.items():
                low, high = r.intervals.get(metric, (value, value))
                ni = r.noninferiority.get(metric, {})
                delta = value - base[r.task].metrics[metric] if r.task in base and not r.is_baseline else ""
                bounds = delta_interval(r, metric) or ("", "")
                detectable = (PairedComparison.from_dict(r.paired[metric]).detectable(SIGNIFICANCE)
                              if metric in r.paired else None)
                writer.writerow([model, r.setting, r.task, r.capability, metric, metric == r.primary, value, delta,
                                 *bounds, low, high, adjusted.get((r.setting, r.task, metric), ""),
                                 ni.get("margin", ""), ni.get("p", ""), verdict.get((r.setting, r.task, metric), ""),
                                 r.samples, r.clusters, "" if detectable is None else detectable,
                                 "" if r.kv_ratio is None else r.kv_ratio])
    return buffer.getvalue()


def write_json(results: Results, options, path: Path, answers: bool = False) -> None:
    atomic_write_text(path, json.dumps(report_json(results, options, answers), indent=1))


def write_tables(results: Results, options) -> list[str]:
    """Write ``--lvlm-report-md`` / ``--lvlm-report-csv`` where asked; one line per file written."""
    written = []
    for path, render, what in ((options.report_md, lambda: markdown_report(results, options), "markdown"),
                               (options.report_csv, lambda: csv_report(results), "CSV")):
        if path:
            atomic_write_text(path, render())
            written.append(f"lvlmbench: {what} report written to {path}")
    return written


def save_report(results: Results, options, name: str):
    """Store this run's records under saved run ``name`` (:func:`~..storage.runs.save_run`)."""
    return save_run(report_json(results, options), machine_info(options), options, name)
