"""Contactor, RCD (incl. self-test timing), lock, LED, button, watchdog, WiFi and
board construction on the fake `machine`; and the rule that only hal/ and
boards/ import machine."""
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BUILD = """
import machine, network, boards
machine.reset()
b = boards.load(data)
hw = boards.build(b, wifi=('home', 'secret'))
G['hw'] = hw; G['b'] = b
P = machine.pins
"""


def test_both_boards_build_every_driver(mp_fakes):
    code = BUILD + """
names = ('pilot','pp','contactor','rcd','current','meter','temp','lock','led','button','wdt','wifi')
wdt = [o for o in machine.created if isinstance(o, machine.WDT)]
result = [[n for n in names if getattr(hw, n) is None], [w.timeout for w in wdt],
          b.WDT_TIMEOUT_MS, type(hw.meter).__name__]
"""
    assert mp_fakes.run(code, "esp32_devkit") == [[], [2000], 2000, "InternalMeter"]
    # Pico W: no free ADC for CTs; its meter is an SDM630 on RS-485
    assert mp_fakes.run(code, "rp2040_pico_w") == [["current"], [2000], 2000, "SdmMeter"]


def test_load_by_platform_and_sim_hook(mp_fakes, tmp_path):
    code = """
import sys, boards
out = [boards.load('esp32_devkit').NAME]
saved = sys.platform
try:
    for plat in ('esp32', 'rp2'):
        sys.platform = plat
        out.append(boards.load().NAME)
except (AttributeError, TypeError):  # sys.platform read-only on this port
    out += ['esp32_devkit', 'rp2040_pico_w']
finally:
    try:
        sys.platform = saved
    except (AttributeError, TypeError):
        pass
# a board module with its own build(hw) is used as is (boards/sim.py's hook)
class Fake:
    NAME = 'x'
    @staticmethod
    def build(hw):
        hw.pilot = 'simulated'
        return hw
out.append(boards.build(Fake).pilot)
result = out
"""
    assert mp_fakes.run(code) == ["esp32_devkit", "esp32_devkit", "rp2040_pico_w", "simulated"]


def test_watchdog_timeout_and_feed(mp_fakes):
    code = """
import machine
from hal.watchdog import Watchdog
machine.reset()
w = Watchdog(20000)  # above RP2040's maximum: clamped
w.feed(); w.feed()
wdt = machine.created[-1]
result = [wdt.timeout, wdt.feeds]
"""
    assert mp_fakes.run(code) == [8388, 2]


@pytest.mark.parametrize("board", ["esp32_devkit", "rp2040_pico_w"])
def test_contactor_sequence_feedback_and_phases(mp_fakes, board):
    code = BUILD + """
c = hw.contactor
coil = P[b.CONTACTOR_PIN]; fb = P[b.CONTACTOR_FB_PIN]; ph = P[b.PHASE_PIN]
out = [coil.history[:]]
c.set(True); c.set(True); c.set(False); c.set(False); c.set(True)
out.append(coil.history[:])
fb.source = lambda: 1; out.append(c.feedback())
fb.source = lambda: 0; out.append(c.feedback())
out.append(c.set_phases(1))          # already 1 phase after build
out.append(c.set_phases(3))          # refused: main contactor closed
c.set(False)
out.append([c.set_phases(3), ph.value(), c.phases])
out.append([c.set_phases(2), c.phases])
result = out
"""
    res = mp_fakes.run(code, board)
    assert set(res[0]) == {0}  # built open
    assert res[1] == res[0] + [1, 0, 1]  # writes only on change
    assert res[2:4] == [1, 0]  # fb_closed level 1 means closed on both boards
    assert res[4] is None and res[5] == "contactor_closed"
    assert res[6] == [None, 1, 3]
    assert res[7] == ["bad_phases", 3]


def test_contactor_without_feedback_or_phase_pin(mp_fakes):
    code = """
import machine
from hal.contactor import Contactor
c = Contactor(machine.Pin(90, machine.Pin.OUT), phases=3)
result = [c.feedback(), c.phases, c.set_phases(1), c.set_phases(3)]
"""
    assert mp_fakes.run(code) == [-1, 3, "no_phase_switch", None]


