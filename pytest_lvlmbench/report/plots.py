"""Plots of a run (metric vs bits) and of the frontier search (cost vs drop)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from ..storage.files import atomic_write_bytes
from ..core.records import Results
from ..analysis.frontier import Point, pareto


def plot_series(results: Results) -> dict[tuple[str, str], dict[str, list[tuple[int, float]]]]:
    """{(model, task): {method: [(bits, primary value)]}}, the baseline at 16 bits on every line.
    Settings that compress both weights and KV are left out (they have no single method), and so are
    eviction and pruning settings (they have no bit width)."""
    series: dict = {}
    for record in results:
        setting = record.parsed_setting
        if (not setting.weights.is_float and not setting.kv.is_float) or setting.drops_tokens:
            continue
        lines = series.setdefault((record.model, record.task), {})
        value = record.metrics[record.primary]
        if setting.is_baseline:
            lines.setdefault("fp16", []).append((16, value))
            continue
        spec = setting.kv if setting.weights.is_float else setting.weights
        method = ("kv-" if setting.weights.is_float else "w-") + spec.method
        lines.setdefault(method, []).append((spec.bits, value))
    for lines in series.values():
        base = lines.pop("fp16", [])
        for points in lines.values():
            points.extend(base)
            points.sort()
    return series


def write_plot(results: Results, path: Path) -> None:
    """PNG: primary metric vs bits, one line per method, one panel per (model, task)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = plot_series(results)
    columns = min(4, len(series))
    rows = -(-len(series) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for axis, ((model, task), lines) in zip(axes.flat, series.items()):
        primary = next(r.primary for r in results if r.task == task)
        for method, points in sorted(lines.items()):
            axis.plot([b for b, _ in points], [v for _, v in points], marker="o", label=method)
        axis.set_xscale("log", base=2)
        axis.set_xticks([2, 3, 4, 8, 16], ["2", "3", "4", "8", "16"])
        axis.set_title(f"{model}: {task}", fontsize=9)
        axis.set_xlabel("bits")
        axis.set_ylabel(primary)
    for axis in list(axes.flat)[len(series):]:
        axis.axis("off")
    legend = {label: handle for axis in axes.flat for handle, label in zip(*axis.get_legend_handles_labels())}
    figure.legend(list(legend.values()), list(legend), loc="lower center", ncol=6)
    figure.tight_layout(rect=(0, 0.05, 1, 1))
    buffer = io.BytesIO()
    try:   # the format from the suffix, as savefig(path) would; png without one
        figure.savefig(buffer, dpi=100, format=Path(path).suffix.lstrip(".").lower() or None)
    finally:
        plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())


def write_frontier_plot(points: Sequence[Point], path) -> None:
    """Cost vs mean worsening with paired 95% bands, one panel per kind; the front joined, safe points filled."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..storage.files import atomic_write_bytes

    kinds = sorted({p.kind for p in points})
    figure, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4), squeeze=False)
    front = pareto(points)
    for axis, kind in zip(axes.flat, kinds):
        mine = [p for p in points if p.kind == kind]
        for p in mine:
            axis.errorbar(p.cost, p.worsening, yerr=[[p.worsening - p.low], [p.high - p.worsening]], fmt="o",
                          color="tab:green" if p.safe else "tab:red", mfc="tab:green" if p.safe else "white")
            axis.annotate(p.setting, (p.cost, p.worsening), fontsize=7, xytext=(3, 3), textcoords="offset points")
        line = [p for p in front if p.kind == kind]
        axis.plot([p.cost for p in line], [p.worsening for p in line], "k--", linewidth=1, label="Pareto front")
        axis.axhline(0, color="grey", linewidth=0.5)
        axis.set_xlabel(f"{kind} bytes / float (measured)")
        axis.set_ylabel("mean primary-metric drop vs fp16")
        axis.set_title(f"{kind}: green = non-inferior on every task")
        axis.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, dpi=100, format="png")
    finally:
        plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
