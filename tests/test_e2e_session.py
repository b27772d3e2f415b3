"""A whole charging session, commands, config and the watchdog through the real firmware
process on the sim bench (one process for the module; see tests/e2e.py for the timing
configs that only shorten waits)."""
import time

import pytest

from e2e import FAST, SimBench, SimError, baseline, changes_seq, last_seq, wait_event

CFG = dict(FAST, max_current_a=32)


@pytest.fixture(scope="module")
def b():
    bench = SimBench(config=CFG)
    try:
        yield bench
    finally:
        bench.close()


def test_full_session_energy(b):
    """A -> B -> C -> B -> A at 32 A x 3 phases, energy checked against power x time."""
    baseline(b, want_ma=32000)  # 32 A cable (PP 220 ohm), 32 A installation limit
    b.cmd("set_current", 32)
    life0 = b.sessions()["energy_wh"]
    phys0 = b.read()["world"]["energy_wh"]
    ch = changes_seq(b)
    seq = last_seq(b)
    seen = ["A"]

    def state_is(s):
        r = b.wait_state(s, timeout=5)
        seen.append(r["status"]["state"])
        return r

    b.set(s2=False, plugged=True)  # plugged, the car not yet asking: B
    state_is("B2")
    b.set(s2=True)  # asks for power: C, the contactor closes
    r = b.wait_for(lambda r: r["status"]["contactor"] and r["world"]["draw_ma"] > 0, timeout=5)
    seen.append(r["status"]["state"])
    assert r["status"]["duty_pm"] == 533  # 32 A -> 53.3 % (ref section 2)
    # The EV draws what the duty advertises: 533 permille -> 31.98 A per phase.
    assert r["world"]["draw_ma"] == 31980
    power_w = 230 * 31980 * 3 / 1000.0
    time.sleep(5)
    b.set(s2=False)  # the car is full: C -> B, contactor opens
    state_is("B2")
    # The session stays open in B: the meter's next poll (1 s) books the last second.
    time.sleep(1.3)
    b.set(plugged=False)
    state_is("A")
    assert seen == ["A", "B2", "C2", "B2", "A"]

    edges = [c for c in b.changes(ch) if c[1] == "contactor"]
    assert [c[2] for c in edges] == [1, 0]
    t_on = b.ticks_diff_us(edges[1][0], edges[0][0]) / 1e6
    b.wait_for(lambda r: r["status"]["state"] == "A" and b.sessions()["open"] is None, timeout=3)
    s = b.sessions()
    rec = s["sessions"][-1]
    phys = b.read()["world"]["energy_wh"] - phys0
    expect = power_w * t_on / 3600.0
    # Tolerance: the meter counts whole Wh (< 1 Wh at each end of the session), and power
    # flows a little shorter than the contactor is closed: from the EV's 20 ms reaction
    # after the close to its S2 opening, which the contactor follows within the 100 ms
    # limit -> at most 0.12 s x 22 kW = 0.74 Wh. So |wh - P t| <= 2 Wh (of ~31 Wh).
    assert rec["wh"] > 0
    assert abs(rec["wh"] - expect) <= 2.0, (rec, expect, t_on)
    assert abs(rec["wh"] - phys) <= 1, (rec["wh"], phys)
    assert rec["reason"] == "ev"  # the car ended the charge (C -> B) before the unplug
    assert rec["max_ma"] == 31980
    assert 5 <= rec["dur_s"] <= 9
    assert s["energy_wh"] == life0 + rec["wh"]  # lifetime counter
    assert rec["sid"] in s["outbox"]  # waits for the backend
    kinds = [e["type"] for e in b.events() if e["seq"] > seq]
    for k in ("plug", "charge_start", "charge_stop", "unplug"):
        assert k in kinds, kinds


def test_current_commands_and_pause(b):
    baseline(b, want_ma=32000)
    b.set(plugged=True)
    b.wait_for(lambda r: abs(r["world"]["draw_ma"] - 16000) <= 100, timeout=5)  # 16 A
    ok, val = b.cmd("set_current", "10.5")
    assert ok and val == 10.5
    r = b.wait_for(lambda r: r["world"]["draw_ma"] == 10500, timeout=5, what="EV follows 10.5 A")
    assert r["status"]["duty_pm"] == 175 and r["status"]["allowed_a"] == 10.5
    ok, err = b.cmd("set_current", 3)
    assert not ok and "0 (pause) or 6" in err
    assert b.status()["limit_a"] == 10.5  # unchanged
    seq = last_seq(b)
    ok, _ = b.cmd("set_current", 0)  # pause: x1 (+12 V), the EV leaves C, then open
    assert ok
    r = b.wait_for(lambda r: not r["status"]["contactor"], timeout=8, what="pause")
    assert r["status"]["state"] == "B1"
    wait_event(b, seq, "charge_stop", "stopped")
    b.cmd("set_current", 16)
    b.wait_for(lambda r: r["status"]["contactor"], timeout=5, what="resume")
    ok, val = b.cmd("enable", "off")
    assert ok and val is False
    b.wait_for(lambda r: not r["status"]["contactor"] and not r["status"]["enabled"], timeout=8)
    ok, err = b.cmd("enable", "maybe")
    assert not ok and "true or false" in err
    b.cmd("enable", True)
    b.wait_for(lambda r: r["status"]["contactor"], timeout=5, what="enabled again")
    ok, st = b.cmd("status")
    assert ok and st["state"] == "C2"


def test_config_set_applies_while_running(b):
    baseline(b, want_ma=32000)
    b.cmd("set_current", 32)
    b.set(plugged=True)
    b.wait_for(lambda r: abs(r["world"]["draw_ma"] - 32000) <= 100, timeout=5)
    b.config_set("max_current_a", 20)  # applied by the metering task within ~1 s
    r = b.wait_for(lambda r: r["status"]["allowed_a"] == 20, timeout=3, what="20 A applied")
    assert r["status"]["duty_pm"] == 333
    assert b.config_get()["max_current_a"] == 20
    with pytest.raises(SimError, match="max_current_a"):
        b.config_set("max_current_a", 81)
    with pytest.raises(SimError):
        b.config_set("no_such_key", 1)
    assert b.config_get()["max_current_a"] == 20
    # Authorization required: the next session waits in B1 until authorize.
    b.config_set("require_auth", True)
    try:
        time.sleep(1.2)
        baseline(b)
        b.set(plugged=True)
        time.sleep(1.0)
        r = b.read()
        assert r["status"]["state"] == "B1" and not r["world"]["contactor"]
        ok, val = b.cmd("authorize")
        assert ok and val is True
        b.wait_for(lambda r: r["status"]["contactor"], timeout=5, what="charging after authorize")
    finally:
        b.config_set("require_auth", False)
        b.config_set("max_current_a", 32)
        time.sleep(1.2)


def test_watchdog_fed_while_healthy(b):
    b.reset_stats()
    w0 = b.read()["world"]
    time.sleep(1.0)
    r = b.read()
    w = r["world"]
    assert w["wdt_feeds"] >= w0["wdt_feeds"] + 5  # every 100 ms
    assert 0 <= w["wdt_age_us"] < 1000000
    assert w["wdt_max_gap_us"] < 1000000  # far below the board's 2 s timeout
    assert r["stats"]["control_fails"] == 0 and r["stats"]["ticks"] > 0
    hist = r["stats"]["gap_hist"]
    assert sum(hist) > 50 and len(hist) == 41
