"""What a new user meets when their input is wrong (issue 23): a task with nothing in their copy of a
dataset, a corrupt picture, a config.json that does not fit the weights, a data directory one level
too deep, MM-Vet without data, a model without Linear layers, an unreachable hub id. Each is a clear
message naming the bad value and what to do, never a library traceback or a silently wrong number."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

import dataset_fixtures as fx
from pytest_lvlmbench.tasks import data
from pytest_lvlmbench.engine import models
from pytest_lvlmbench.tasks.data import DatasetSchemaError, DatasetUnavailable, HubSample, read_rows, set_data_dirs
from pytest_lvlmbench.metrics.scorers import Scorers
from pytest_lvlmbench.tasks import TASKS
from pytest_lvlmbench.tasks.pope import POPE
from quant import WeightQuantSpec, quantize_model
from quant.layers import LayerSelection
from random_llava import build_random_llava

BENCHMARKS = {f"test_{c}": f"from pytest_lvlmbench.suite import capability_test\ntest_{c} = capability_test({c!r})\n"
              for c in ("spatial", "hallucination")}
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """Only the directories a test sets are searched (never this machine's hub cache)."""
    monkeypatch.delenv("LVLMBENCH_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "_data_dirs", [])
    monkeypatch.setattr(data, "_hub_snapshot", lambda repo: None)


def rewrite(folder: Path, change: Callable[[list[dict]], list[dict]]) -> None:
    """Rewrite every parquet file under ``folder`` with ``change`` applied to its rows, schema kept: a
    user's copy that differs from the public one only in which rows it holds."""
    for path in sorted(folder.rglob("*.parquet")):
        table = pq.read_table(path)
        pq.write_table(pa.Table.from_pylist(change(table.to_pylist()), schema=table.schema), path)


def gqa_without_relations(root: Path) -> Path:
    copy = fx.write_dataset("lmms-lab/GQA", root)
    rewrite(copy / "testdev_balanced_instructions",
            lambda rows: [{**row, "types": {**row["types"], "semantic": "attr"}} for row in rows])
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_random_llava("llava-1.5", tmp_path_factory.mktemp("model") / "m")


def run_suite(pytester, model: Path, data_dir: Path, *args):
    pytester.makepyfile(**BENCHMARKS)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "cache"),
                                         "--model", str(model), "--lvlm-data-dir", str(data_dir), "-m", "baseline",
                                         "-rs", *args)


# ----------------------------------------------------------------------------- 1. no samples in the copy

@pytest.mark.parametrize("limit", [None, 3])
def test_gqa_spatial_on_a_copy_without_relation_questions_is_unavailable_naming_dataset_and_filter(tmp_path, limit):
    set_data_dirs([gqa_without_relations(tmp_path)])
    with pytest.raises(DatasetUnavailable) as error:
        TASKS["gqa_spatial"].load(limit)
    message = str(error.value)
    assert message.startswith("lmms-lab/GQA (config 'testdev_balanced_instructions', split 'testdev') at "
                              f"{tmp_path / 'lmms-lab' / 'GQA'} holds no relation questions (types.semantic == 'rel')")
    assert "huggingface-cli download --repo-type dataset lmms-lab/GQA" in message
    assert "--lvlm-limit" not in message   # the limit counts selected rows: it never empties the task


def test_mme_cognition_on_a_copy_without_cognition_rows_is_unavailable_naming_the_categories(tmp_path):
    rewrite(fx.write_dataset("lmms-lab/MME", tmp_path), lambda rows: [r for r in rows if r["category"] not in COGNITION])
    set_data_dirs([tmp_path])
    with pytest.raises(DatasetUnavailable, match=r"^lmms-lab/MME \(config 'default', split 'test'\) at .* holds no "
                                                 r"cognition questions \(column 'category' one of commonsense_reasoning, "
                                                 r"numerical_calculation, text_translation, code_reasoning\)") as error:
        TASKS["mme_cognition"].load(None)
    assert "--lvlm-limit" not in str(error.value)
    assert TASKS["mme_perception"].load(None)   # the other family is still there


def test_mme_notes_name_the_limit_only_when_it_cut_the_read(tmp_path):
    rewrite(fx.write_dataset("lmms-lab/MME", tmp_path), lambda rows: [r for r in rows if r["category"] != "OCR"])
    set_data_dirs([tmp_path])
    task = TASKS["mme_perception"]
    for limit, cause in ((None, "this copy of lmms-lab/MME has none"),
                         (2, "--lvlm-limit 2 read only part of lmms-lab/MME")):
        samples = task.load(limit)
        stats = task.statistics(samples, ["yes"] * len(samples))
        notes = [stats["mme_ocr"].undefined, stats["perception_score"].undefined]
        assert all(cause in note for note in notes), (limit, notes)
        assert limit is not None or not any("--lvlm-limit" in note for note in notes)


