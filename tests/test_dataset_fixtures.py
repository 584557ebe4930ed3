"""The offline copies of the ten real datasets (tests/dataset_fixtures.py) read back through
pytest_lvlmbench.tasks.data: hub layout, declared Arrow types, each benchmark's invariants, and the errors a
copy in the wrong shape must give."""

from __future__ import annotations

import io
import re
import time
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

import dataset_fixtures as fx
from pytest_lvlmbench.tasks import data
from pytest_lvlmbench.tasks.data import (DatasetSchemaError, DatasetUnavailable, HubDataset, HubSample, decode_image,
                                         read_rows, set_data_dirs)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """Only the directories a test sets are searched: never LVLMBENCH_DATA_DIR or this machine's hub cache,
    and the session's own data directories come back afterwards."""
    monkeypatch.delenv("LVLMBENCH_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "_data_dirs", [])
    monkeypatch.setattr(data, "_hub_snapshot", lambda repo: None)


@pytest.fixture(scope="module")
def hub_root(tmp_path_factory) -> Path:
    return fx.write_all(tmp_path_factory.mktemp("hub"))


@pytest.fixture
def hub(hub_root) -> Path:
    set_data_dirs([hub_root])
    return hub_root


def kind(feature: fx.Feature) -> str:
    """The pytest_lvlmbench.tasks.data column kind a task declares for this feature."""
    if isinstance(feature, fx.ImageFeature):
        return "image"
    if isinstance(feature, fx.Struct):
        return "struct"
    if isinstance(feature, fx.ListOf):
        return "list<struct>"
    if isinstance(feature, fx.Sequence):
        return f"list<{kind(feature.item)}>"
    return {"string": "string", "bool": "bool"}.get(feature.dtype, "int")


def hub_dataset(name: str, config: str | None = None, split: str | None = None, repo: str | None = None,
                drop: str | None = None) -> HubDataset:
    config = config or fx.PRIMARY[name][0]
    split = split or fx.PRIMARY[name][1]
    features = fx.spec(name).config(config).features
    return HubDataset(repo or name, config, split, {n: kind(f) for n, f in features if n != drop})


def rows_of(name: str, config: str | None = None, split: str | None = None) -> list[dict]:
    return resolved(read_rows(hub_dataset(name, config, split)))


ALL_SPLITS = [(name, c.name, s.name) for name in fx.DATASETS for c in fx.spec(name).configs for s in c.splits]


# --------------------------------------------------------------------------------------------------
# Writing: speed, determinism, the hub's file layout and the dataset cards.

def test_write_all_is_fast_and_deterministic(tmp_path):
    start = time.perf_counter()
    first = fx.write_all(tmp_path / "a")
    assert time.perf_counter() - start < 3.0
    second = fx.write_all(tmp_path / "b")
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    assert len(files) == 42
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_pictures_are_deterministic_and_distinct():
    assert fx.picture(5) == fx.picture(5)
    assert fx.picture(5, fmt="JPEG", mode="L") == fx.picture(5, fmt="JPEG", mode="L")
    assert len({fx.picture(seed) for seed in range(50)}) == 50
    for mode in ("RGB", "RGBA", "L", "P"):
        image = Image.open(io.BytesIO(fx.picture(3, size=(20, 12), mode=mode)))
        assert (image.mode, image.size) == (mode, (20, 12))


HASH = r"-[0-9a-f]{16}"
EXPECTED_FILES = {
    "lmms-lab/POPE": [r"data/test-0000[012]-of-00003\.parquet",
                      r"Full/(adversarial|popular|random)-00000-of-00001\.parquet"],
    "lmms-lab/GQA": [r"testdev_balanced_instructions/testdev-00000-of-00001\.parquet",
                     r"testdev_balanced_images/testdev-00000-of-00001\.parquet"],
    "lmms-lab/textvqa": [r"data/validation-0000[012]-of-00003\.parquet", r"data/(train|test)-00000-of-00001\.parquet"],
    "lmms-lab/VizWiz-VQA": [rf"data/val-0000[01]-of-00002{HASH}\.parquet", rf"data/test-00000-of-00001{HASH}\.parquet"],
    "lmms-lab/ScienceQA": [r"ScienceQA-(IMG|FULL)/(validation|test)-00000-of-00001\.parquet"],
    "lmms-lab/MME": [rf"data/test-0000[0-3]-of-00004{HASH}\.parquet"],
    "lmms-lab/HallusionBench": [r"data/(image|non_image)-00000-of-00001\.parquet"],
    "lmms-lab/COCO-Caption2017": [r"data/val-0000[01]-of-00002\.parquet", r"data/test-00000-of-00014\.parquet"],
    "lmms-lab/MMVet": [r"data/test-00000-of-00001\.parquet"],
    "Intel/SocialCounterfactuals": [rf"data/train-0000[01]-of-00002{HASH}\.parquet"],
}


@pytest.mark.parametrize("name", fx.DATASETS)
def test_files_are_laid_out_as_on_the_hub(hub_root, name):
    root = hub_root / name
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))
    patterns = EXPECTED_FILES[name]
    for rel in files:
        assert any(re.fullmatch(p, rel) for p in patterns), rel
    for p in patterns:
        assert any(re.fullmatch(p, rel) for rel in files), p
    assert (root / "README.md").is_file()