@pytest.mark.parametrize("board", ["esp32_devkit", "rp2040_pico_w"])
def test_rcd_trip_opens_contactor_from_irq_and_interlocks(mp_fakes, board):
    code = BUILD + """
import micropython
c = hw.contactor; r = hw.rcd
fault = P[b.RCD_FAULT_PIN]; coil = P[b.CONTACTOR_PIN]
c.set(True)
out = [fault.handler is not None, fault.hard, coil.value()]
fault.source = lambda: 1
micropython.heap_lock()
try:
    fault.fire()            # the pin interrupt
finally:
    micropython.heap_unlock()
out.append([coil.value(), r.tripped(), r.irq_count])
c.set(True)                 # the firmware has not noticed yet: refused
out.append([coil.value(), c.error])
fault.source = lambda: 0
c.set(True)
out.append(coil.value())
result = out
"""
    assert mp_fakes.run(code, board) == [True, True, 1, [0, True, 1], [0, "interlock"], 1]


SELFTEST = BUILD + """
import asyncio, time
r = hw.rcd; test = P[b.RCD_TEST_PIN]; fault = P[b.RCD_FAULT_PIN]
trip_after, clear_after, pre = data2
class RdcDd:  # RDC-DD model: trips trip_after ms into the test pulse, clears clear_after ms after it
    def __init__(self):
        self.t_on = None; self.t_off = None; self.state = pre
    def __call__(self):
        now = time.ticks_ms()
        if test.value() == b.RCD_TEST_ACTIVE:
            if self.t_on is None:
                self.t_on = now; self.t_off = None
            if trip_after is not None and time.ticks_diff(now, self.t_on) >= trip_after:
                self.state = 1
        else:
            if self.t_on is not None and self.t_off is None:
                self.t_off = now
            if self.t_off is not None and clear_after is not None and \\
                    time.ticks_diff(now, self.t_off) >= clear_after:
                self.state = 0
        return self.state if b.RCD_FAULT_ACTIVE else 1 - self.state
fault.source = RdcDd()
n0 = len(test.history)
t0 = time.ticks_ms()
ok, why = asyncio.run(r.selftest())
result = [ok, why, time.ticks_diff(time.ticks_ms(), t0), r.trip_ms, r.clear_ms,
          test.history[n0:], test.value()]
"""


@pytest.mark.parametrize("case,trip,clear,pre,ok,why", [
    ("pass", 100, 200, 0, True, None),
    ("late_trip", 650, 100, 0, False, "rcd_no_trip"),
    ("no_trip", None, None, 0, False, "rcd_no_trip"),
    ("never_clears", 50, None, 0, False, "rcd_no_clear"),
    ("slow_clear", 50, 1400, 0, False, "rcd_no_clear"),
    ("tripped_before", None, None, 1, False, "rcd_tripped_before_test"),
])
def test_rcd_selftest_timing(mp_fakes, case, trip, clear, pre, ok, why):
    code = SELFTEST.replace("data2", repr([trip, clear, pre]))
    res = mp_fakes.run(code, "esp32_devkit")
    got_ok, got_why, took, trip_ms, clear_ms, seq, test_now = res
    assert (got_ok, got_why) == (ok, why)
    assert test_now == 0  # test output always released
    if case == "tripped_before":
        assert seq == [] and took < 500  # (upper bounds: generous for a loaded host)
        return
    assert seq == [1, 0]  # one pulse on the test output
    if case == "pass":
        assert 100 <= trip_ms < 500 and 200 <= clear_ms < 1200 and took < 2000
    elif case in ("late_trip", "no_trip"):
        assert 500 <= took < 1500  # gave up at the 500 ms limit
    else:
        assert 1250 <= took < 2500  # 50 ms to trip + the 1.2 s clear limit


def test_lock_pulse_and_level(mp_fakes):
    code = """
import machine, time
from hal.lock import Lock
a = machine.Pin(50, machine.Pin.OUT); bb = machine.Pin(51, machine.Pin.OUT)
fb = machine.Pin(52, machine.Pin.IN)
lk = Lock(a, bb, fb, 1, pulse_ms=40)
fb.source = lambda: 1
lk.set(True); lk.set(True)
mid = [a.value(), bb.value(), lk.busy]
time.sleep_ms(50); lk.update()
after = [a.value(), bb.value(), lk.busy, lk.feedback(), lk.error]
lk.set(False)                      # switch still says locked after the pulse
time.sleep_ms(50); lk.update()
bad = [a.history, bb.history, lk.error]
lv = Lock(machine.Pin(53, machine.Pin.OUT))
lv.set(True); lv.set(False)
result = [mid, after, bad, machine.pins[53].history, lv.feedback()]
"""
    mid, after, bad, level, fb = mp_fakes.run(code)
    assert mid == [1, 0, True]
    assert after == [0, 0, False, 1, None]
    # lock pulse on a, then unlock pulse on b; the idle half is driven low first
    assert bad == [[0, 1, 0, 0, 0], [0, 0, 0, 1, 0], "lock_fb"]
    assert level == [0, 1, 0] and fb == -1