def test_a_task_with_no_samples_in_the_copy_skips_with_that_reason(pytester, tmp_path, model_dir):
    result = run_suite(pytester, model_dir, gqa_without_relations(tmp_path / "data"), "-k", "gqa_spatial and not shapes_")
    result.assert_outcomes(skipped=1)
    text = result.stdout.str()
    assert "holds no relation questions (types.semantic == 'rel')" in text
    assert "--lvlm-limit" not in text and "Traceback" not in text


# ----------------------------------------------------------------------------- 2. a corrupt picture

def test_a_corrupt_picture_names_dataset_item_and_parquet_file(tmp_path):
    fx.write_dataset("lmms-lab/POPE", tmp_path, corrupt_image_row=1)
    set_data_dirs([tmp_path])
    samples = TASKS["pope_adversarial"].load(None)
    shard = tmp_path / "lmms-lab" / "POPE" / "data" / "test-00000-of-00003.parquet"
    with pytest.raises(DatasetSchemaError) as error:
        samples[1].image()
    assert str(error.value).startswith(f"lmms-lab/POPE item {samples[1].id!r}: the image in {shard} (row 1, column "
                                       "'image') is not a readable picture (")
    assert str(error.value).endswith("the file is corrupt: re-download the dataset")


def test_a_picture_without_bytes_names_the_parquet_file(tmp_path):
    copy = fx.write_dataset("lmms-lab/POPE", tmp_path)
    rewrite(copy / "data", lambda rows: [{**row, "image": {"bytes": None, "path": "x.jpg"}} for row in rows])
    set_data_dirs([tmp_path])
    row = next(read_rows(POPE))
    sample = HubSample("7", "q", (), {}, row["image"], "lmms-lab/POPE")
    with pytest.raises(DatasetSchemaError, match=r"lmms-lab/POPE item '7': the image in .*test-00000-of-00003\.parquet "
                                                 r"\(row 0, column 'image'\) has no bytes \(path 'x\.jpg'\)"):
        sample.image()


def test_a_corrupt_picture_fails_its_test_cleanly(pytester, tmp_path, model_dir):
    fx.write_dataset("lmms-lab/POPE", tmp_path / "data", corrupt_image_row=1)
    result = run_suite(pytester, model_dir, tmp_path / "data", "-k", "pope_adversarial and not shapes_")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "lvlmbench: lmms-lab/POPE item" in text and "test-00000-of-00003.parquet (row 1, column 'image')" in text
    assert "Traceback" not in text and "PIL" not in text and "raise " not in text


# ----------------------------------------------------------------------------- 3. config.json vs weights

def test_a_config_that_does_not_fit_the_weights_names_directory_tensors_and_fix(tmp_path):
    directory = build_random_llava("llava-1.5", tmp_path / "m")
    config = json.loads((directory / "config.json").read_text())
    config["text_config"]["intermediate_size"] *= 2
    (directory / "config.json").write_text(json.dumps(config))
    ref = models.resolve_model(str(directory))   # valid JSON, a LLaVA config: passes the configure-time checks
    with pytest.raises(ValueError) as error:
        models.load_pretrained(ref, torch.float32)
    message = str(error.value)
    assert message.startswith(f"model {str(directory)!r}: {directory}/config.json does not match its weights: "
                              "6 tensor(s) have another shape than the config builds (model.language_model.layers.0."
                              "mlp.down_proj.weight: weights [64, 128], config.json [64, 256]; ")
    assert "(and 3 more)" in message and "restore the one that came with these weights" in message
    assert "ignore_mismatched_sizes" not in message


def test_a_matching_checkpoint_loads_as_before(tmp_path):
    directory = build_random_llava("llava-1.5", tmp_path / "m")
    model = models.load_pretrained(models.resolve_model(str(directory)), torch.float32)
    assert type(model).__name__ == "LlavaForConditionalGeneration" and model.dtype == torch.float32


# ----------------------------------------------------------------------------- 4. data dir one level too deep

