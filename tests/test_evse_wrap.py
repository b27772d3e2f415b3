"""firmware/core/evse.py across the tick wrap: the clock (evse.step's `now`, Plant.now) driven
over days on both VMs. On the chip and on the 32-bit VM (tools/mp32/) ticks_ms wraps every
2**30 ms (~12.4 days) and ticks_diff is only right for intervals below 2**29 ms (~6.2 days);
a timestamp kept but not looked at for longer reads as negative (or as young again).
The 64-bit PyPI port (period 2**62) never shows it: each test runs on both."""
import pytest

from mp import MicroPython

DAY = 24 * 3600 * 1000
MIN = 60 * 1000
PERIOD = 1 << 30  # the chip's ticks period (ms)

PRE = """
import evse_sim as S
from firmware.core import evse as E
from time import ticks_add

def jump(p, ms):
    # the clock moves on in 1 h steps (each step sees the whole machine, as on the chip)
    while ms > 0:
        d = ms if ms < 3600000 else 3600000
        p.tick(d)
        ms -= d

def start(s):
    return ticks_add(0, s)
"""


@pytest.fixture(scope="module", params=["pypi", "mp32"])
def vm(request):
    m = MicroPython(vm=request.param)
    yield m
    m.close()


# --- item 1: the lockout counts only trips within its 15 min window --------------------

TRIPS = PRE + """
def trip(p):
    # a pilot short (state E): one retrying fault, counted towards the lockout
    p.ev = 'E'
    t = p.until(lambda o: o.fault & E.F_PILOT_SHORT, 1000)
    assert t > 0, p.snap()
    p.ev = 'A'
    p.run(6000)  # retry_ms 5 s: the fault clears (unless locked out)
    return t + 6000

p = S.Plant(S.make_cfg({'retry_ms': 5000}), now=start(data[0]))
p.run(1500)
faults = []
el = 0  # ms since the first trip began
for at in data[1]:
    jump(p, at - el)
    el = at + trip(p)
    faults.append(E.fault_names(p.evse.outputs.fault))
result = faults
"""


@pytest.mark.parametrize("start", [0, -3000, (1 << 29) - 1])
@pytest.mark.parametrize("trips, locked", [
    # the audit's case: day 0, day 1, day 7 (7 d > 2**29 ms: the diff to day 0 was negative)
    ([0, DAY, 7 * DAY], None),
    ([0, 7 * DAY, 7 * DAY + 5 * MIN], None),
    # 2**30 ms + 10 min after the first trip it looks 10 min old: only aging the ring helps
    ([0, 5 * MIN, PERIOD + 10 * MIN], None),
    ([0, 5 * MIN, 2 * PERIOD + 2 * MIN], None),
    # real lockouts still latch: 3 trips within 15 min, also after a week of old trips
    ([0, 5 * MIN, 10 * MIN], 2),
    ([0, DAY, 7 * DAY, 7 * DAY + 5 * MIN, 7 * DAY + 14 * MIN], 4),
    ([0, PERIOD, PERIOD + 5 * MIN, PERIOD + 10 * MIN], 3),
])
def test_lockout_counts_only_trips_within_the_window(vm, start, trips, locked):
    faults = vm.run(TRIPS, [start, trips])
    for i, f in enumerate(faults):
        if locked is not None and i >= locked:
            assert "lockout" in f, (i, faults)
        else:
            assert "lockout" not in f, (i, faults)


# --- item 2: the 100 ms of stable C is timed afresh under PWM ---------------------------

C_PAUSE = PRE + """
p = S.Plant(S.make_cfg({'min_off_ms': 0}), now=start(data[0]))
p.run(1500); p.ev = 'B'; p.run(1000); p.ev = 'C'; p.run(500)
assert p.evse.outputs.contactor, p.snap()
p.evse.set_enabled(False)
p.run(7000)  # soft stop: the EV holds C (C1), the contactor opens after 6 s
s1 = p.snap()
jump(p, data[1])
p.evse.set_enabled(True)
t_close = p.until(lambda o: o.contactor, 2000)
result = [s1, t_close, p.snap()]
"""


@pytest.mark.parametrize("start", [0, (1 << 29) - 1])
@pytest.mark.parametrize("pause", [10 * 1000, 2 * MIN, 7 * DAY, 10 * DAY, 13 * DAY])
def test_re_enable_after_a_long_pause_in_c_closes_after_100ms_of_c2(vm, start, pause):
    s1, t_close, s2 = vm.run(C_PAUSE, [start, pause])
    assert s1["state"] == "C1" and not s1["contactor"], s1
    # C is held for 100 ms under PWM (ref §8), timed from the re-enable, whatever the pause
    assert 100 <= t_close <= 200, (t_close, s2)
    assert s2["state"] == "C2" and s2["contactor"], s2


# --- item 3: a fault during the wake-up ends the wake-up ------------------------------

WAKE = PRE + """
p = S.Plant(S.make_cfg({'rcd_fitted': False, 'min_off_ms': 0}), now=start(data[0]))
p.run(1500); p.ev = 'B'; p.run(1000); p.ev = 'C'; p.run(500)
assert p.evse.outputs.contactor, p.snap()
p.evse.set_enabled(False); p.ev = 'B'; p.run(1000)  # paused; the car stops
p.evse.set_enabled(True)  # resume: the wake-up is armed (ref §8)
p.run(31000)  # 30 s in B2, then the wake-up's F
s_wake = p.snap()
p.welded = True; p.run(1500)  # a latched fault (welded) during the wake-up's F
s_fault = p.snap()
p.welded = False
jump(p, data[1])
p.evse.reset_faults()
p.run(2000)
s_reset = p.snap()
result = [s_wake, s_fault, s_reset]
"""


@pytest.mark.parametrize("start", [0, (1 << 29) - 1])
@pytest.mark.parametrize("held", [5 * MIN, 7 * DAY])
def test_fault_during_the_wake_up_ends_it(vm, start, held):
    s_wake, s_fault, s_reset = vm.run(WAKE, [start, held])
    assert s_wake["state"] == "F" and not s_wake["fault"], s_wake
    assert "welded" in s_fault["fault"], s_fault
    # After the reset: B2 again (the wake-up starts over with its 30 s in B2), not the old
    # wake-up's F (held up to 6.2 days after a > 6.2 day fault) nor its x1.
    assert s_reset["state"] == "B2" and not s_reset["fault"], s_reset
