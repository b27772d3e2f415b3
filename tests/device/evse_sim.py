# Device-side test helper (runs in the MicroPython unix port): a physical EV/RCD/contactor
# model around firmware.core.evse, and an independent safety oracle that checks DESIGN.md's rules
# against the *physical* truth on every step, not against the state machine's own view.
from firmware.core import evse as E
from firmware.core.iec61851 import N_LEAVE_POWER

_LEVEL = {"A": 12000, "B": 9000, "C": 6000, "D": 3000, "E": 0}


class Plant:
    """The physical world: EV (state, diode), RCD, contactor mirror, lock, sensors."""

    def __init__(self, cfg=None, now=0):
        self.evse = E.Evse(cfg)
        self.cfg = self.evse.cfg
        self.now = now
        self.ev = "A"  # physical EV state letter
        self.diode = True
        self.noise_mv = 0  # added to the CP high level on the next sample
        self.rcd_fault = False  # a real residual current
        self.rcd_broken = False  # the RDC-DD does not react to its test input
        self.welded = False
        self.current_ma = 0  # what the EV draws when the contactor is closed
        self.ev_follows = True  # the EV draws min(wanted, advertised)
        self.want_ma = 16000
        self.temp_dc = 250
        self.pp_ohm = 220
        self.lock_jammed = False
        self.trace = []

    def sample(self):
        """Fill evse.inputs from the physical state under the current outputs."""
        e = self.evse
        out = e.outputs
        inp = e.inputs
        if out.pilot == E.PILOT_MINUS12:
            hi = lo = -12000
        elif out.pilot == E.PILOT_OFF:
            hi = lo = 0
        else:
            hi = _LEVEL[self.ev] + self.noise_mv
            if out.pilot == E.PILOT_PWM:
                lo = -12000 if (self.diode or self.ev in "AE") else -hi
            else:
                lo = hi
        inp.cp_high_mv = hi
        inp.cp_low_mv = lo
        inp.pp_ohm = self.pp_ohm if self.ev != "A" else 100000
        inp.temp_dc = self.temp_dc
        closed = out.contactor or self.welded
        inp.contactor_fb = 1 if closed else 0
        if self.cfg.lock_fitted:
            inp.lock_fb = (1 if out.lock else 0) if not self.lock_jammed else 0
        # RDC-DD: trips on a real fault, or while its test input is driven (if it works).
        inp.rcd_trip = self.rcd_fault or (out.rcd_test and not self.rcd_broken)
        if closed and self.ev in "CD":
            a = self.want_ma
            if self.ev_follows and out.pilot == E.PILOT_PWM and a > out.allowed_ma:
                a = out.allowed_ma
            inp.current_ma = a if self.current_ma == 0 else self.current_ma
        else:
            inp.current_ma = self.current_ma if closed else 0

    def tick(self, ms=10):
        from time import ticks_add
        self.now = ticks_add(self.now, ms)
        self.sample()
        out = self.evse.step(self.evse.inputs, self.now)
        self.noise_mv = 0
        return out

    def run(self, ms, period=10):
        """Step for `ms` milliseconds; return the outputs."""
        n = ms // period
        out = self.evse.outputs
        for _ in range(n):
            out = self.tick(period)
        return out

    def until(self, cond, max_ms, period=10):
        """Step until cond(outputs) is true; return elapsed ms or -1."""
        t = 0
        while t < max_ms:
            out = self.tick(period)
            t += period
            if cond(out):
                return t
        return -1

    def snap(self):
        o = self.evse.outputs
        return {"state": o.state, "pilot": o.pilot, "duty": o.duty_pm, "contactor": o.contactor,
                "fault": E.fault_names(o.fault), "allowed": o.allowed_ma, "lock": o.lock,
                "phases": o.phases, "reason": o.stop_reason, "rcd_test": o.rcd_test}


def make_cfg(d):
    cfg = E.EvseConfig()
    for k in d:
        setattr(cfg, k, d[k])
    return cfg


def charged_plant(cfg=None, want_ma=16000):
    """A plant with an EV charging in C2 (for scenario tests)."""
    p = Plant(make_cfg(cfg or {}))
    p.run(1500)  # boot: RCD self-test, state A
    p.ev = "B"
    p.want_ma = want_ma
    p.run(1000)  # plug: RCD self-test, B2
    p.ev = "C"
    p.run(500)
    assert p.evse.outputs.contactor, p.snap()
    return p


