"""Safe-setting search (pytest_lvlmbench/analysis/frontier.py): a fixed sequence over bit widths, Pareto front."""

import pytest

from pytest_lvlmbench.analysis.frontier import Point, families, family_of, ladder_of, pareto, search
from pytest_lvlmbench.core.settings import Setting


def fake(safe_down_to: dict[str, int], calls: list[str]):
    """An evaluation where a family is safe at bits >= its threshold (0: never safe)."""
    def evaluate(setting: Setting) -> Point:
        calls.append(setting.id)
        kind, family = family_of(setting)
        bits = setting.kv.bits if kind == "kv" else setting.weights.bits
        return Point(setting.id, kind, family, bits, bits / 16, 0.0 if bits >= safe_down_to[family] else 0.1,
                     0.0, 0.0, bits >= safe_down_to[family] > 0, {})
    return evaluate


def test_families_are_searched_in_a_fixed_sequence_that_stops_at_the_first_unsafe():
    grid = [Setting.from_id(s) for s in ("fp16", "kv4-uniform", "kv8-group-g8-r0", "w4-gptq-g128", "w2-rtn")]
    assert set(families(grid)) == {"kv{b}-uniform", "kv{b}-group-g8-r0", "w{b}-gptq-g128", "w{b}-rtn"}
    calls = []
    thresholds = {"kv{b}-uniform": 4, "kv{b}-group-g8-r0": 2, "w{b}-gptq-g128": 3, "w{b}-rtn": 0}
    points, cheapest = search(grid, fake(thresholds, calls))
    assert {f: p and p.setting for f, p in cheapest.items()} == {
        "kv{b}-uniform": "kv4-uniform", "kv{b}-group-g8-r0": "kv2-group-g8-r0", "w{b}-gptq-g128": "w3-gptq-g128",
        "w{b}-rtn": None}
    assert "w4-rtn" not in calls and "w2-rtn" not in calls          # 8 bits unsafe: nothing cheaper tried
    assert calls[:3] == ["kv8-uniform", "kv4-uniform", "kv3-uniform"] and "kv2-uniform" not in calls  # 3 failed
    # uniform 8, 4, 3; group 8, 4, 3, 2; gptq 8, 4, 3, 2; rtn 8: 12 of the 16, none twice
    assert len(calls) == len(set(calls)) == 12 and len(points) == len(calls)


def test_a_cheaper_setting_after_an_unsafe_one_is_never_claimed():
    """Safe at 8 and at 2 but not at 4: the answer is 8 bits (the order never gives a failed step a
    second chance; the old 8 -> 2 -> bisect order reported 2)."""
    def evaluate(setting: Setting) -> Point:
        bits = setting.kv.bits
        return Point(setting.id, "kv", "kv{b}-uniform", bits, bits / 16, 0.0, 0.0, 0.0, bits != 4, {})

    _, cheapest = search([Setting.from_id("kv4-uniform")], evaluate)
    assert cheapest["kv{b}-uniform"].setting == "kv8-uniform"


def test_the_pareto_front_keeps_undominated_points_per_kind():
    def p(name, kind, cost, drop):
        return Point(name, kind, "f", 4, cost, drop, drop, drop, True, {})

    points = [p("a", "kv", 0.1, 0.2), p("b", "kv", 0.2, 0.05), p("c", "kv", 0.3, 0.1), p("d", "weights", 0.3, 0.1)]
    assert [q.setting for q in pareto(points)] == ["a", "b", "d"]   # c: b is cheaper and better


