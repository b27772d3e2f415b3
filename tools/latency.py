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


def _pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return None
    k = min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))
    return xs[k]


def summary(xs):
    if not xs:
        return {"n": 0}
    return {"n": len(xs), "p50_ms": round(_pct(xs, 50), 2), "p99_ms": round(_pct(xs, 99), 2),
            "max_ms": round(max(xs), 2), "mean_ms": round(sum(xs) / len(xs), 2)}


def charge(b, timeout=15):
    b.wait_for(lambda r: r["status"]["contactor"] and r["world"]["draw_ma"] > 0,
               timeout=timeout, poll=0.01, what="charging")


def measure(b, kind, n, progress=None):
    """n latencies (ms) for one fault kind on a running SimBench b."""
    fault, undo, reset = KINDS[kind]
    out = []
    b.set(**BENCH_WORLD)
    b.plug()
    for i in range(n):
        charge(b)
        # Random phase against the 10 ms control tick, so p50/p99 mean something.
        t = b.now_us() + 15000 + random.randint(0, 10000)
        b.at(t, **fault)
        if b.now_us() - t >= 0:
            # The sim channel was slower than the 15 ms lead: the change would be dated
            # before it was applied and the latency would be overstated. Say so.
            raise RuntimeError("sim channel too slow: schedule at t landed after t")
        b.wait_for(lambda r: not r["status"]["contactor"], timeout=5, poll=0.005,
                   what="open after " + kind)
        lat = b.latency_ms(t, "contactor", 0)
        if lat is None:
            raise RuntimeError("no contactor-open change after %s" % kind)
        out.append(lat)
        b.set(**undo)
        if kind == "unplug":
            time.sleep(0.05)  # let the firmware see A (a new session) before re-plugging
        if reset:
            time.sleep(0.03)
            b.cmd("reset_faults")
        if kind == "overtemp":
            b.wait_for(lambda r: not r["status"]["faults"], timeout=5, poll=0.01)
        if progress and (i + 1) % 25 == 0:
            progress("%s: %d/%d, max so far %.1f ms" % (kind, i + 1, n, max(out)))
    return out
