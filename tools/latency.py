"""Fault reaction latency on the sim bench: from the physical change (scheduled at an
absolute device time) to the contactor opening, as the sim's output log timestamps it.

Used by tools/bench_runtime.py and tools/bench_link.py. Each kind is a pair of world
changes: `fault` (applied at t) and `undo` (applied after the contactor opened).
"""
import random
import time

# kind -> (fault values, undo values, needs reset_faults)
KINDS = {
    "unplug": ({"plugged": False}, {"plugged": True}, False),
    "s2_open": ({"ev_state": "B"}, {"ev_state": ""}, False),
    "cp_short": ({"cp_short": True}, {"cp_short": False}, True),
    "diode": ({"diode": False}, {"diode": True}, True),
    "rcd_trip": ({"rcd_fault": True}, {"rcd_fault": False}, True),
    "overcurrent": ({"load_ma": 40000}, {"load_ma": -1}, True),
    "overtemp": ({"temp_dc": 750}, {"temp_dc": 250}, False),
}

# Settings that make a bench cycle short without changing any reaction path.
BENCH_CONFIG = {"min_off_s": 0, "fault_retry_s": 5, "ev_off_s": 0}
BENCH_WORLD = {"delay_ms": 20}


MAX_LATE_FACTOR = 5  # at most this many retaken samples per wanted sample, then stop
STALL_RUN_DELAY_MS = 5.0  # firmware runnable but not running this long: a host stall


class Samples(list):
    """Latencies (ms) of one fault kind, in order, with what the harness saw around them:
    late     schedules that landed after their time (discarded and retaken)
    stalled  latencies of samples that fell in a host stall (discarded and retaken:
             they measure the host, not the firmware; kept for the "with" figures)
    stall    per kept sample: host stall (ms) overlapping it, from the sibling recorder
    run_delay_ms  per kept sample: the firmware's time runnable but not running"""

    def __init__(self):
        super().__init__()
        self.late = 0
        self.stalled = []
        self.stall = []
        self.run_delay_ms = []

    def host_stalled(self, i, threshold_ms=STALL_RUN_DELAY_MS):
        s = self.stall[i] if i < len(self.stall) else 0
        r = self.run_delay_ms[i] if i < len(self.run_delay_ms) else None
        return s > 0 or (r is not None and r > threshold_ms)


def _pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))
    return xs[k]


def _plain(xs):
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "p50_ms": round(_pct(xs, 50), 2), "p99_ms": round(_pct(xs, 99), 2),
            "max_ms": round(max(xs), 2), "mean_ms": round(sum(xs) / len(xs), 2)}


def summary(xs):
    """p50/p99/max of the samples kept; for Samples also the late schedules and host
    stalls retaken, and the figures with and without the samples in a host stall."""
    out = _plain(list(xs))
    if isinstance(xs, Samples):
        clean = [x for i, x in enumerate(xs) if not xs.host_stalled(i)]
        out["late_retaken"] = xs.late
        out["host_stall_retaken"] = len(xs.stalled)
        out["in_host_stall"] = len(xs) - len(clean)
        out["without_host_stall"] = _plain(clean)
        out["with_host_stall"] = _plain(list(xs) + xs.stalled)
        rd = [r for r in xs.run_delay_ms if r is not None]
        if rd:
            out["fw_run_delay_max_ms"] = round(max(rd), 2)
    return out
def charge(b, timeout=15):
    b.wait_for(lambda r: r["status"]["contactor"] and r["world"]["draw_ma"] > 0,
               timeout=timeout, poll=0.01, what="charging")


def measure(b, kind, n, progress=None, stalls=None):
    """n latencies (ms) for one fault kind on a running SimBench b, as Samples.

    A schedule that reached the firmware after its time would date the change before it
    was applied and overstate the latency: that sample is discarded (the fault still
    happened: wait for the open, undo it) and retaken, and counted in Samples.late. After
    MAX_LATE_FACTOR * n late schedules the kind ends with fewer samples rather than
    never. stalls: a hoststall.HostStalls whose records mark samples in a host stall;
    with it (or the firmware's schedstat) a sample that fell in a host stall is
    discarded and retaken the same way (counted in Samples.stalled, bench item 9)."""
    import hoststall
    fault, undo, reset = KINDS[kind]
    out = Samples()
    b.set(**BENCH_WORLD)
    b.plug()
    pid = b.proc.pid if getattr(b, "proc", None) is not None else None
    while len(out) < n and out.late + len(out.stalled) < MAX_LATE_FACTOR * n + 10:
        charge(b)
        rd0 = hoststall.run_delay_ns(pid) if pid else None
        # Random phase against the 10 ms control tick, so p50/p99 mean something.
        t = b.now_us(15000 + random.randint(0, 10000))
        b.at(t, **fault)
        late = b.ticks_diff_us(b.now_us(), t) >= 0
        b.wait_for(lambda r: not r["status"]["contactor"], timeout=5, poll=0.005,
                   what="open after " + kind)
        rd1 = hoststall.run_delay_ns(pid) if pid else None
        lat = b.latency_ms(t, "contactor", 0)
        if late:
            out.late += 1
        elif lat is None:
            raise RuntimeError("no contactor-open change after %s" % kind)
        else:
            t0 = hoststall.device_to_host_ns(t)
            stall = stalls.stall_ms(t0, t0 + int(lat * 1e6)) if stalls else 0
            rd = (rd1 - rd0) / 1e6 if rd0 is not None and rd1 is not None else None
            if stalls is not None and (stall > 0 or (rd is not None and rd > STALL_RUN_DELAY_MS)):
                out.stalled.append(lat)
            else:
                out.append(lat)
                out.stall.append(stall)
                out.run_delay_ms.append(rd)
        b.set(**undo)
        if kind == "unplug":
            time.sleep(0.05)  # let the firmware see A (a new session) before re-plugging
        if reset:
            time.sleep(0.03)
            b.cmd("reset_faults")
        if kind == "overtemp":
            b.wait_for(lambda r: not r["status"]["faults"], timeout=5, poll=0.01)
        if progress and out and len(out) % 25 == 0 and not late:
            progress("%s: %d/%d, max so far %.1f ms, %d late and %d host stalls retaken" % (
                kind, len(out), n, max(out), out.late, len(out.stalled)))
    return out
