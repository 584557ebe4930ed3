def test_plugin_registers_through_its_entry_point(pytester):
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["lvlmbench: python *, torch *, transformers *"])
    result.assert_outcomes(passed=1)
    assert "lvlmbench" in pytester.runpytest_subprocess("--trace-config").stdout.str()
