"""Options are parsed once, as a plain function of the raw values: bad values name the option and what is allowed."""

import pytest

from pytest_lvlmbench.options import LIST_OPTIONS, SCALAR_OPTIONS, options_from, raw_values


def values(**overrides):
    """Raw values as pytest would give them with nothing set on the command line or in an ini file."""
    return raw_values(lambda name: overrides.get(name), lambda ini: None)


def test_defaults_are_the_tiny_model_on_the_default_grid_on_cpu():
    options = options_from(values())
    assert options.models == ["tiny"] and options.device == "cpu" and options.batch_size == 32
    assert options.settings[0].is_baseline and len(options.settings) == 22
    assert options.report is None and not options.report_answers and options.include == []


def test_the_command_line_wins_over_the_ini_file():
    ini = {"lvlm_kv_bits": ["8"], "lvlm_limit": "7", "lvlm_batch_size": "3"}
    raw = raw_values(lambda name: {"lvlm_limit": 5}.get(name), ini.get)
    options = options_from(raw)
    assert options.limit == 5 and options.batch_size == 3
    assert [s.id for s in options.settings] == ["fp16", "kv8-uniform", "kv8-group-g32-r128", "kv8-outlier-s2"]


@pytest.mark.parametrize("overrides, message", [
    ({"lvlm_limit": 0}, "--lvlm-limit 0: must be a positive number"),
    ({"lvlm_batch_size": 0}, "--lvlm-batch-size 0: must be positive"),
    ({"lvlm_dtype": "int8"}, "unknown --lvlm-dtype 'int8': allowed are auto, float32, float16, bfloat16"),
    ({"lvlm_device": "tpu"}, "unknown --lvlm-device 'tpu': allowed are cpu, cuda, cuda:N"),
    ({"lvlm_device": "cuda"}, "--lvlm-device cuda asked for, but CUDA is not available here"),
    ({"lvlm_report_answers": "all"}, "--lvlm-report-answers 'all': allowed are yes, no"),
    ({"kv_bits": [5]}, "invalid bits=5"),
])
def test_bad_values_name_the_option_and_what_is_allowed(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        options_from(values(**overrides))


def test_a_bad_ini_value_names_the_key():
    with pytest.raises(ValueError, match=r"ini key lvlm_limit = 'many' is not a valid int"):
        raw_values(lambda name: None, {"lvlm_limit": "many"}.get)


def test_every_option_is_a_flag_and_an_ini_key():
    inis = [ini for _, ini, *_ in LIST_OPTIONS + SCALAR_OPTIONS]
    assert len(inis) == len(set(inis)) and all(ini.startswith("lvlm_") for ini in inis)
