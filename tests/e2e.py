"""Helpers for the end-to-end tests (tests/test_e2e_*.py): the real firmware process on
the sim board, driven through tools/simbench.py.

Timing configs used here only shorten waits, none changes a reaction path:
  min_off_s=0, ev_off_s=0   no contactor-wear pause between two sessions of a test
  fault_retry_s=5           the smallest retry the config allows (default 60 s)
  world delay_ms=20         the simulated EV reacts to S2/PWM/limit in 20 ms (default 300)
"""
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from simbench import SimBench, SimError  # noqa: E402,F401

FAST = {"min_off_s": 0, "ev_off_s": 0, "fault_retry_s": 5}
LIMIT_MS = 100  # IEC 61851-1: the contactor opens within 100 ms (DESIGN.md rule 2)

# The world as hal/sim.py builds it, except the faster EV (delay_ms).
WORLD = {
    "plugged": False, "s2": True, "vent": False, "diode": True, "cp_short": False,
    "ev_state": "", "ignore_limit": False, "ignore_stop": False, "want_ma": 16000,
    "ev_phases": 3, "delay_ms": 20, "pp_ohm": 220, "rcd_fault": False, "rcd_broken": False,
    "welded": False, "temp_dc": 250, "lock_jammed": False, "load_ma": -1, "meter_dead": False,
    "mains_mv": 230000, "noise_mv": 0, "fail_sample": False, "fail_count": 0,
}


def baseline(b, **world):
    """Unplugged, every world input at its default (plus `world`), no fault, 16 A."""
    w = dict(WORLD)
    w.update(world)
    plugged = w.pop("plugged")
    b.set(plugged=False)
    b.set(**w)
    time.sleep(0.05)  # a few control ticks see the clean world
    b.cmd("reset_faults")  # latched faults keep the pilot in F (state F, not A) until reset
    b.cmd("set_current", 16)
    b.cmd("enable", True)
    b.wait_for(lambda r: not r["status"]["faults"] and r["status"]["state"] == "A",
               timeout=10, what="clean A")
    if plugged:
        b.set(plugged=True)


def charge(b, timeout=10):
    """Plug (if not yet) and wait until power flows."""
    b.set(plugged=True)
    return b.wait_for(lambda r: r["status"]["contactor"] and r["world"]["draw_ma"] > 0,
                      timeout=timeout, what="charging")


def last_seq(b):
    ev = b.events(1)
    return ev[-1]["seq"] if ev else -1


def events_since(b, seq):
    return [e for e in b.events() if e["seq"] > seq]


def wait_event(b, seq, kind, detail=None, timeout=5):
    """The first event of type `kind` (detail containing `detail`) after seq."""
    deadline = time.time() + timeout
    while True:
        for e in events_since(b, seq):
            if e["type"] == kind and (detail is None or detail in e["detail"]):
                return e
        if time.time() > deadline:
            raise AssertionError("no %s %s event; got %s" % (
                kind, detail or "", [(e["type"], e["detail"]) for e in events_since(b, seq)]))
        time.sleep(0.05)


def trigger(b, **fault):
    """Apply a physical change 20 ms from now (device clock), wait for the contactor to
    open, return the latency in ms from the change to the open edge in the output log."""
    t = b.now_us(20000)
    b.at(t, **fault)
    b.wait_for(lambda r: not r["world"]["contactor"], timeout=5, poll=0.01,
               what="contactor open after %s" % fault)
    lat = b.latency_ms(t, "contactor", 0)
    assert lat is not None, "no contactor-open edge after %s" % fault
    return lat


def closed_since(b, seq_changes):
    """True if the contactor closed in the output log after change seq `seq_changes`."""
    return any(c[1] == "contactor" and c[2] == 1 for c in b.changes(seq_changes))


def changes_seq(b):
    ch = b.changes()
    return ch[-1][3] if ch else 0
