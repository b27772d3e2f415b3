"""Tick wrap in load management (firmware/core/loadmgmt.py, firmware/services/mains.py), on the
32-bit VM: ticks_ms wraps every 2**30 ms there as on the chip, and ticks_diff is only right
below 2**29 ms (~6.2 days); on the 64-bit port (period 2**62) none of this shows. Each test
keeps the house quiet for a week (tests/device/lm_sim.py in 1-minute steps, the clock started
10 minutes before a wrap), then checks that the policy still reacts as on day one."""
import pytest


PRE = ("import lm_sim as S\nfrom time import ticks_add\nfrom firmware.core import loadmgmt as L\n"
       "from firmware.core.consts import CLAIM_NONE_MA\n"
       "T0 = ticks_add(0, -600000)\nDAY = 86400000\nWEEK = 7 * DAY\nQUIET = 60000\n"
       "def snap(h):\n    lm = h.lm\n"
       "    return {'offer': lm.offer_ma, 'reason': L.REASON_NAMES[lm.reason], 'feed_ok': lm.feed_ok,"
       " 'phases': h.phases, 'draw': h.draw, 'contactor': h.contactor, 'switches': lm.switches,"
       " 'errors': h.errors}\n")


def sc(vm, body):
    return vm.run(PRE + body)


@pytest.mark.parametrize("first", ["off", "normal"])
def test_week_old_reading_after_mode_off_gives_the_safe_current(mp32, first):
    """A reading, the meter dies, a week in mode off, then normal: the fuse is not computed
    from the week-old reading (it looked fresh: ticks_diff < 0), the safe current is offered."""
    r = sc(mp32, """
h = S.House(S.make_cfg({'mode': L.MODE_%s, 'fuse_ma': 25000, 'safe_ma': 6000}), T0)
h.run(3000)
h.cfg.mode = L.MODE_OFF; h.lm.reset(h.now)
h.silent = True
h.run(WEEK, QUIET)
h.cfg.mode = L.MODE_NORMAL; h.lm.reset(h.now)
h.run(2000)
result = snap(h)
""" % first.upper())
    assert r["offer"] == 6000 and r["reason"] == "mains feed lost" and not r["feed_ok"], r
    assert not r["errors"]


def test_sun_after_a_sunless_week_starts_pv_charging(mp32):
    r = sc(mp32, """
h = S.House(S.make_cfg({'mode': L.MODE_PV, 'fuse_ma': 25000, 'start_ms': 60000,
                        'min_pause_ms': 60000}), T0)
h.run(WEEK, QUIET); a = snap(h)                          # no sun: paused
for p in range(3): h.pv[p] = 15000                       # 45 A surplus
h.run(300000); b = snap(h)
result = [a, b]
""")
    a, b = r
    assert a["offer"] == 0 and a["reason"] == "no solar surplus"
    assert b["contactor"] and b["reason"] == "solar surplus" and b["offer"] >= 12000, b
    assert not a["errors"] and not b["errors"]


def test_fuse_pause_of_a_week_ends_after_the_minimum_pause(mp32):
    r = sc(mp32, """
h = S.House(S.make_cfg({'mode': L.MODE_NORMAL, 'fuse_ma': 25000, 'min_pause_ms': 60000}), T0)
h.other[0] = 22000                                       # 3 A left: paused
h.run(WEEK, QUIET); a = snap(h)
h.other[0] = 0
h.run(70000); b = snap(h)
result = [a, b]
""")
    a, b = r
    assert a["offer"] == 0 and a["reason"] == "house fuse: paused"
    assert b["offer"] == 25000 and b["contactor"], b
    assert not a["errors"] and not b["errors"]


def test_offer_unchanged_for_a_week_may_rise(mp32):
    r = sc(mp32, """
h = S.House(S.make_cfg({'mode': L.MODE_NORMAL, 'fuse_ma': 25000}), T0)
h.other[0] = 15000                                       # 10 A left
h.run(WEEK, QUIET); a = snap(h)
h.other[0] = 0                                           # the oven off: 25 A
h.run(10000); b = snap(h)
result = [a, b]
""")
    a, b = r
    assert a["offer"] == 10000 and a["contactor"]
    assert b["offer"] == 25000 and b["reason"] == "house fuse", b
    assert not a["errors"] and not b["errors"]


def test_minpv_six_amps_for_a_week_then_surplus_raises(mp32):
    r = sc(mp32, """
h = S.House(S.make_cfg({'mode': L.MODE_MINPV, 'fuse_ma': 25000}), T0)
h.run(WEEK, QUIET); a = snap(h)
for p in range(3): h.pv[p] = 12000
h.run(90000); b = snap(h)
result = [a, b]
""")
    a, b = r
    assert a["offer"] == 6000 and a["reason"] == "minimum current"
    assert 11000 <= b["offer"] <= 12000 and b["reason"] == "solar surplus", b


def test_first_switch_to_three_phases_after_a_week_on_one(mp32):
    r = sc(mp32, """
h = S.House(S.make_cfg({'mode': L.MODE_PV, 'fuse_ma': 25000, 'start_ms': 0, 'stop_ms': 5000,
                        'min_charge_ms': 0, 'min_pause_ms': 0, 'phase_switch': True,
                        'switch_min_ms': 300000}), T0)
for p in range(3): h.pv[p] = 3000                        # 9 A: one phase
h.run(60000); a = snap(h)
h.connected = False                                      # unplugged for a week
h.run(WEEK, QUIET)
for p in range(3): h.pv[p] = 8000                        # 24 A: three phases
h.run(60000)
h.connected = True
h.run(60000); b = snap(h)
result = [a, b]
""")
    a, b = r
    assert a["phases"] == 1 and a["switches"] == 1 and a["contactor"]
    assert b["phases"] == 3 and b["switches"] == 2 and b["contactor"], b
    assert not a["errors"] and not b["errors"]


