"""hal/sim.py across the ticks_us wrap: a clock the test moves (hal.sim's `time` swapped for
one whose ticks_us it sets; ticks_diff/ticks_add are the VM's own). On the 32-bit VM, as on
the chip, ticks_us wraps every 2**30 us (~17.9 min) and ticks_diff is only right below 2**29
(~8.9 min); the 64-bit PyPI port never shows it: each test runs on both."""
import pytest

from mp import MicroPython

MIN_US = 60 * 1000 * 1000

PRE = """
import time
import hal.sim as S

class Clock:
    def __init__(self):
        self.t = 0
        self.ticks_diff = time.ticks_diff
        self.ticks_add = time.ticks_add

    def ticks_us(self):
        return self.t

    def ticks_ms(self):
        return self.t // 1000

    def run(self, us, step_us, f):
        # move on by us in steps of step_us, calling f() after each step
        while us > 0:
            d = step_us if step_us < us else us
            self.t = time.ticks_add(self.t, d)
            us -= d
            f()

clk = Clock()
real_time = S.time
S.time = clk
try:
    clk.t = time.ticks_add(0, data[0])
    w = S.World()
    result = run(w, clk, data[1:])
finally:
    S.time = real_time
"""

RCD = """
def run(w, clk, args):
    every_us, = args
    rcd = S.SimRcd(w)
    reads = []
    rcd.set_test(True)
    clk.run(25000, 5000, w.update)
    reads.append(rcd.tripped())  # trips 20 ms into the test
    rcd.set_test(False)
    clk.run(40000, 5000, w.update)
    reads.append(rcd.tripped())  # released 30 ms after the test input drops
    # then read every every_us (0: not at all) up to 2 ticks periods (36 min) later
    late = []
    def look():
        if every_us:
            late.append(rcd.tripped())
    for _ in range(12):
        clk.run(3 * 60 * 1000000, every_us or 3 * 60 * 1000000, look)
        late.append(rcd.tripped())
    return [reads, late]
"""


@pytest.fixture(scope="module", params=["pypi", "mp32"])
def vm(request):
    m = MicroPython(vm=request.param)
    yield m
    m.close()


@pytest.mark.parametrize("start", [0, -3000, (1 << 29) - 1])
@pytest.mark.parametrize("every_us", [0, 100000])
def test_rcd_reads_clear_for_good_after_its_self_test(vm, start, every_us):
    reads, late = vm.run(RCD + PRE, [start, every_us])
    assert reads == [True, False], reads
    # (it read tripped again 8.9-17.9 min after each test on the 32-bit VM: F_RCD_TRIP)
    assert not any(late), [i for i, x in enumerate(late) if x][:5]


LOCK = """
def run(w, clk, args):
    jam_us, = args
    lock = S.SimLock(w)
    w.lock_jammed = True
    lock.set(True)
    clk.run(jam_us, 1000000, w.update)
    before = lock.feedback()
    w.lock_jammed = False  # the jam clears: the actuator has long had its travel time
    clk.run(1000, 1000, w.update)
    return [before, lock.feedback()]
"""


@pytest.mark.parametrize("start", [0, (1 << 29) - 1])
@pytest.mark.parametrize("jam_us", [MIN_US, 10 * MIN_US, 17 * MIN_US])
def test_lock_travels_when_a_long_jam_clears(vm, start, jam_us):
    before, after = vm.run(LOCK + PRE, [start, jam_us])
    assert before == 0 and after == 1, (before, after)


DRAW = """
def run(w, clk, args):
    forced_us, = args
    from firmware.core.consts import PILOT_PWM
    w.ev_state = 'C'
    w.contactor = True
    w.pilot = PILOT_PWM
    w.duty_pm = 267  # 16 A
    w.want_ma = 16000
    clk.run(400000, 10000, w.update)
    draws = [w.draw_ma]  # follows the offer after delay_ms (300 ms)
    w.load_ma = 5000  # a forced draw, for a while
    clk.run(forced_us, 1000000, w.update)
    draws.append(w.draw_ma)
    w.load_ma = -1  # back to the EV model: its target is long reached
    clk.run(10000, 10000, w.update)
    draws.append(w.draw_ma)
    return draws
"""


@pytest.mark.parametrize("start", [0, (1 << 29) - 1])
@pytest.mark.parametrize("forced_us", [MIN_US, 10 * MIN_US, 17 * MIN_US])
def test_draw_follows_the_ev_again_after_a_long_forced_load(vm, start, forced_us):
    assert vm.run(DRAW + PRE, [start, forced_us]) == [16000, 5000, 16000]
