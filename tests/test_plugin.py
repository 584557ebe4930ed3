"""The installed plugin in a project that does not benchmark: registered, idle, free."""

UNRELATED_TEST = """
import sys

def test_the_plugin_imported_nothing_heavy():
    heavy = [name for name in ("torch", "transformers", "numpy", "quant.affine") if name in sys.modules]
    assert heavy == []
"""


def test_plugin_registers_through_its_entry_point(pytester):
    assert "lvlmbench" in pytester.runpytest_subprocess("--trace-config").stdout.str()


def test_an_unrelated_project_pays_no_import_gets_no_header_and_no_files(pytester):
    pytester.makepyfile(UNRELATED_TEST)
    for args in ((), ("--collect-only",), ("--help",), ("--markers",)):
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
        assert result.ret == 0, (args, result.stdout.str()[-2000:], result.stderr.str()[-2000:])
        assert "lvlmbench: python" not in result.stdout.str()
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    written = [p.name for p in pytester.path.rglob("*") if "lvlmbench" in p.name or p.suffix == ".sqlite"]
    assert written == []   # no .lvlmbench/, no generations.sqlite


def test_the_environment_header_appears_once_an_lvlm_option_is_used(pytester):
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--lvlm-limit", "3")
    result.stdout.fnmatch_lines(["lvlmbench: python *, torch *, transformers *"])
    result.assert_outcomes(passed=1)
