"""The degradation table as a plain function: judges and conventions for undefined metrics are named."""

from pytest_lvlmbench.options import Options
from pytest_lvlmbench.report import tables
from pytest_lvlmbench.results import Record, Results
from pytest_lvlmbench.settings import BASELINE


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
    """The default grid (20 settings x 12 datasets) prints primary metrics wrapped to 120 columns;
    the full table (pytest -v) keeps every metric."""
    from pytest_lvlmbench.settings import default_grid
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
