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