def card(root: Path, name: str) -> dict:
    text = (root / name / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text[4:text.index("\n---", 3)])


# (configs block, dataset_info block) on the real cards
CARD_SHAPE = {name: (True, True) for name in fx.DATASETS}
CARD_SHAPE["lmms-lab/VizWiz-VQA"] = (False, True)
CARD_SHAPE["Intel/SocialCounterfactuals"] = (False, False)


@pytest.mark.parametrize("name", fx.DATASETS)
def test_card_matches_the_files(hub_root, name):
    header = card(hub_root, name)
    repo = fx.spec(name)
    has_configs, has_info = CARD_SHAPE[name]
    assert ("configs" in header) == has_configs
    assert ("dataset_info" in header) == has_info
    if has_configs:
        assert {c["config_name"]: {f["split"]: f["path"] for f in c["data_files"]} for c in header["configs"]} == \
            {c.name: {s.name: s.pattern for s in c.splits} for c in repo.configs}
    if has_info:
        infos = header["dataset_info"]
        infos = infos if isinstance(infos, list) else [dict(infos, config_name="default")]
        assert [i["config_name"] for i in infos] == [c.name for c in repo.configs]
        for info, config in zip(infos, repo.configs):
            assert info["features"] == [f.card(n) for n, f in config.features]
            assert {s["name"]: s["num_examples"] for s in info["splits"]} == \
                {s.name: len(s.rows) for s in config.splits}
    if name == "Intel/SocialCounterfactuals":
        assert header == {"license": "mit"}          # the real 21-byte card


@pytest.mark.parametrize("name", fx.DATASETS)
def test_card_features_are_the_datasets_features_of_the_files(hub_root, name):
    datasets = pytest.importorskip("datasets")
    for config in fx.spec(name).configs:
        expected = fx.arrow_schema(config.features).remove_metadata()
        yaml_features = datasets.Features._from_yaml_list([f.card(n) for n, f in config.features])
        assert yaml_features.arrow_schema.remove_metadata() == expected
        for split in config.splits:
            for shard in split.shards:
                schema = pq.read_schema(hub_root / name / shard.path)
                assert schema.remove_metadata() == expected
                assert datasets.Features.from_arrow_schema(schema).arrow_schema.remove_metadata() == expected


@pytest.mark.parametrize("name", fx.DATASETS)
def test_datasets_load_dataset_reads_the_copies(hub_root, name, tmp_path):
    datasets = pytest.importorskip("datasets")
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    repo = fx.spec(name)
    for config in repo.configs:
        for split in config.splits:
            loaded = datasets.load_dataset(str(hub_root / name), config.name if len(repo.configs) > 1 else None,
                                           split=split.name, cache_dir=str(tmp_path))
            assert loaded.num_rows == len(split.rows)
            assert loaded.features.arrow_schema.remove_metadata() == fx.arrow_schema(config.features).remove_metadata()


# --------------------------------------------------------------------------------------------------
# Reading back through pytest_lvlmbench.tasks.data.