def test_a_data_dir_one_level_too_deep_says_to_pass_its_parent(tmp_path):
    fx.write_dataset("lmms-lab/POPE", tmp_path)
    set_data_dirs([tmp_path / "lmms-lab"])
    reason = TASKS["pope_random"].available()
    assert reason.startswith("dataset lmms-lab/POPE is not downloaded")
    assert reason.endswith(f"; {tmp_path / 'lmms-lab' / 'POPE'} exists, but copies are read from DIR/lmms-lab/POPE: "
                           f"pass its parent ({tmp_path}) as --lvlm-data-dir")


def test_the_dataset_folder_itself_as_data_dir_says_which_folder_to_pass(tmp_path):
    fx.write_dataset("lmms-lab/POPE", tmp_path)
    set_data_dirs([tmp_path / "lmms-lab" / "POPE"])
    assert TASKS["pope_random"].available().endswith(
        f"; {tmp_path / 'lmms-lab' / 'POPE'} is the dataset itself, but --lvlm-data-dir takes the folder holding "
        f"lmms-lab/POPE: pass {tmp_path}")


def test_a_missing_dataset_says_where_it_looked(tmp_path):
    set_data_dirs([tmp_path])
    reason = TASKS["pope_random"].available()
    assert f"(looked in {tmp_path}/lmms-lab/POPE, {tmp_path}/lmms-lab-encoder/POPE, the Hugging Face cache " in reason
    assert "exists" not in reason


# ----------------------------------------------------------------------------- 5. MM-Vet without data

def test_mmvet_without_data_or_judge_names_both(tmp_path):
    set_data_dirs([tmp_path])
    reason = TASKS["mmvet_spatial"].unavailable(Scorers())
    data_part, judge_part = reason.split("; and ")
    assert data_part.startswith("dataset lmms-lab/MMVet is not downloaded") and str(tmp_path) in data_part
    assert judge_part.startswith("task 'mmvet_spatial' is scored by a model judge and none is configured: "
                                 "pass --lvlm-judge-url")


def test_mmvet_with_data_and_no_judge_names_only_the_judge(tmp_path):
    set_data_dirs([fx.write_all(tmp_path)])
    assert TASKS["mmvet"].unavailable(Scorers()).startswith("task 'mmvet' is scored by a model judge")
    assert TASKS["mmvet"].available() is None


# ----------------------------------------------------------------------------- 6. nothing to quantize

def test_quantize_model_without_linear_layers_names_the_model_and_what_it_looked_for():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    with pytest.raises(ValueError, match=r"^quantize_model\(Sequential, w4-rtn\): no nn\.Linear layer to quantize "
                                         r"\(looked in the whole model, skipping names containing \['lm_head'\]\)"):
        quantize_model(model, WeightQuantSpec("rtn", 4))


def test_quantize_model_twice_says_it_was_quantized_before():
    model = nn.Sequential(nn.Linear(64, 64))
    quantize_model(model, WeightQuantSpec("rtn", 4))
    with pytest.raises(ValueError, match=r"holds 1 QuantizedLinear already: it was quantized before"):
        quantize_model(model, WeightQuantSpec("rtn", 4))


def test_quantize_model_with_a_layer_selection_on_a_model_without_decoder_layers():
    with pytest.raises(ValueError, match=r"layers='0': Sequential has no config\.num_hidden_layers"):
        quantize_model(nn.Sequential(nn.Linear(64, 64)), WeightQuantSpec("rtn", 4), layers=LayerSelection("0"))


def test_quantize_model_when_the_selection_and_skip_leave_nothing(tiny_llava):
    model = tiny_llava()
    with pytest.raises(ValueError, match=r"^quantize_model\(LlavaForConditionalGeneration, w4-rtn\): no nn\.Linear "
                                         r"layer to quantize \(looked in its language model \(model\.get_decoder\(\)\), "
                                         r"skipping names containing \['layers'\]\).*targets vision/projector"):
        quantize_model(model, WeightQuantSpec("rtn", 4), skip=("layers",))


# ----------------------------------------------------------------------------- 7. unreachable hub id

def test_an_unreachable_hub_id_is_a_usage_error_within_seconds(monkeypatch):
    """Before: hf_hub_download retried the unreachable hub with backoff, ~24 s before the error."""
    from huggingface_hub import constants

    with socket.socket() as probe:   # a local port nobody listens on: connection refused at once
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"^model 'someone/not-a-model' \(someone/not-a-model\) is not in the local "
                                         r"Hugging Face cache and cannot be fetched \(.*\); download it where the hub "
                                         r"is reachable \(huggingface-cli download someone/not-a-model\)"):
        models.check_hub_model(models.resolve_model("someone/not-a-model"))
    assert time.perf_counter() - start < 5