class Oracle:
    """Safety rules of DESIGN.md checked from physical truth after every step."""

    def __init__(self, plant):
        self.p = plant
        self.not_c = 0  # consecutive samples with the EV physically not asking for power
        self.no_diode = 0
        self.last_pwm_ms = None  # when the pilot last showed PWM while closed
        self.pwm_off_ms = None  # first step of a soft stop (PWM off, still closed)
        self.rcd_proven = False  # a self-test pulse drew a trip in this session
        self.a_run = 0  # consecutive samples with the EV unplugged and the contactor open
        self.steps = 0
        self.errors = []
        self.n_errors = 0
        self.phases = plant.evse.outputs.phases
        self.was_closed = False
        self.hist_limit = []  # (time, allowed) of the last 5 s, for the hard over-current rule

    def check(self, ev_before, noise_before, limit_before, current_in, test_before):
        from time import ticks_diff
        p = self.p
        e = p.evse
        o = e.outputs
        cfg = p.cfg
        self.steps += 1
        wants = ev_before == "C" or (ev_before == "D" and cfg.ventilation)
        # A large glitch may look like anything, C included: it restarts the count.
        if abs(noise_before) < 400:
            self.not_c = 0 if wants else self.not_c + 1
        else:
            self.not_c = 0
        if test_before and e.inputs.rcd_trip:
            self.rcd_proven = True
        if o.phases != self.phases:
            if o.contactor or self.was_closed:
                self.n_errors += 1
                self.errors.append("t=%d phases switched around a closed contactor" % p.now)
            self.phases = o.phases
        self.was_closed = o.contactor
        if not o.contactor:
            self.last_pwm_ms = None
            self.pwm_off_ms = None
            # An unplug the firmware can see (ref §1: N_ENTER agreeing samples; a shorter A
            # is noise to any classifier, and no hand re-plugs within 30 ms) starts a new
            # session, which must prove the RCD again.
            self.a_run = self.a_run + 1 if ev_before == "A" and abs(noise_before) < 400 else 0
            if self.a_run >= 3:
                self.rcd_proven = False
            return
        self.a_run = 0
        err = None
        if self.not_c >= N_LEAVE_POWER:
            err = "closed %d samples after the EV left C/D (%s)" % (self.not_c, ev_before)
        elif p.rcd_fault:
            err = "closed with a residual current"
        elif o.rcd_test:
            err = "closed during the RCD self-test"
        elif p.temp_dc >= 710:
            err = "closed at %d dC" % p.temp_dc
        elif o.fault:
            err = "closed with fault %s" % E.fault_names(o.fault)
        elif cfg.rcd_fitted and not self.rcd_proven:
            err = "closed without an RCD self-test in this session"
        elif cfg.lock_fitted and (not o.lock or p.lock_jammed):
            err = "closed without the socket locked"
        elif o.pilot == E.PILOT_PWM:
            self.last_pwm_ms = p.now
            self.pwm_off_ms = None
            if not e.cp.diode_ok:
                err = "closed without the EV diode seen"
            elif o.allowed_ma < 6000:
                err = "closed with PWM below 6 A"
            elif not e.enabled:
                err = "closed while disabled"
            elif cfg.require_auth and not e.authorized:
                err = "closed without authorization"
        else:
            if self.pwm_off_ms is None:
                self.pwm_off_ms = p.now  # the first step with the PWM off
            if self.last_pwm_ms is None:
                err = "closed without PWM ever on"
            elif ticks_diff(p.now, self.pwm_off_ms) >= 6000:
                err = "closed %d ms after PWM off" % ticks_diff(p.now, self.pwm_off_ms)
        # Hard over-current opens on the same step (1.5 x the highest limit of the last 5 s).
        hist = self.hist_limit
        hist.append((p.now, max(limit_before, o.allowed_ma)))
        while hist and ticks_diff(p.now, hist[0][0]) > 5100:
            hist.pop(0)
        top = max(x[1] for x in hist)
        if top and current_in * 2 > top * 3 and current_in * 2 > limit_before * 3:
            err = "closed at %d mA with limit %d" % (current_in, top)
        if err:
            self.n_errors += 1
            if len(self.errors) < 20:  # keep the first few; count the rest
                self.errors.append("t=%d %s %s" % (p.now, err, p.snap()))


def _mutant_delay_open(e):
    """A deliberately broken evse: the contactor opens one step late (mutation test)."""
    step = e.step
    held = [False]

    def late_step(inp, now):
        was_held = held[0]
        held[0] = False
        was = e.outputs.contactor
        out = step(inp, now)
        if was and not out.contactor and not was_held:
            out.contactor = True  # keep it closed for one more step
            held[0] = True
        return out

    e.step = late_step


def run_actions(actions, cfg=None, start=0, mutant=None):
    """Execute a list of [name, arg] actions, checking the oracle on every 10 ms step.
    Returns {"steps": n, "errors": [...], "closed_steps": n, "states": {...}}."""
    p = Plant(make_cfg(cfg or {}), now=start)
    if mutant == "delay_open":
        _mutant_delay_open(p.evse)
    o = Oracle(p)
    e = p.evse
    closed_steps = 0
    states = {}

    def step(ms):
        nonlocal closed_steps
        ev_before = p.ev
        noise_before = p.noise_mv
        limit_before = e.outputs.allowed_ma
        test_before = e.outputs.rcd_test
        p.tick(ms)
        o.check(ev_before, noise_before, limit_before, e.inputs.current_ma, test_before)
        if e.outputs.contactor:
            closed_steps += 1
        s = e.outputs.state
        states[s] = states.get(s, 0) + 1

    for name, arg in actions:
        if name == "ev":
            p.ev = arg
        elif name == "diode":
            p.diode = arg
        elif name == "noise":
            p.noise_mv = arg
        elif name == "rcd":
            p.rcd_fault = arg
        elif name == "rcd_broken":
            p.rcd_broken = arg
        elif name == "weld":
            p.welded = arg
        elif name == "temp":
            p.temp_dc = arg
        elif name == "draw":
            p.current_ma = arg
        elif name == "want":
            p.want_ma = arg
        elif name == "limit":
            e.set_backend_limit_ma(arg)
        elif name == "enable":
            e.set_enabled(arg)
        elif name == "auth":
            e.authorize()
        elif name == "reset":
            e.reset_faults()
        elif name == "phases":
            e.request_phases(arg)
        elif name == "pp":
            p.pp_ohm = arg
        elif name == "wait":
            for _ in range(arg // 10):
                step(10)
            continue
        elif name == "jump":
            step(arg)
            continue
        step(10)
    return {"steps": o.steps, "errors": o.errors[:5], "n_errors": o.n_errors,
            "closed_steps": closed_steps, "states": states}