@pytest.mark.parametrize("name,config,split", ALL_SPLITS)
def test_every_split_reads_back_with_its_declared_types(hub, name, config, split):
    dataset = hub_dataset(name, config, split)
    spec_split = fx.spec(name).config(config).split(split)
    root = data.locate(dataset)
    assert root == hub / name
    files = data.data_files(dataset, root)
    assert [f.relative_to(root).as_posix() for f in files] == [s.path for s in spec_split.shards]
    expected_schema = fx.arrow_schema(fx.spec(name).config(config).features)
    for path in files:
        schema = pq.read_schema(path)
        assert schema.remove_metadata() == expected_schema.remove_metadata()
        data.check_schema(dataset, schema, path)
    assert resolved(read_rows(dataset)) == spec_split.rows
    assert len(list(read_rows(dataset, limit=3))) == min(3, len(spec_split.rows))


def test_multi_shard_splits_read_across_files_in_order(hub):
    rows = rows_of("lmms-lab/POPE")
    assert [r["category"] for r in rows] == ["adversarial"] * 6 + ["popular"] * 6 + ["random"] * 6
    assert len(data.data_files(hub_dataset("lmms-lab/POPE"), hub / "lmms-lab/POPE")) == 3
    popular = list(read_rows(hub_dataset("lmms-lab/POPE"), where=lambda r: r["category"] == "popular", limit=4))
    assert [r["id"] for r in popular] == ["6", "7", "8", "9"]


@pytest.mark.parametrize("name", ["lmms-lab/VizWiz-VQA", "Intel/SocialCounterfactuals"])
def test_cards_without_configs_are_read_by_the_hub_file_convention(hub, tmp_path, name):
    assert data.readme_configs(hub / name) is None
    assert rows_of(name) == fx.spec(name).config("default").split(fx.PRIMARY[name][1]).rows
    set_data_dirs([fx.write_dataset(name, tmp_path, card_configs=True).parent.parent])
    assert data.readme_configs(tmp_path / name) is not None
    assert rows_of(name) == fx.spec(name).config("default").split(fx.PRIMARY[name][1]).rows


def test_a_card_without_configs_still_finds_named_configs(tmp_path):
    set_data_dirs([tmp_path])
    fx.write_dataset("lmms-lab/POPE", tmp_path, card_configs=False)
    assert [r["category"] for r in rows_of("lmms-lab/POPE", "Full", "random")] == ["random", "random"]
    assert len(rows_of("lmms-lab/POPE")) == 18


def pictures(name: str) -> list[tuple[str, str, int, dict]]:
    """(config, split, row index, image value) of every non-null image in the dataset."""
    return [(c.name, s.name, i, row["image"]) for c in fx.spec(name).configs for s in c.splits
            for i, row in enumerate(s.rows) if row.get("image") is not None]


@pytest.mark.parametrize("name", fx.DATASETS)
def test_every_picture_decodes_to_rgb(hub, name):
    for config, split in sorted({(c, s) for c, s, _, _ in pictures(name)}):
        for i, row in enumerate(rows_of(name, config, split)):
            if row["image"] is None:
                continue
            sample = HubSample(id=str(i), question="", references=(), meta={}, image_value=row["image"],
                               source=str(hub_dataset(name, config, split)))
            image = sample.image()
            assert image.mode == "RGB"
            assert image.size == Image.open(io.BytesIO(row["image"]["bytes"])).size


def test_pictures_cover_the_modes_a_loader_must_convert():
    modes = Counter(Image.open(io.BytesIO(v["bytes"])).mode for name in fx.DATASETS for *_, v in pictures(name))
    formats = Counter(Image.open(io.BytesIO(v["bytes"])).format for name in fx.DATASETS for *_, v in pictures(name))
    assert {"RGB", "RGBA", "L", "P"} <= set(modes)
    assert {"PNG", "JPEG"} <= set(formats)


SAME_PICTURE = {  # rows that show the same picture by design, as in the real data
    "lmms-lab/POPE": lambda r: r["image_source"],
    "lmms-lab/MME": lambda r: r["question_id"],
    "lmms-lab/HallusionBench": lambda r: (r["category"], r["subcategory"], r["set_id"], r["figure_id"]),
}


