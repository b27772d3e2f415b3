"""Tick wrap in load management (firmware/core/loadmgmt.py, firmware/services/mains.py), on the
32-bit VM: ticks_ms wraps every 2**30 ms there as on the chip, and ticks_diff is only right
below 2**29 ms (~6.2 days); on the 64-bit port (period 2**62) none of this shows. Each test
keeps the house quiet for a week (tests/device/lm_sim.py in 1-minute steps, the clock started
10 minutes before a wrap), then checks that the policy still reacts as on day one."""
import pytest

from mp import MicroPython

PRE = ("import lm_sim as S\nfrom time import ticks_add\nfrom firmware.core import loadmgmt as L\n"
       "from firmware.core.consts import CLAIM_NONE_MA\n"
       "T0 = ticks_add(0, -600000)\nDAY = 86400000\nWEEK = 7 * DAY\nQUIET = 60000\n"
       "def snap(h):\n    lm = h.lm\n"
       "    return {'offer': lm.offer_ma, 'reason': L.REASON_NAMES[lm.reason], 'feed_ok': lm.feed_ok,"
       " 'phases': h.phases, 'draw': h.draw, 'contactor': h.contactor, 'switches': lm.switches,"
       " 'errors': h.errors}\n")


@pytest.fixture(scope="module")
def mp32():
    vm = MicroPython(vm="mp32")
    yield vm
    vm.close()


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
