# Device-side: cost of evse.step in steady states (time per call, heap per call),
# and a heap_lock proof that a steady-state step allocates nothing.
import gc
import micropython
import time
import evse_sim as S


def _states():
    """Plants parked in the steady states the loop spends its life in."""
    idle = S.Plant(S.make_cfg({}))
    idle.run(2000)
    ready = S.Plant(S.make_cfg({}))
    ready.run(1500)
    ready.ev = "B"
    ready.run(1000)
    charging = S.charged_plant({"lock_fitted": True})
    charging.run(1000)
    return (("A", idle), ("B2", ready), ("C2", charging))


def alloc_check(n=2000):
    """Run n steps of each steady state under heap_lock; return {state: outputs.state}."""
    res = {}
    for name, p in _states():
        e = p.evse
        p.sample()  # inputs for this state, then keep stepping with them
        inp = e.inputs
        now = p.now
        micropython.heap_lock()
        try:
            for _ in range(n):
                now = time.ticks_add(now, 10)
                e.step(inp, now)
        finally:
            micropython.heap_unlock()
        res[name] = e.outputs.state
    return res


def bench(n=20000):
    out = {}
    for name, p in _states():
        e = p.evse
        p.sample()
        inp = e.inputs
        now = p.now
        gc.collect()
        a0 = gc.mem_alloc()
        t_max = 0
        t0 = time.ticks_us()
        for _ in range(n):
            now = time.ticks_add(now, 10)
            t1 = time.ticks_us()
            e.step(inp, now)
            d = time.ticks_diff(time.ticks_us(), t1)
            if d > t_max:
                t_max = d
        total = time.ticks_diff(time.ticks_us(), t0)
        a1 = gc.mem_alloc()
        # Loop overhead measured the same way without the step.
        t0 = time.ticks_us()
        for _ in range(n):
            now = time.ticks_add(now, 10)
            t1 = time.ticks_us()
            d = time.ticks_diff(time.ticks_us(), t1)
        empty = time.ticks_diff(time.ticks_us(), t0)
        out[name] = {"state": e.outputs.state, "calls": n,
                     "mean_us": round((total - empty) / n, 2), "max_us": t_max,
                     "heap_bytes_per_call": (a1 - a0) / n}
    return out