def test_switch_to_one_phase_after_a_week_of_charging(mp32):
    """_may_stop: a week of charging counts as more than min_charge_ms."""
    r = sc(mp32, """
h = S.House(S.make_cfg({'mode': L.MODE_PV, 'fuse_ma': 25000, 'start_ms': 0, 'stop_ms': 5000,
                        'min_charge_ms': 600000, 'min_pause_ms': 0, 'phase_switch': True,
                        'switch_min_ms': 300000}), T0)
for p in range(3): h.pv[p] = 8000                        # 24 A: three phases
h.run(WEEK, QUIET); a = snap(h)
for p in range(3): h.pv[p] = 3000                        # 9 A: one phase
h.run(60000); b = snap(h)
result = [a, b]
""")
    a, b = r
    assert a["phases"] == 3 and a["contactor"]
    assert b["phases"] == 1 and b["switches"] == 1 and b["contactor"], b
    assert not a["errors"] and not b["errors"]


def test_pv_stops_after_a_week_of_charging(mp32):
    """_may_stop: the solar stop after stop_ms is not held off for days (6 A grid import)."""
    r = sc(mp32, """
h = S.House(S.make_cfg({'mode': L.MODE_PV, 'fuse_ma': 25000, 'start_ms': 0, 'stop_ms': 300000,
                        'min_charge_ms': 600000, 'min_pause_ms': 0}), T0)
for p in range(3): h.pv[p] = 8000
h.run(WEEK, QUIET); a = snap(h)
for p in range(3): h.pv[p] = 0                           # night
h.run(330000); b = snap(h)
result = [a, b]
""")
    a, b = r
    assert a["contactor"] and a["reason"] == "solar surplus"
    assert b["offer"] == 0 and b["reason"] == "no solar surplus" and not b["contactor"], b
    assert not a["errors"] and not b["errors"]


def test_start_timer_interrupted_for_a_week_by_a_group_share_of_zero(mp32):
    """_timer_since: the pv start timer runs on while a group share of 0 pauses the wallbox
    (it is not looked at then); a week later it must not read 'just started'."""
    r = sc(mp32, """
h = S.House(S.make_cfg({'mode': L.MODE_PV, 'fuse_ma': 25000, 'start_ms': 60000,
                        'min_pause_ms': 60000}), T0)
for p in range(3): h.pv[p] = 15000
h.run(90000); a = snap(h)                                # start timer running
h.lm.group_ma = 0
h.run(WEEK, QUIET); b = snap(h)
h.lm.group_ma = CLAIM_NONE_MA
h.run(120000); c = snap(h)
result = [a, b, c]
""")
    a, b, c = r
    assert a["offer"] == 0 and a["reason"] == "no solar surplus"
    assert b["offer"] == 0 and b["reason"] == "group share"
    assert c["contactor"] and c["reason"] == "solar surplus", c


MAINS = """
import time as T
from firmware.core import loadmgmt as L
from firmware.services import mains as M

class Clock:
    def __init__(self): self.now = T.ticks_add(0, -600000)
    def ticks_ms(self): return self.now
    def ticks_diff(self, a, b): return T.ticks_diff(a, b)
    def later(self, ms):
        while ms > 0:
            d = ms if ms < 86400000 else 86400000
            self.now = T.ticks_add(self.now, d)
            ms -= d

CFG = {'lm_mode': 'normal', 'mains_max_a': 25, 'pv_import_a': 0, 'pv_start_s': 60,
       'pv_stop_s': 300, 'pv_min_charge_s': 600, 'lm_min_pause_s': 60, 'pv_attack_pm': 50,
       'pv_decay_pm': 400, 'mains_timeout_s': 11, 'lm_safe_a': 6, 'phase_auto': False,
       'phase_switch': False, 'phases': 3, 'phase_switch_min_s': 300, 'mains_source': 'mqtt',
       'dim_source': 'none'}

class Config:
    version = 1
    def get(self, k): return CFG[k]

class Store:
    def __init__(self): self.events = []
    def get(self, k): return None
    def put(self, *a): pass
    def event(self, kind, text, *a): self.events.append([kind, text])

class Evse:
    def set_claim_ma(self, k, v): pass

class Rt:
    def __init__(self):
        self.config = Config(); self.store = Store(); self.evse = Evse(); self.link = None

clock = Clock()
M.time = clock
try:
    rt = Rt()
    m = M.Mains(rt)
    lm = m.lm
    lm.feed_ok = True
    out = []
    def report(reason):
        lm.reason = reason
        m._report()
        out.append([e[1] for e in rt.store.events if e[0] == 'lm_limit'])
    report(L.R_FUSE)
    clock.later(7 * 86400000)                   # a week without a change
    report(L.R_FUSE_PAUSE)
    clock.later(2000)                           # a flapping reason: still one per 10 s
    report(L.R_FUSE)
    clock.later(10000)
    report(L.R_FUSE)
    result = out
finally:
    M.time = T
"""


def test_reason_event_after_a_quiet_week(mp32):
    """mains.py _reason_ms: the first reason change after a week is logged at once (not held
    back up to 6.2 days by a negative ticks_diff); the 10 s rate limit still holds."""
    a, b, c, d = mp32.run(MAINS)
    assert a == ["limited by: house fuse 25 A"]
    assert b == a + ["limited by: house fuse: paused 25 A"], b
    assert c == b
    assert d == b + ["limited by: house fuse 25 A"]