def test_pictures_differ_unless_they_are_the_same_picture():
    owner: dict[bytes, tuple] = {}
    for name in fx.DATASETS:
        for config in fx.spec(name).configs:
            for split in config.splits:
                for i, row in enumerate(split.rows):
                    if row.get("image") is None:
                        continue
                    key = (name, SAME_PICTURE[name](row) if name in SAME_PICTURE else (config.name, split.name, i))
                    assert owner.setdefault(row["image"]["bytes"], key) == key


# --------------------------------------------------------------------------------------------------
# The invariants of each benchmark.

def test_pope_invariants(hub):
    rows = rows_of("lmms-lab/POPE")
    by_category = defaultdict(list)
    for r in rows:
        by_category[r["category"]].append(r)
    assert set(by_category) == {"adversarial", "popular", "random"}
    for category, group in by_category.items():
        assert Counter(r["answer"] for r in group) == {"yes": 3, "no": 3}, category
        assert all(re.fullmatch(r"Is there an? [a-z ]+ in the image\?", r["question"]) for r in group)
        assert [r["question_id"] for r in group] == [str(j) for j in range(1, 7)]   # restarts per category
    assert len({r["id"] for r in rows}) == len(rows)
    assert all(r["image_source"].startswith("COCO_val2014_") for r in rows)
    for split in ("adversarial", "popular", "random"):
        assert {r["category"] for r in rows_of("lmms-lab/POPE", "Full", split)} == {split}


def test_gqa_invariants(hub):
    questions = rows_of("lmms-lab/GQA")
    images = rows_of("lmms-lab/GQA", "testdev_balanced_images", "testdev")
    image_ids = {r["id"] for r in images}
    assert {q["imageId"] for q in questions} == image_ids          # every question joins an image, none unused
    relations = [q for q in questions if q["types"]["semantic"] == "rel"]
    assert {q["types"]["detailed"] for q in relations} >= {"relVerify", "relS"}
    assert len(relations) < len(questions)
    for q in questions:
        assert set(q["types"]) == {"structural", "semantic", "detailed"}
        assert set(q["groups"]) == {"global", "local"}
        assert set(q["annotations"]) == {"question", "answer", "fullAnswer"}
        for i, step in enumerate(q["semantic"]):
            assert all(0 <= d < i for d in step["dependencies"])
        assert q["isBalanced"] is True


def test_textvqa_invariants(hub):
    for r in rows_of("lmms-lab/textvqa"):
        assert len(r["answers"]) == 10
        assert r["ocr_tokens"] and all(isinstance(t, str) for t in r["ocr_tokens"])
        assert isinstance(r["question_id"], int) and r["set_name"] == "val"
        assert Image.open(io.BytesIO(r["image"]["bytes"])).size == (r["image_width"], r["image_height"])


def test_vizwiz_invariants(hub):
    rows = rows_of("lmms-lab/VizWiz-VQA")
    assert all(len(r["answers"]) == 10 for r in rows)
    assert any("unanswerable" in r["answers"] for r in rows)
    assert any(Counter(r["answers"]).most_common(1)[0][0] == "unanswerable" for r in rows)
    assert {r["category"] for r in rows} <= {"other", "unanswerable", "yes/no", "number"}
    assert all(r["answers"] == [] for r in rows_of("lmms-lab/VizWiz-VQA", "default", "test"))


def test_scienceqa_invariants(hub):
    rows = rows_of("lmms-lab/ScienceQA")
    assert all(2 <= len(r["choices"]) <= 5 and 0 <= r["answer"] < len(r["choices"]) for r in rows)
    assert {len(r["choices"]) for r in rows} >= {2, 5}
    assert any(r["hint"] == "" for r in rows) and any(r["hint"] for r in rows)
    assert all(r["image"] is not None for r in rows)                        # the IMG subset: every row has one
    full = rows_of("lmms-lab/ScienceQA", "ScienceQA-FULL", "test")
    assert any(r["image"] is None for r in full) and any(r["image"] is not None for r in full)


