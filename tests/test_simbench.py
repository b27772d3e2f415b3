"""tools/simbench.py itself: a config of any length reaches the firmware (the unix port dies
with "FATAL: uncaught NLR" on a command-line argument of 256 bytes or more, so SimBench hands
it over in a file), and a bench nobody closed is reaped when its test ends."""
import json

import pytest

import conftest
import simbench
from e2e import FAST, SimBench
from mp import VMS, MicroPython


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


@pytest.mark.parametrize("vm", VMS)
def test_device_time_arithmetic_wraps_as_the_device_does(vm):
    """now_us(ahead)/ticks_diff_us agree with the VM's own ticks_add/ticks_diff, across
    the wrap: 2**30 us (~17.9 min) on the 32-bit VM as on the chip, where a plain
    difference of two device times once gave a test a session of -1068 s."""
    m = MicroPython(vm=vm)
    try:
        period = m.run("from time import ticks_add\nresult = ticks_add(0, -1) + 1")
        b = SimBench(start=False, vm=vm)
        assert b.ticks_period() == period
        for t, d in [(5, -10), (period - 5, 10), (period // 2, period // 2 - 1), (0, 123456)]:
            dev = m.run("from time import ticks_add, ticks_diff\n"
                        "t = ticks_add(data[0], data[1])\nresult = [t, ticks_diff(t, data[0])]",
                        [t, d])
            assert dev[1] == d and b.ticks_diff_us(dev[0], t) == d, (t, d, dev)
        with SimBench(vm=vm) as b:
            t = b.now_us(-1000)
            assert 0 <= t < period
            assert -1000 - 5e6 < b.ticks_diff_us(t, b.now_us()) < -1000
    finally:
        m.close()
