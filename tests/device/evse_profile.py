# Device-side: where evse.step's time goes, per steady state (tools/rp2/bench.py runs it
# on the emulated RP2040, whose clock is emulated: the figures do not depend on the host).
# Each handler of the step is called alone n times with the arguments the step would give
# it (in a steady state every handler takes the same path on every call); the step skips
# some of them when they have nothing to do. The primitives put a price on the operations
# the handlers are made of.
import gc
import time
from micropython import const
import evse_bench
from firmware.core.consts import PILOT_MINUS12, PILOT_PWM

_N = const(200)


_G = 1  # a module global (an imported name is one too: const() does not cross modules)


def _loop_us(n):
    t0 = time.ticks_us()
    for _ in range(n):
        pass
    return time.ticks_diff(time.ticks_us(), t0)


def _timed(fn, n):
    """Mean µs of fn() over n calls, less the loop and the lambda call."""
    t0 = time.ticks_us()
    for _ in range(n):
        fn()
    return time.ticks_diff(time.ticks_us(), t0)


class _P:
    def __init__(self):
        self.a = 1
        self.o = self

    def m0(self):
        pass

    def m3(self, x, y, z):
        pass


def primitives(n=_N * 10):
    """µs per operation (each loop body repeats it 10 times; the empty loop is subtracted).
    p is a closure variable in the loops: each p.x includes loading p."""
    p = _P()
    loc = 1
    res = {}
    base = _loop_us(n)

    def run(name, fn):
        t0 = time.ticks_us()
        fn(n)
        res[name] = round((time.ticks_diff(time.ticks_us(), t0) - base) / (n * 10), 3)

    def local_load(n):
        x = loc
        for _ in range(n):
            x; x; x; x; x; x; x; x; x; x  # noqa: E702

    def attr_load(n):
        for _ in range(n):
            p.a; p.a; p.a; p.a; p.a; p.a; p.a; p.a; p.a; p.a  # noqa: E702

    def attr_chain(n):
        for _ in range(n):
            p.o.a; p.o.a; p.o.a; p.o.a; p.o.a; p.o.a; p.o.a; p.o.a; p.o.a; p.o.a  # noqa: E702

    def attr_store(n):
        for _ in range(n):
            p.a = 1; p.a = 1; p.a = 1; p.a = 1; p.a = 1; p.a = 1; p.a = 1; p.a = 1; p.a = 1; p.a = 1  # noqa: E702,E501

    def call0(n):
        for _ in range(n):
            p.m0(); p.m0(); p.m0(); p.m0(); p.m0(); p.m0(); p.m0(); p.m0(); p.m0(); p.m0()  # noqa: E702,E501

    def global_load(n):
        for _ in range(n):
            _G; _G; _G; _G; _G; _G; _G; _G; _G; _G  # noqa: E702

    def call3(n):
        for _ in range(n):
            p.m3(1, 2, 3); p.m3(1, 2, 3); p.m3(1, 2, 3); p.m3(1, 2, 3); p.m3(1, 2, 3); p.m3(1, 2, 3); p.m3(1, 2, 3); p.m3(1, 2, 3); p.m3(1, 2, 3); p.m3(1, 2, 3)  # noqa: E702,E501

    def compare(n):
        x = loc
        for _ in range(n):
            x == 3; x == 3; x == 3; x == 3; x == 3; x == 3; x == 3; x == 3; x == 3; x == 3  # noqa: E702,E501

    def ticks(n):
        d = time.ticks_diff
        for _ in range(n):
            d(5, 3); d(5, 3); d(5, 3); d(5, 3); d(5, 3); d(5, 3); d(5, 3); d(5, 3); d(5, 3); d(5, 3)  # noqa: E702,E501

    for name, fn in (("local_load", local_load), ("global_load", global_load), ("attr_load_self_x", attr_load),
                     ("attr_chain_self_x_y", attr_chain), ("attr_store_self_x", attr_store),
                     ("method_call_0_args", call0), ("method_call_3_args", call3),
                     ("int_compare", compare), ("ticks_diff_call", ticks)):
        gc.collect()
        run(name, fn)
    return res


def _parts(e, inp, now):
    """The step's handlers as the step calls them, with the arguments it gives them."""
    out = e.outputs
    was_closed = out.contactor
    drive_f = out.pilot == PILOT_MINUS12
    allowed = e._limits(inp, was_closed, now)
    want_lock = e._lock(inp, drive_f, now)
    ready = e._ready(allowed, now)
    pilot = e._pilot_mode(ready, now)
    closed = e._contactor(inp, was_closed, pilot, now)

    try:  # _allowed_ma takes the thermal level since the step was profiled
        e._allowed_ma(e._thermal)
        allowed_ma = lambda: e._allowed_ma(e._thermal)  # noqa: E731
    except TypeError:
        allowed_ma = lambda: e._allowed_ma()  # noqa: E731

    return (
        ("classify", lambda: e._classify(inp, now)),
        ("residual_current", lambda: e._residual_current(inp, now)),
        ("mirror_contact", lambda: e._mirror_contact(inp, was_closed, now)),
        ("limits", lambda: e._limits(inp, was_closed, now)),
        ("retry", lambda: e._retry(now)),
        ("lock", lambda: e._lock(inp, drive_f, now)),
        ("start_rcd_test", lambda: e._start_rcd_test(was_closed, drive_f, now)),
        ("ready", lambda: e._ready(allowed, now)),
        ("pilot_mode", lambda: e._pilot_mode(ready, now)),
        ("contactor", lambda: e._contactor(inp, was_closed, pilot, now)),
        ("phase_switch", lambda: e._phase_switch(closed, was_closed, now)),
        ("set_outputs", lambda: e._set_outputs(pilot, closed, allowed, want_lock, drive_f, now)),
        ("  cp.update", lambda: e.cp.update(inp.cp_high_mv, inp.cp_low_mv, out.pilot == PILOT_PWM)),
        ("  allowed_ma", allowed_ma),
        ("step", lambda: e.step(inp, now)),
    )


def profile(n=_N):
    """{state: {part: mean µs per call}} for the steady states of evse_bench."""
    res = {}
    nop = _timed(lambda: None, n)
    for name, p in evse_bench._states():
        e = p.evse
        p.sample()
        inp = e.inputs
        now = p.now
        st = e.outputs.state
        parts = {}
        for part, fn in _parts(e, inp, now):
            gc.collect()
            us = round((_timed(fn, n) - nop) / n, 1)
            parts[part.strip()] = us
        assert e.outputs.state == st, (name, st, e.outputs.state)  # still the steady state
        res[name] = parts
    return res