def test_mme_invariants(hub):
    rows = rows_of("lmms-lab/MME")
    pairs = defaultdict(list)
    for r in rows:
        pairs[r["question_id"]].append(r)
    assert all(len(p) == 2 for p in pairs.values())
    for qid, (a, b) in pairs.items():
        assert {a["answer"], b["answer"]} == {"Yes", "No"}, qid
        assert a["image"] == b["image"] and a["category"] == b["category"]
    assert all(r["question"].endswith(" Please answer yes or no.") for r in rows)
    images_per_category = Counter(p[0]["category"] for p in pairs.values())
    assert set(images_per_category) == set(fx.MME_PERCEPTION) | set(fx.MME_COGNITION)
    assert sum(images_per_category[c] >= 2 for c in fx.MME_PERCEPTION) >= 2
    assert sum(images_per_category[c] >= 2 for c in fx.MME_COGNITION) >= 2
    files = data.data_files(hub_dataset("lmms-lab/MME"), hub / "lmms-lab/MME")
    per_file = [Counter(pq.read_table(f, columns=["question_id"]).column(0).to_pylist()) for f in files]
    assert all(n == 2 for counts in per_file for n in counts.values())       # no pair straddles two files


def test_hallusionbench_invariants(hub):
    image = rows_of("lmms-lab/HallusionBench")
    non_image = rows_of("lmms-lab/HallusionBench", "default", "non_image")
    assert all(r["image"] is not None and r["visual_input"] in ("1", "2") for r in image)
    assert all(r["image"] is None and r["visual_input"] == "0" for r in non_image)
    assert {r["category"] for r in image} == {"VD", "VS"}
    assert all(r["gt_answer"] in ("0", "1") for r in image + non_image)
    figures = defaultdict(set)
    for r in image:
        figures[(r["category"], r["subcategory"], r["set_id"], r["question_id"])].add(r["figure_id"])
    assert all(len(f) >= 2 for f in figures.values())                       # each question pairs two figures
    sample = HubSample(id="0", question="", references=(), meta={}, image_value=non_image[0]["image"])
    assert sample.image() is None


def test_coco_invariants(hub):
    val = rows_of("lmms-lab/COCO-Caption2017")
    assert all(len(r["answer"]) == 5 and r["question"] == fx.COCO_PROMPT for r in val)
    for r in val:
        assert int(r["question_id"].split("_")[-1].split(".")[0]) == r["id"]
        assert Image.open(io.BytesIO(r["image"]["bytes"])).size == (r["width"], r["height"])
    test = rows_of("lmms-lab/COCO-Caption2017", "default", "test")
    assert test and all(r["question"] == fx.COCO_PROMPT for r in test)


def test_mmvet_invariants(hub):
    rows = rows_of("lmms-lab/MMVet")
    tags = [set(r["capability"].split(",")) for r in rows]
    assert all(t <= {"rec", "ocr", "know", "gen", "spat", "math"} for t in tags)
    assert {"rec,ocr,math", "rec,know,gen", "spat"} <= {r["capability"] for r in rows}
    assert any("<AND>" in r["answer"] for r in rows) and any("<OR>" in r["answer"] for r in rows)


def test_social_counterfactual_sets_are_complete(hub):
    rows = rows_of("Intel/SocialCounterfactuals")
    sets = defaultdict(list)
    for r in rows:
        sets[r["counterfactual_set"]].append(r)
    sizes = {fx.SOCIAL_SEGMENTS[s][4]: s for s in fx.SOCIAL_SEGMENTS}
    assert sorted(len(group) for group in sets.values()) == sorted(sizes)
    for group in sets.values():
        segment = {r["dataset_segment"] for r in group}
        assert len(segment) == 1
        a1_type, a1s, a2_type, a2s, size = fx.SOCIAL_SEGMENTS[segment.pop()]
        assert len(group) == size
        assert {(r["a1"], r["a2"]) for r in group} == {(a1, a2) for a1 in a1s for a2 in a2s}
        for r in group:
            assert (r["a1_type"], r["a2_type"]) == (a1_type, a2_type)
            assert r["a1a2"] == f"{r['a1']} {r['a2']}"
            assert f" {r['a1a2']} " in f" {r['caption']}"
        occupations = {r["caption"].split(f"{r['a2']} ", 1)[1] for r in group}   # the occupation follows a2
        assert len(occupations) == 1
    assert "A photo of a White male plumber" in {r["caption"] for r in rows}
    assert "an obese female carpenter" in {r["caption"] for r in rows}
    files = data.data_files(hub_dataset("Intel/SocialCounterfactuals"), hub / "Intel/SocialCounterfactuals")
    spread = [{r for r in pq.read_table(f, columns=["counterfactual_set"]).column(0).to_pylist()} for f in files]
    assert spread[0] & spread[1]                                             # a set straddles the two shards


