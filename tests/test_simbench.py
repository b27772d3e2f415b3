"""tools/simbench.py itself: a config of any length reaches the firmware (the unix port dies
with "FATAL: uncaught NLR" on a command-line argument of 256 bytes or more, so SimBench hands
it over in a file), and a bench nobody closed is reaped when its test ends."""
import json

import pytest

import conftest
import simbench
from e2e import FAST, SimBench


def test_a_config_longer_than_256_bytes_reaches_the_firmware():
    cfg = dict(FAST, max_current_a=20, mqtt_user="u" * 64, mqtt_ca="c" * 64, ocpp_ca="o" * 64,
               web_key="k" * 60)
    assert len(json.dumps(cfg)) > 256
    with SimBench(config=cfg) as b:
        got = b.config_get()
        assert "config rejected" not in b.log()
        b.restart()  # handed over again on every start
        assert b.config_get() == got
    for k, v in cfg.items():
        assert got[k] == v, k


def test_a_bench_left_running_is_reaped():
    reaper = conftest._reaped("this test")
    next(reaper)
    b = SimBench()
    pid = b.proc.pid
    assert b in simbench.live()
    with pytest.warns(UserWarning, match="left 1 firmware process"):
        for _ in reaper:  # the test's end
            pass
    assert not b.alive() and b not in simbench.live(), pid


def test_start_on_a_running_bench_does_not_leave_the_first_process():
    with SimBench() as b:
        first = b.proc
        b.start()
        assert first.poll() is not None and b.alive()
