import pytest
from mp import MicroPythonError, run_script


def test_runs_in_micropython(mp):
    assert mp.run("import sys\nresult = sys.implementation.name") == "micropython"


def test_data_round_trip(mp):
    assert mp.run("result = [x * 2 for x in data]", [1, 2, 3]) == [2, 4, 6]


def test_traceback_is_reported(mp):
    with pytest.raises(MicroPythonError, match="ZeroDivisionError"):
        mp.run("1 // 0")
    # the process survives a failing case
    assert mp.run("result = 7") == 7


def test_repo_root_on_path(mp):
    assert mp.run("import firmware\nresult = True") is True


def test_run_script_fails_loudly():
    with pytest.raises(MicroPythonError, match="NameError"):
        run_script("undefined_name")