# --------------------------------------------------------------------------------------------------
# Copies in the wrong shape, and no copy at all.

DROPPED = [("lmms-lab/POPE", "answer"), ("lmms-lab/GQA", "imageId"), ("lmms-lab/textvqa", "answers"),
           ("lmms-lab/VizWiz-VQA", "answers"), ("lmms-lab/ScienceQA", "choices"), ("lmms-lab/MME", "category"),
           ("lmms-lab/HallusionBench", "gt_answer"), ("lmms-lab/COCO-Caption2017", "answer"),
           ("lmms-lab/MMVet", "capability"), ("Intel/SocialCounterfactuals", "counterfactual_set")]


@pytest.mark.parametrize("name,column", DROPPED)
def test_a_dropped_column_names_the_dataset_and_the_column(tmp_path, name, column):
    set_data_dirs([tmp_path])
    fx.write_dataset(name, tmp_path, drop_column=column)
    with pytest.raises(DatasetSchemaError) as error:
        next(read_rows(hub_dataset(name)))
    assert name in str(error.value) and repr(column) in str(error.value)
    assert len(list(read_rows(hub_dataset(name, drop=column)))) > 0        # the other columns still read


def test_a_column_of_another_type_is_an_error(hub):
    dataset = HubDataset("lmms-lab/MME", "default", "test", {"question_id": "string", "answer": "list<string>"})
    with pytest.raises(DatasetSchemaError, match=r"lmms-lab/MME.*'answer' is string"):
        next(read_rows(dataset))


def test_a_missing_config_names_it_and_the_configs_present(tmp_path):
    set_data_dirs([tmp_path])
    fx.write_dataset("lmms-lab/GQA", tmp_path, rename_config={"testdev_balanced_instructions": "testdev_instructions"})
    with pytest.raises(DatasetSchemaError) as error:
        next(read_rows(hub_dataset("lmms-lab/GQA")))
    message = str(error.value)
    assert "lmms-lab/GQA" in message and "'testdev_balanced_instructions'" in message
    assert "'testdev_instructions'" in message and "'testdev_balanced_images'" in message
    renamed = hub_dataset("lmms-lab/GQA")
    renamed = HubDataset(renamed.repo, "testdev_instructions", renamed.split, renamed.columns)
    assert len(list(read_rows(renamed))) == 6


def test_rename_config_by_name_renames_the_evaluated_config(tmp_path):
    set_data_dirs([tmp_path])
    fx.write_dataset("lmms-lab/ScienceQA", tmp_path, rename_config="ScienceQA-IMAGE")
    with pytest.raises(DatasetSchemaError, match=r"'ScienceQA-IMG'.*'ScienceQA-FULL', 'ScienceQA-IMAGE'"):
        next(read_rows(hub_dataset("lmms-lab/ScienceQA")))


def test_a_missing_split_names_it(hub):
    with pytest.raises(DatasetSchemaError, match=r"no split 'validation' \(it has \['test'\]\)"):
        next(read_rows(hub_dataset("lmms-lab/POPE", "default", "validation")))


@pytest.mark.parametrize("name", fx.DATASETS)
def test_a_missing_dataset_says_how_to_get_it(tmp_path, name):
    set_data_dirs([tmp_path])
    dataset = HubDataset(name, *fx.PRIMARY[name], {"image": "image"}, size_note="27 GB")
    with pytest.raises(DatasetUnavailable) as error:
        next(read_rows(dataset))
    message = str(error.value)
    assert f"huggingface-cli download --repo-type dataset {name}" in message
    assert "--lvlm-data-dir" in message and "27 GB" in message
    assert data.unavailable_reason(dataset) == message


def test_rows_hold_a_reference_to_their_picture_not_its_bytes(hub):
    row = next(read_rows(hub_dataset("lmms-lab/POPE")))
    assert isinstance(row["image"], data.ImageRef)
    assert decode_image(row["image"], "POPE item").size == decode_image(row["image"].value(), "POPE item").size


