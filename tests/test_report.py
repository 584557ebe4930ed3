"""The degradation table as a plain function: judges and conventions for undefined metrics are named."""

from pytest_lvlmbench.core.options import Options
from pytest_lvlmbench.report.tables import tables
from pytest_lvlmbench.core.records import Record, Results
from pytest_lvlmbench.core.settings import BASELINE


def test_the_table_names_the_judge_and_every_metric_undefined_by_the_official_formula():
    base = Record("tiny", "fp16", "shapes_hallusion", "visual_illusion", "accuracy", {"accuracy": 0.5},
                  predictions=["yes", "no"], judge="rule judge")
    kv2 = Record("tiny", "kv2-uniform", "shapes_pope_random", "hallucination", "accuracy",
                 {"accuracy": 0.5, "precision": 0.0}, predictions=["no", "no"],
                 notes={"precision": "no 'yes' predictions: 0/0, reported as 0.0"})
    pope_base = Record("tiny", "fp16", "shapes_pope_random", "hallucination", "accuracy",
                       {"accuracy": 1.0, "precision": 1.0}, predictions=["yes", "no"])
    [table] = tables(Results([base, pope_base, kv2]), Options(models=["tiny"], settings=[BASELINE]))
    assert "shapes_hallusion judged by: rule judge" in table
    assert "kv2-uniform shapes_pope_random precision: no 'yes' predictions: 0/0, reported as 0.0" in table


def test_the_default_table_fits_120_columns_with_settings_as_rows():
    """The default grid (22 settings x 12 datasets) prints primary metrics wrapped to 120 columns;
    the full table (pytest -v) keeps every metric."""
    from pytest_lvlmbench.core.settings import default_grid
    from pytest_lvlmbench.tasks.shapes.tasks import SHAPES_TASKS

    records = [Record("tiny", setting.id, task.name, task.capability, task.primary,
                      {task.primary: 0.5, "secondary_metric": 0.1}, predictions=["a"], samples=1, kv_ratio=0.25)
               for setting in default_grid() for task in SHAPES_TASKS]
    options = Options(models=["tiny"], settings=[BASELINE])
    [compact] = tables(Results(records), options)
    body = compact.split("\n")
    assert all(len(line) <= 120 for line in body), max(body, key=len)
    assert "secondary_metric" not in compact and "kv2-outlier-s2" in compact and "shapes_pope_adversarial" in compact
    assert sum(line.startswith("kv2-uniform ") for line in body) >= 2   # wrapped into blocks, a row per setting each
    [full] = tables(Results(records), options, full=True)
    assert "secondary_metric" in full


def paired_records(samples: int, clusters: int, broken: int):
    """fp16 and a setting on one accuracy task, the setting's paired analysis computed for real."""
    import numpy as np

    from pytest_lvlmbench.metrics import bootstrap_weights, share_stats
    from pytest_lvlmbench.metrics.paired import compare

    labels = [i * clusters // samples for i in range(samples)]
    before, after = np.ones(samples), np.r_[np.zeros(broken), np.ones(samples - broken)]
    found = compare(share_stats(before), share_stats(after), True, 0.02, labels, bootstrap_weights(labels, 100))
    base = Record("tiny", "fp16", "shapes_gqa", "visual_reasoning", "accuracy", {"accuracy": 1.0},
                  predictions=["a"] * samples, samples=samples, clusters=clusters, intervals={"accuracy": [0.9, 1.0]})
    setting = Record("tiny", "kv4-uniform", "shapes_gqa", "visual_reasoning", "accuracy",
                     {"accuracy": 1 - broken / samples}, predictions=["a"] * samples, samples=samples,
                     clusters=clusters, p_values={"accuracy": found.p_change}, paired={"accuracy": found.as_dict()},
                     noninferiority={"accuracy": {"margin": 0.02, "p": found.p_noninferior, "method": found.method}})
    return Results([base, setting]), found


def test_few_clusters_are_flagged_and_inconclusive_cells_say_what_would_settle_them():
    results, found = paired_records(samples=60, clusters=10, broken=0)
    options = Options(models=["tiny"], settings=[BASELINE])
    [compact] = tables(results, options)
    assert "shapes_gqa†" in compact and "† fewer than 30 clusters" in compact
    assert "shapes_gqa accuracy: 60 items, 10 clusters: smallest detectable drop" in compact
    needed = found.items_to_settle(60, 0.025, 0.05)
    assert f"kv4-uniform: inconclusive (worsening +0.000 [{found.low:+.3f}, {found.high:+.3f}]); ~{needed} items " \
           f"would read ≈ if it held" in compact
    [full] = tables(results, options, full=True)
    assert f"1.000 (+0.000 [{-found.high:+.3f}, {-found.low:+.3f}])" in full and "1.000 ±0.050†" in full


def test_the_csv_and_json_carry_the_paired_interval_clusters_and_power():
    import csv
    import io

    from pytest_lvlmbench.report.documents import csv_report, report_json

    results, found = paired_records(samples=600, clusters=100, broken=3)
    rows = list(csv.DictReader(io.StringIO(csv_report(results))))
    cell = next(r for r in rows if r["setting"] == "kv4-uniform")
    assert float(cell["delta_low"]) == -found.high and float(cell["delta_high"]) == -found.low
    assert cell["clusters"] == "100" and float(cell["detectable_drop"]) == found.detectable(0.05)
    power = report_json(results, Options(models=["tiny"], settings=[BASELINE]))["power"]
    assert power[0]["task"] == "shapes_gqa" and power[0]["clusters"] == 100
    assert power[0]["detectable_drop"] == found.detectable(0.05)
