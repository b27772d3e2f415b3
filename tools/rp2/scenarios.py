"""Scenarios on the emulated RP2040 running the firmware, shared by the tests
(tests/test_emu_*.py assert on them) and the bench (tools/rp2/bench.py records them).
Every duration is emulated time, read from the chip's clock: it does not depend on how
loaded the host is."""
import json

from emu import MS

CONTACTOR_PIN = 18


def data(chip, what, n=0):
    """The console's data() over the raw REPL (as wbctl does), parsed."""
    out = chip.exec("data(%r, %d)" % (what, n))
    return json.loads(out.strip().splitlines()[-1])


def iec_duty_pct(amps):
    """IEC 61851-1 Annex A: offered current -> PWM duty (%) (iec61851.md section 2)."""
    if amps <= 51:
        return amps / 0.6
    return amps / 2.5 + 64


def wait_state(chip, states, ms, heap=None):
    """Poll the firmware's status() until its state is one of states."""
    end = chip.now() + ms * MS
    while True:
        st = data(chip, "status")
        if heap is not None:
            heap.append(st["mem_free"])
        if st["state"] in states:
            return st
        if chip.now() >= end:
            raise AssertionError("state %s, not %s, after %d ms: %r" % (st["state"], states, ms, st))
        chip.sleep(50)


def contactor_edges(chip, since, value):
    return [e[0] for e in chip.events_since(since) if e[1] == CONTACTOR_PIN and e[2] == value]


def plug_and_charge(chip, heap=None):
    """A -> B -> C: returns (status in B2, status in C2, ms from C to the contactor closing)."""
    chip.world(ev="B")
    b2 = wait_state(chip, ("B2",), 5000, heap)
    t_c = chip.world(ev="C")
    c2 = wait_state(chip, ("C2",), 5000, heap)
    chip.wait_for(lambda s: s["world"]["contactor"] == 1 and s["world"]["mirror"] == 1, 5000)
    closed = contactor_edges(chip, t_c, 1)
    return b2, c2, (closed[0] - t_c) / MS


def open_latency_ms(chip, ms=3000, **world):
    """Change the world at the pins (a fault); ms of emulated time from that instant to the
    contactor pin falling."""
    t0 = chip.world(**world)
    chip.wait_for(lambda s: s["world"]["contactor"] == 0, ms, step_ms=5)
    falls = contactor_edges(chip, t0, 0)
    return (falls[0] - t0) / MS