def test_the_encoder_mirror_is_found(tmp_path):
    set_data_dirs([tmp_path])
    mirror = fx.write_dataset("lmms-lab/POPE", tmp_path, org="lmms-lab-encoder")
    assert mirror == tmp_path / "lmms-lab-encoder" / "POPE"
    dataset = hub_dataset("lmms-lab/POPE")
    assert data.locate(dataset) == mirror
    assert resolved(read_rows(dataset)) == fx.spec("lmms-lab/POPE").config("default").split("test").rows
    assert data.unavailable_reason(dataset) is None
    original = fx.write_dataset("lmms-lab/POPE", tmp_path)                # both there: the lmms-lab id first
    assert data.locate(dataset) == original


def test_the_encoder_mirror_of_all_ten(tmp_path):
    set_data_dirs([fx.write_all(tmp_path, org="lmms-lab-encoder")])
    assert not (tmp_path / "lmms-lab").exists()
    for name in fx.DATASETS:
        org = "lmms-lab-encoder/" if name.startswith("lmms-lab/") else "Intel/"
        assert data.locate(hub_dataset(name)) == tmp_path / (org + name.split("/")[1])
        assert len(rows_of(name)) > 0


@pytest.mark.parametrize("name", fx.DATASETS)
def test_a_corrupt_picture_names_the_dataset_and_the_item(tmp_path, name):
    set_data_dirs([tmp_path])
    config, split = fx.spec(name).image_target
    bad = 1
    fx.write_dataset(name, tmp_path, corrupt_image_row=bad)
    dataset = hub_dataset(name, config, split)
    rows = list(read_rows(dataset))
    sample = HubSample(id=f"row-{bad}", question="", references=(), meta={}, image_value=rows[bad]["image"],
                       source=str(dataset))
    with pytest.raises(ValueError, match=rf"{re.escape(name)}.*item 'row-{bad}'.*not a readable picture"):
        sample.image()
    with pytest.raises(ValueError, match=rf"{re.escape(name)} item 'x'"):
        decode_image(rows[bad]["image"], f"{name} item 'x'")
    decode_image(rows[0]["image"], "row 0")                                 # the others still decode


def test_helpers_refuse_what_the_dataset_does_not_have(tmp_path):
    with pytest.raises(KeyError):
        fx.write_dataset("lmms-lab/POPE", tmp_path, drop_column="no_such_column")
    with pytest.raises(KeyError):
        fx.write_dataset("lmms-lab/POPE", tmp_path, rename_config={"nope": "x"})
    with pytest.raises(IndexError):
        fx.write_dataset("lmms-lab/MMVet", tmp_path, corrupt_image_row=99)
    with pytest.raises(KeyError):
        fx.write_dataset("lmms-lab/NoSuchBench", tmp_path)


# --------------------------------------------------------------------------------------------------
# Defects found in pytest_lvlmbench/tasks/data.py while writing these fixtures, now fixed.

def test_decode_image_of_empty_raw_bytes_is_a_value_error():
    with pytest.raises(ValueError, match="MMVet item 'v1_0'"):
        decode_image(b"", "MMVet item 'v1_0'")


def test_a_corrupt_header_declaring_a_huge_picture_names_the_item():
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))
    with pytest.raises(ValueError, match="POPE item '3'"):
        decode_image({"bytes": png, "path": "x.png"}, "POPE item '3'")


def test_a_card_listing_data_files_as_plain_paths_is_read(tmp_path):
    root = fx.write_dataset("lmms-lab/MMVet", tmp_path)
    text = (root / "README.md").read_text(encoding="utf-8")
    start, end = text.index("configs:"), text.index("\n---", 3)
    (root / "README.md").write_text(text[:start] + "configs:\n- config_name: default\n  data_files:\n  - data/test-*"
                                    + text[end:], encoding="utf-8")
    assert data.readme_configs(root) == {"default": {"train": ["data/test-*"]}}


def resolved(rows) -> list[dict]:
    """Rows with each picture reference read back into its hub Image value."""
    return [{k: v.value() if isinstance(v, data.ImageRef) else v for k, v in row.items()} for row in rows]
