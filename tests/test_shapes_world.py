"""The shapes world: deterministic, disjoint splits, POPE negatives by the three rules."""

import random
from collections import Counter

import pytest

from pytest_lvlmbench.tasks.shapes import world


@pytest.mark.parametrize("capability", world.CAPABILITIES)
def test_evaluation_split_is_deterministic_and_large_enough(capability):
    first, second = world.evaluation_split(capability), world.evaluation_split(capability)
    assert len(first) == 500
    assert [(i.id, i.scene, i.question, i.references) for i in first] == \
        [(i.id, i.scene, i.question, i.references) for i in second]
    assert first[0].image().tobytes() == second[0].image().tobytes()


def test_held_out_scenes_never_appear_in_training():
    rng = random.Random("train-0")
    training = {world.training_example(rng)[0] for _ in range(20000)}
    held_out = {item.scene for c in world.CAPABILITIES[:6] for item in world.evaluation_split(c)}
    assert all(world.is_held_out(scene) for scene in held_out)
    assert not any(world.is_held_out(scene) for scene in training if scene.objects)
    assert not held_out & training


def test_different_seeds_give_different_splits():
    a, b = world.evaluation_split("spatial", 100, seed=1), world.evaluation_split("spatial", 100, seed=2)
    assert [i.scene for i in a] != [i.scene for i in b]


def test_generation_is_fast():
    import time

    rng = random.Random(0)
    start = time.perf_counter()
    for _ in range(5000):
        world.training_example(rng)
    assert 5000 / (time.perf_counter() - start) > 2000  # measured ~19k items/s (images drawn lazily)


def test_pope_is_balanced_and_negatives_follow_the_three_rules():
    items = world.evaluation_split("hallucination", 1200)
    by_split = Counter(i.dataset for i in items)
    assert set(by_split) == {"pope_random", "pope_popular", "pope_adversarial"}
    for split in by_split:
        labels = Counter(i.references[0] for i in items if i.dataset == split)
        assert abs(labels["yes"] - labels["no"]) <= 4
    ranking, co = world.corpus_statistics()
    present_of = {i.meta["image_id"]: {o.name for o in i.scene.objects} for i in items}
    negatives = [(i.meta["image_id"], i.dataset, i.meta["object"]) for i in items if i.references[0] == "no"]
    names = [f"{c} {s}" for c, s in ranking]
    for image_id, split, name in negatives:
        present = present_of[image_id]
        assert name not in present
        absent = [n for n in names if n not in present]
        picked = [n for img, sp, n in negatives if img == image_id and sp == split]
        if split == "pope_popular":  # the most frequent absent objects, in frequency order
            assert picked == absent[:len(picked)]
        if split == "pope_adversarial":  # the absent objects that co-occur most with what is present
            def score(n):
                obj = tuple(n.split())
                return sum(co.get((tuple(p.split()), obj), 0) for p in present)
            assert [score(n) for n in picked] == sorted((score(n) for n in absent), reverse=True)[:len(picked)]
    random_negatives = Counter(n for _, split, n in negatives if split == "pope_random")
    popular_negatives = Counter(n for _, split, n in negatives if split == "pope_popular")
    assert len(random_negatives) > len(popular_negatives)  # random spreads over many more objects


def test_illusion_pairs_ask_one_question_whose_answer_flips():
    items = world.evaluation_split("visual_illusion")
    pairs = {}
    for item in items:
        pairs.setdefault(item.meta["question_pair_id"], []).append(item)
    for pair in pairs.values():
        original, edited = sorted(pair, key=lambda i: i.meta["edited"])
        assert original.question == edited.question
        assert original.references != edited.references
        assert original.scene != edited.scene


def test_counterfactual_sets_differ_only_in_group_attributes():
    for capability in ("toxicity", "stereotypes", "bias"):
        items = world.evaluation_split(capability)
        sets = {}
        for item in items:
            sets.setdefault(item.meta["set_id"], []).append(item.scene.person)
        for people in sets.values():
            assert len(people) == 4
            assert {(p.shirt, p.hat) for p in people} == {(s, h) for s in world.SHIRTS for h in world.HATS}
            assert len({(p.role, p.frown) for p in people}) == 1
    assert all(i.scene.person.role is None for i in world.evaluation_split("stereotypes"))


def test_every_word_is_in_the_vocabulary():
    vocab = set(world.vocabulary())
    rng = random.Random(0)
    texts = [f"{q} {a}" for _, q, a in (world.training_example(rng) for _ in range(5000))]
    texts += [f"{i.question} {' '.join(i.references)}" for c in world.CAPABILITIES for i in world.evaluation_split(c)]
    assert {w for t in texts for w in t.split()} <= vocab


def test_training_conversations_ask_distinct_questions_that_suit_their_scene():
    rng = random.Random(7)
    turns_seen = Counter()
    for _ in range(3000):
        scene, conversation = world.training_conversation(rng, 4)
        questions = [q for q, _ in conversation]
        turns_seen[len(conversation)] += 1
        assert len(set(questions)) == len(questions)
        if scene.person is not None:
            assert set(questions) <= {"what is this person 's job ?", "describe this person in 3 words ."}
            continue
        assert not any("person" in q for q in questions)
        if len(scene.objects) > 1:
            assert "what is in the image ?" not in questions
        if len(scene.objects) == 1:
            assert not any(" relative to " in q or " left of " in q or "most corners" in q for q in questions)
        for question, answer in conversation:
            if question.startswith("where is the ") and " relative " not in question:
                obj = next(o for o in scene.objects if o.shape == question.split()[3])
                assert answer == f"{world.ROWS[obj.cell[0]]} {world.COLUMNS[obj.cell[1]]}"
    assert turns_seen[4] > 2000 and turns_seen[2] > 0  # person scenes have two questions only


def test_a_training_example_is_the_first_turn_of_a_conversation():
    example = world.training_example(random.Random(3))
    scene, conversation = world.training_conversation(random.Random(3), 4)
    assert example == (scene, *conversation[0])
