"""Tasks are data: validated when built, registered once, scored through their parser; the shapes
world is one dataset among others."""

from dataclasses import replace

import pytest

from pytest_lvlmbench.metrics import share_stats
from pytest_lvlmbench.core.capabilities import CAPABILITIES
from pytest_lvlmbench.tasks import TASKS, Sample, Task, register_task, tasks_for
from pytest_lvlmbench.tasks.shapes.world import Item, Scene


def scorer(samples, answers):
    return {"accuracy": share_stats([a == s.references[0] for a, s in zip(answers, samples)])}


def task(**fields):
    return Task(**{"name": "probe", "capability": "recognition", "dataset": "test", "load": lambda limit: [],
                   "score": scorer, "metrics": ("accuracy",), "primary": "accuracy", **fields})


def item(question, reference, **meta):
    return Item("x", "recognition", "shapes_vqa", Scene(), question, (reference,), meta)


def test_every_capability_has_real_tasks_and_a_shapes_world_twin():
    shapes = [t for t in TASKS.values() if t.dataset == "shapes world (generated)"]
    assert len(shapes) == 12
    for capability in CAPABILITIES:
        datasets = {t.dataset for t in tasks_for(capability)}
        assert "shapes world (generated)" in datasets and len(datasets) >= 2, capability
    assert [t.name for t in tasks_for("hallucination")] == [
        "shapes_pope_random", "shapes_pope_popular", "shapes_pope_adversarial",
        "pope_adversarial", "pope_popular", "pope_random"]
    assert isinstance(TASKS["shapes_vqa"].load(1)[0], Sample)


@pytest.mark.parametrize("fields, message", [
    ({"capability": "humour"}, "task 'probe': unknown capability 'humour', known are"),
    ({"metrics": ("accuracy", "wit")}, r"task 'probe': metrics \['wit'\] are not registered"),
    ({"primary": "f1"}, r"task 'probe': primary metric 'f1' is not one of its metrics \('accuracy',\)"),
    ({"max_new_tokens": 0}, "task 'probe': max_new_tokens must be positive, got 0"),
])
def test_a_task_is_validated_when_built(fields, message):
    with pytest.raises(ValueError, match=message):
        task(**fields)


def test_a_name_registers_once():
    with pytest.raises(ValueError, match="task 'shapes_vqa' is already registered"):
        register_task(replace(TASKS["shapes_vqa"]))


def test_the_prompt_is_the_question_plus_the_post_prompt_and_answers_are_parsed_before_scoring():
    probe = task(post_prompt="\nAnswer the question using a single word or phrase.", parse=str.lower)
    sample = item("What color is it?", "red")
    assert probe.prompt(sample) == "What color is it?\nAnswer the question using a single word or phrase."
    assert probe.statistics([sample], ["RED"])["accuracy"].value() == 1.0


def test_a_scorer_must_return_exactly_the_declared_metrics():
    probe = task(metrics=("accuracy", "f1"))
    with pytest.raises(ValueError, match=r"returned metrics \['accuracy'\], the task declares \['accuracy', 'f1'\]"):
        probe.statistics([item("q", "a")], ["a"])
    with pytest.raises(ValueError, match="1 samples but 2 predictions"):
        task().statistics([item("q", "a")], ["a", "b"])


def test_shapes_scienceqa_reads_letters_the_way_llava_does():
    """An empty answer used to match 'A' (the VQA normalisation deletes the article 'a'): now FAILED."""
    science = TASKS["shapes_scienceqa"]
    samples = [item("which ... ? A . circle B . square C . cross", "A", choices=3)] * 4
    scores = science.statistics(samples, ["A", "", "a", "The answer is A."])["accuracy"]
    assert scores.rows[:, 0].tolist() == [1.0, 0.0, 0.0, 1.0]


def test_shapes_pope_uses_llavas_eval_pope_parse():
    """Any word no/not/No means no; everything else, even an unrelated answer, means yes."""
    pope = TASKS["shapes_pope_random"]
    samples = [item("is there a red circle in the image ?", label) for label in ("no", "no", "yes", "no")]
    stats = pope.statistics(samples, ["not at all", "No.", "red", "blue"])
    assert stats["accuracy"].value() == 0.75 and stats["yes_ratio"].value() == 0.5
