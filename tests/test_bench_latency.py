"""The latency harness (tools/latency.py) retakes samples that measure the host, not the
firmware: a schedule that landed late, or a sample inside a host stall. Driven here by a
scripted bench (the harness logic only; the real bench runs it against the firmware)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools"))
import latency  # noqa: E402


class ScriptedBench:
    """Answers like a SimBench; sample i opens the contactor after lat[i] ms."""

    def __init__(self, lats):
        self.lats = list(lats)
        self.t_us = 0
        self.i = -1

    def set(self, **kw):
        pass

    def plug(self):
        pass

    def cmd(self, *a):
        pass

    def wait_for(self, cond, **kw):
        pass

    def now_us(self, ahead_us=0):
        return self.t_us + ahead_us

    def ticks_diff_us(self, a, b):
        return a - b

    def at(self, t, **kw):
        self.i += 1

    def latency_ms(self, t, pin, value):
        self.t_us = t + 100000
        return self.lats[self.i]


class ScriptedStalls:
    """Marks the samples whose index is in `stalled` as inside a host stall."""

    def __init__(self, bench, stalled):
        self.b, self.stalled = bench, set(stalled)

    def stall_ms(self, t0, t1):
        return 40.0 if self.b.i in self.stalled else 0.0


def test_samples_in_a_host_stall_are_retaken_and_reported_apart(monkeypatch):
    monkeypatch.setattr(latency.time, "sleep", lambda s: None)
    b = ScriptedBench([5.0, 48.0, 7.0, 39.0, 9.0])
    xs = latency.measure(b, "overcurrent", 3, stalls=ScriptedStalls(b, {1, 3}))
    assert list(xs) == [5.0, 7.0, 9.0]
    assert xs.stalled == [48.0, 39.0]
    s = latency.summary(xs)
    assert s["max_ms"] == 9.0 and s["n"] == 3
    assert s["host_stall_retaken"] == 2
    assert s["with_host_stall"]["max_ms"] == 48.0 and s["with_host_stall"]["n"] == 5


def test_without_a_stall_witness_every_sample_is_kept(monkeypatch):
    monkeypatch.setattr(latency.time, "sleep", lambda s: None)
    b = ScriptedBench([5.0, 48.0, 7.0])
    xs = latency.measure(b, "rcd_trip", 3)
    assert list(xs) == [5.0, 48.0, 7.0]
    assert latency.summary(xs)["max_ms"] == 48.0


def test_retakes_are_bounded(monkeypatch):
    monkeypatch.setattr(latency.time, "sleep", lambda s: None)
    n = 2
    b = ScriptedBench([50.0] * 100)
    xs = latency.measure(b, "unplug", n, stalls=ScriptedStalls(b, range(100)))
    assert len(xs) == 0
    assert len(xs.stalled) == latency.MAX_LATE_FACTOR * n + 10