def test_eviction_and_pruning_families_climb_their_own_ladders_cheapest_last():
    """Budgets 80 > 60 > 40 > 20 > 10 percent kept, pruning 25 > 50 > 75 > 90 percent removed, pooling
    2 > 3 > 4: the same fixed sequence as bits, so the same guarantee; all on the KV front."""
    grid = [Setting.from_id(s) for s in ("fp16", "evict-snapkv-b40-w4", "kv4-uniform+evict-h2o-b20", "vtok-pool2",
                                         "vtok-fastv-k2-r50", "kv4-group-g32-r128+vtok-random-r12")]
    assert set(families(grid)) == {"evict-snapkv-b{b}-w4", "kv4-uniform+evict-h2o-b{b}", "vtok-pool{b}",
                                   "vtok-fastv-k2-r{b}", "kv4-group-g32-r128+vtok-random-r{b}"}
    safe_while = {"evict-snapkv-b{b}-w4": lambda b: b >= 40, "kv4-uniform+evict-h2o-b{b}": lambda b: b >= 90,
                  "vtok-pool{b}": lambda f: f <= 3, "vtok-fastv-k2-r{b}": lambda r: r <= 50,
                  "kv4-group-g32-r128+vtok-random-r{b}": lambda r: True}
    calls = []

    def evaluate(setting):
        calls.append(setting.id)
        ladder = ladder_of(setting)
        rung = ladder.rung_of(setting)
        return Point(setting.id, ladder.kind, ladder.family, rung, rung / 100, 0.0, 0.0, 0.0,
                     safe_while[ladder.family](rung), {})

    points, cheapest = search(grid, evaluate)
    assert {f: p and p.setting for f, p in cheapest.items()} == {
        "evict-snapkv-b{b}-w4": "evict-snapkv-b40-w4", "kv4-uniform+evict-h2o-b{b}": None, "vtok-pool{b}": "vtok-pool3",
        "vtok-fastv-k2-r{b}": "vtok-fastv-k2-r50", "kv4-group-g32-r128+vtok-random-r{b}": "kv4-group-g32-r128+vtok-random-r90"}
    assert calls[:4] == ["evict-snapkv-b80-w4", "evict-snapkv-b60-w4", "evict-snapkv-b40-w4", "evict-snapkv-b20-w4"]
    assert "evict-snapkv-b10-w4" not in calls and "kv4-uniform+evict-h2o-b60" not in calls
    assert {p.kind for p in points} == {"kv"}


def test_the_frontier_searches_eviction_budgets_from_the_command_line(pytester):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "c"),
                                           "--lvlm-frontier", "visual_reasoning", "--lvlm-limit", "10",
                                           "--kv-evict", "snapkv-b40-w4")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*evict-snapkv-b80-w4 *no*", "*evict-snapkv-b{b}-w4: none (not even evict-snapkv-b80-w4)*",
                                 "*evaluated 1 of the 5 settings of 1 families (80/60/40/20/10*"])


def test_combined_settings_are_refused():
    with pytest.raises(ValueError, match=r"'w4-rtn\+kv4-uniform': the frontier searches KV or weight settings"):
        family_of(Setting.from_id("w4-rtn+kv4-uniform"))
    with pytest.raises(ValueError, match=r"'w4-rtn\+evict-snapkv-b40': the frontier searches KV or weight settings"):
        family_of(Setting.from_id("w4-rtn+evict-snapkv-b40"))
    with pytest.raises(ValueError, match=r"searches eviction or pruning, not both at once"):
        family_of(Setting.from_id("evict-snapkv-b40+vtok-pool2"))


def test_the_frontier_runs_from_the_command_line(pytester):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "c"),
                                           "--lvlm-frontier", "visual_reasoning", "--lvlm-limit", "20",
                                           "--kv-bits", "8", "--kv-method", "uniform", "--lvlm-plot", "f.png")
    assert result.ret == 0
    # 20 items cannot show 8-bit is safe (0 broken of 20: p = 0.67): the search stops there
    result.stdout.fnmatch_lines(["*lvlmbench frontier: tiny on shapes_gqa*", "*kv8-uniform*no*",
                                 "*kv{b}-uniform: none (not even kv8-uniform)*", "*evaluated 1 of the 4 settings*"])
    assert (pytester.path / "f.png").stat().st_size > 0
    bad = pytester.runpytest_subprocess("--lvlm-frontier", "vision")
    assert bad.ret == 4 and "unknown capabilities" in bad.stderr.str()


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_frontier_reads_real_datasets_from_the_data_dir(pytester, tmp_path, monkeypatch, how):
    import dataset_fixtures as fx

    fx.write_dataset("lmms-lab/GQA", tmp_path / "data")
    args = ["-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "c"), "--lvlm-frontier", "visual_reasoning",
            "--lvlm-limit", "6", "--kv-bits", "8", "--kv-method", "uniform"]
    if how == "option":
        args += ["--lvlm-data-dir", str(tmp_path / "data")]
    else:
        monkeypatch.setenv("LVLMBENCH_DATA_DIR", str(tmp_path / "data"))
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["*lvlmbench frontier: tiny on shapes_gqa, gqa (margin*"])


def test_the_frontier_runs_from_an_ini_key(pytester):
    pytester.makeini("[pytest]\nlvlm_frontier = all\nlvlm_limit = 4\nlvlm_kv_bits = 8\nlvlm_kv_method = uniform\n"
                     "lvlm_weight_bits = 8\nlvlm_weight_method = rtn\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lvlm-cache", str(pytester.path / "c"))
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["*lvlmbench frontier: tiny on shapes_*, shapes_*", "*evaluated * settings*"])
    assert "no tests ran" not in result.stdout.str()