def test_led_pins_and_neopixel(mp_fakes):
    code = """
import machine, neopixel
from hal.led import Led
r, g, b = [machine.Pin(n, machine.Pin.OUT) for n in (60, 61, 62)]
led = Led(r, g, b)
led.show(0x00FF00); led.show(0x00FF00); led.show(0xFF0080)
np = neopixel.NeoPixel(machine.Pin(63), 1)
l2 = Led(np=np)
l2.show(0x102030)
result = [[r.history, g.history, b.history], np.writes]
"""
    pins, writes = mp_fakes.run(code)
    assert pins == [[0, 0, 1], [0, 1, 0], [0, 0, 1]]
    assert writes == [[[0, 0, 0]], [[0x10, 0x20, 0x30]]]


def test_button_debounce(mp_fakes):
    code = """
import machine, time
from hal.button import Button
p = machine.Pin(70, machine.Pin.IN); level = [1]
p.source = lambda: level[0]
bt = Button(p, active=0, debounce_ms=20)
out = [bt.pressed()]
level[0] = 0; out.append(bt.pressed())      # bounce: not yet
level[0] = 1; out.append(bt.pressed())
level[0] = 0; bt.pressed(); time.sleep_ms(25); out.append(bt.pressed())
result = [out, bt.presses]
"""
    assert mp_fakes.run(code) == [[False, False, False, True], 1]


def test_wifi_connects_with_backoff_and_gate(mp_fakes):
    code = """
import asyncio, network
from hal.wifi import Wifi
network.WLAN.connect_after = None          # the AP never answers
allowed = [False]
w = Wifi('home', 'pw', gate=lambda: allowed[0], connect_timeout_ms=300)
async def main():
    t = asyncio.create_task(w.run())
    await asyncio.sleep_ms(700)
    gated = w.attempts
    allowed[0] = True
    await asyncio.sleep_ms(1500)
    failed = [w.attempts, w.error, w.backoff_ms]
    network.WLAN.connect_after = 1
    await asyncio.sleep_ms(2500)
    t.cancel()
    return [gated, failed, w.connected(), w.up, w.backoff_ms]
result = asyncio.run(main())
network.WLAN.connect_after = 2
"""
    gated, failed, conn, up, backoff = mp_fakes.run(code)
    assert gated == 0  # no connect while the gate is closed
    assert failed[0] >= 1 and failed[1] == "wifi_connect" and failed[2] in (1000, 2000)
    assert conn is True and up is True and backoff == 1000


def test_machine_imported_only_in_hal_and_boards():
    pat = re.compile(r"^\s*(import|from)\s+(machine|network|neopixel)\b", re.M)
    offenders = []
    # loader.py (the A/B boot loader, docs/ota.md) arms the watchdog and resets the board
    # before any app code exists to do it: boot-level, like boards/
    tops = [n for n in os.listdir(ROOT) if n not in ("hal", "boards", "tests", "loader.py") and
            not n.startswith(".") and (n.endswith(".py") or os.path.isdir(os.path.join(ROOT, n)))]
    for top in tops:
        path = os.path.join(ROOT, top)
        files = [path] if path.endswith(".py") else [
            os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".py")]
        for f in files:
            with open(f) as fh:
                if pat.search(fh.read()):
                    offenders.append(os.path.relpath(f, ROOT))
    # (tests/ is host code; its device snippets import the fakes on purpose)
    assert offenders == []
    # and the check itself works: hal/ does import machine
    with open(os.path.join(ROOT, "hal", "watchdog.py")) as fh:
        assert pat.search(fh.read())


def test_per_tick_contactor_rcd_allocate_nothing(mp_fakes):
    code = BUILD + """
import micropython
c = hw.contactor; r = hw.rcd; fb = P[b.CONTACTOR_FB_PIN]
x = None; y = None; z = None
micropython.heap_lock()
try:
    for _ in range(10):
        c.set(True); x = c.feedback(); y = r.tripped(); r.set_test(True); r.set_test(False)
        c.set(False); z = c.set_phases(3)
finally:
    micropython.heap_unlock()
result = [x, y, z, c.phases]
"""
    assert mp_fakes.run(code, "esp32_devkit") == [0, False, None, 3]
