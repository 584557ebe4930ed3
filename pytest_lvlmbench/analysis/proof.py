"""Proof that the compression happened: measured bytes against the closed form, and answers that never moved.

A benchmark of compression is worthless if a setting silently ran uncompressed (a spec that did
not reach the model, a float weight kept beside the codes). Each record carries what the run
measured, and this module turns it into failures and notes:

- weights: the quantized linears' measured bytes must equal the closed form of the spec
  (``quant.weights.expected_linear_bytes``) within 1%, else the test fails. Measured only when
  this run built the model (answers all from the generation cache: nothing to measure);
- KV: a KV setting whose cache stored every token in full precision (bytes ratio ≥ 0.999) is
  reported as compressing nothing *by design* (e.g. KIVI's R = 128 on ~25-token prompts);
- parts: a setting that quantizes the vision tower or projector (``--weight-targets``) reports each
  part's stored bytes over its float bytes;
- answers: a compressed setting whose every answer equals the baseline's is reported (not
  failed: 8-bit often changes nothing on a few hundred items), naming the bytes that prove the
  compression was applied.
"""

from __future__ import annotations

from ..core.records import Record

TOLERANCE = 0.01
KV_UNCOMPRESSED = 0.999


def compression_failures(record: Record) -> list[str]:
    """Messages that fail the test: measured weight bytes off their closed form by more than 1%."""
    expected = record.weight_bytes_expected
    if not expected or abs(record.weight_bytes - expected) <= TOLERANCE * expected:
        return []
    return [f"{record.task}: {record.setting} stores {record.weight_bytes} bytes in its quantized linears, "
            f"but the spec's closed form is {expected} ({record.weight_bytes / expected - 1:+.1%}): the "
            "compression was not applied as specified"]


def compression_notes(records: list[Record]) -> list[str]:
    """One model's report lines, one per setting: tasks where its KV setting compressed nothing by
    design, and tasks where every answer equals fp16's with the bytes that prove it compressed."""
    baseline = {r.task: r for r in records if r.is_baseline}
    idle: dict[str, list[str]] = {}
    unchanged: dict[str, list[str]] = {}
    proof: dict[str, str] = {}
    for record in records:
        setting = record.parsed_setting
        if setting.is_baseline:
            continue
        kv_idle = not setting.kv.is_float and record.kv_ratio is not None and record.kv_ratio >= KV_UNCOMPRESSED
        if kv_idle:
            idle.setdefault(record.setting, []).append(record.task)
        base = baseline.get(record.task)
        if base is not None and record.samples and record.predictions == base.predictions:
            unchanged.setdefault(record.setting, []).append(record.task)
            shown = []
            if (not setting.kv.is_float or setting.drops_tokens) and not kv_idle and record.kv_ratio is not None:
                shown.append(f"KV bytes / float {record.kv_ratio:.3f}")
            if setting.drops_tokens and record.kv_kept is not None:
                shown.append(f"prompt KV kept {record.kv_kept:.3f}")
            if record.weight_ratio is not None:
                shown.append(f"weight bytes / float {record.weight_ratio:.3f}")
            if shown:
                proof[record.setting] = ", ".join(shown)
    lines = [f"{setting}: compresses nothing here by design on {', '.join(tasks)} (KV bytes / float >= "
             f"{KV_UNCOMPRESSED}: every token stayed in the full-precision window)" for setting, tasks in idle.items()]
    every = list(dict.fromkeys(r.task for r in records))

    def which(tasks: list[str]) -> str:
        """'shapes_vqa', '11 of 12 tasks (all but shapes_gqa)' or 'all 12 tasks': the shorter list."""
        if len(tasks) == len(every):
            return f"all {len(every)} tasks" if len(every) > 1 else tasks[0]
        if len(tasks) > len(every) / 2:
            return f"{len(tasks)} of {len(every)} tasks (all but {', '.join(t for t in every if t not in tasks)})"
        return ", ".join(tasks)

    lines += [f"{setting}: every answer equals fp16's on {which(tasks)}"
              + (f"; compression applied: {proof[setting]}" if setting in proof else "")
              for setting, tasks in unchanged.items()]
    return lines + weight_part_lines(records)


def weight_part_lines(records: list[Record]) -> list[str]:
    """One line per setting whose weights quantize more than the language model (``--weight-targets``):
    the bytes each part stores over its float bytes, so a vision-tower setting shows what it compressed."""
    lines = {}
    for record in records:
        parts = record.weight_bytes_by_part
        if record.setting in lines or not parts or set(parts) == {"language"}:
            continue
        lines[record.setting] = (f"{record.setting}: weights quantized in " + ", ".join(
            f"{part} {after:,} of {before:,} bytes ({after / before:.3f})" for part, (before, after) in parts.items()))
    return list(lines.values())


__all__ = ["compression_failures", "compression_notes", "weight_part_lines"]
