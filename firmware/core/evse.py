# The charging state machine and safety supervisor.
#
# `Evse.step(inputs, now_ms)` is pure: no I/O, no clock reads, no allocation in the
# steady state. The same inputs give the same outputs everywhere, which is what lets
# the tests drive it through millions of random steps in the unix port.
# Times are ticks (time.ticks_ms values) compared with ticks_diff, so they wrap safely;
# every timer is looked at on every step, so no gap between steps nears the 2**29 ms
# limit of ticks_diff. Numbers cite ../shared/reference/iec61851.md as "ref §n".
from micropython import const
from time import ticks_add, ticks_diff

from firmware.core.iec61851 import (
    PilotClassifier, duty_pm_from_ma, pp_rating_ma, MIN_CURRENT_MA, MAX_CURRENT_MA,
    ST_A, ST_B, ST_C, ST_D, ST_E, ST_ERR, ST_UNKNOWN)

# Pilot modes, TEMP_NONE and the claim ids are shared with hal/ (firmware/core/consts.py).
from firmware.core.consts import (
    PILOT_OFF, PILOT_PLUS12, PILOT_PWM, PILOT_MINUS12, TEMP_NONE,
    CLAIM_BACKEND, N_CLAIMS, CLAIM_NONE_MA, LIMIT_CONFIG, LIMIT_CABLE, LIMIT_THERMAL,
    LIMIT_NAMES)

# Fault bits. Names (FAULT_NAMES) are what the event log, console and MQTT show.
F_PILOT_SHORT = const(0x0001)  # state E: CP shorted to PE
F_DIODE = const(0x0002)  # EV diode missing or shorted
F_RCD_TRIP = const(0x0004)  # residual current detected
F_RCD_TEST = const(0x0008)  # RCD self-test failed
F_WELDED = const(0x0010)  # mirror contact says closed while commanded open
F_CONTACTOR = const(0x0020)  # mirror contact says open while commanded closed
F_LOCK = const(0x0040)  # socket lock did not reach the commanded position
F_OVERTEMP = const(0x0080)  # over-temperature stop
F_OVERCURRENT = const(0x0100)  # EV drew more than allowed
F_CP_READING = const(0x0200)  # CP level outside every plausible band, persistently
F_PP_READING = const(0x0400)  # PP open/short: cable rating unknown
F_VENTILATION = const(0x0800)  # state D but ventilation not allowed
F_LOCKOUT = const(0x1000)  # too many trips: latched until reset
FAULT_NAMES = ("pilot_short", "diode", "rcd_trip", "rcd_selftest", "welded", "contactor",
               "lock", "overtemp", "overcurrent", "cp_reading", "pp_reading",
               "no_ventilation", "lockout")

# Auto-clearing after _RETRY_MS and counted towards the lockout (ref §8 "state E/F/diode/RCD").
_RETRY_FAULTS = const(0x0001 | 0x0002 | 0x0004 | 0x0008 | 0x0020 | 0x0100 | 0x0200)
# Latched until reset_faults().
_LATCHED_FAULTS = const(0x0010 | 0x0040 | 0x1000)
# While one of these is active the pilot shows F (steady -12 V).
_DRIVE_F_FAULTS = const(_RETRY_FAULTS | _LATCHED_FAULTS)

# Timings (ms).
_RETRY_MS = const(60000)  # ref §8: retry after 60 s (esp32-evse, SmartEVSE)
_LOCKOUT_TRIPS = const(3)  # ref §8: 3 trips in 15 min -> latched
_LOCKOUT_WINDOW_MS = const(900000)
_C_STABLE_MS = const(100)  # ref §8: EV holds C >= 100 ms before the contactor closes
_STOP_WAIT_MS = const(6000)  # ref §3 seq. 10.2: open under load 6 s after PWM off
_GRACE_MS = const(5000)  # ref §2/§8: EV has 5 s to follow a lower duty
_SOFT_OC_MS = const(5000)  # ref §8: soft over-current must last 5 s
_SOFT_OC_MARGIN_MA = const(2000)  # ref §8: limit + max(2 A, 10 %)
_MIRROR_MS = const(1000)  # ref §6/§8: mirror contact disagrees >= 1 s -> fault
_OPEN_CURRENT_MA = const(2000)  # current with the contactor open: welded (ref §6 AC sense)
_LOCK_MS = const(1000)  # lock must reach its position within 1 s
_F_UNLOCK_MS = const(5000)  # ref §8: unlock the socket 5 s after entering F
_RCD_TRIP_WAIT_MS = const(500)  # ref §8: self-test trip within 500 ms
_RCD_CLEAR_MS = const(1200)  # ref §8: and clears within 1.2 s
_EV_OFF_MS = const(5000)  # ref §8 contactor wear: 5 s after an EV-driven C->B
_PHASE_OFF_MS = const(120000)  # ref §8 1p/3p: off >= 2 min before closing again
_WAKE_B2_MS = const(30000)  # ref §8 wake-up: 30 s in B2 after a resume
_WAKE_F_MS = const(4000)  # then F for 4 s
_WAKE_X1_MS = const(3000)  # then x1 for 3 s
_CP_READING_SAMPLES = const(5)  # consecutive implausible CP samples -> fault
# Temperature in deci-degC (ref §6/§8, OpenEVSE figures).
_T_HALF_DC = const(650)
_T_QUARTER_DC = const(680)
_T_STOP_DC = const(710)
_T_RESUME_DC = const(600)

# RCD self-test phases.
_RT_NEEDED = const(0)
_RT_PULSE = const(1)
_RT_CLEAR = const(2)
_RT_PASSED = const(3)

# Why the contactor last opened (session records, event log).
REASON_NONE = "none"
REASON_EV = "ev"  # EV went C->B (finished or paused by the car)
REASON_UNPLUG = "unplug"
REASON_STOP = "stopped"  # disabled / paused / limit below 6 A / phase switch
REASON_FAULT = "fault"

# outputs.state by CP state (index ST_*: A B C D E F ERR UNKNOWN) under a steady +12 V
# pilot (x1) and under PWM (x2) (ref §1); a reading error shows E, nothing accepted yet A.
_NAMES_X1 = ("A", "B1", "C1", "D1", "E", "A", "E", "A")
_NAMES_X2 = ("A", "B2", "C2", "D2", "E", "A", "E", "A")


class EvseConfig:
    """What evse.step needs from the configuration, in integer units."""

    def __init__(self):
        self.max_ma = 16000  # installation limit
        self.cable_fixed_ma = 0  # 0: socket, rating from PP; else tethered cable rating
        self.require_auth = False
        self.ventilation = False  # D may charge
        self.rcd_fitted = True
        self.lock_fitted = False
        self.phases = 3  # phases at boot
        self.phase_switch = False  # second contactor fitted
        self.min_off_ms = 60000  # gap after the wallbox itself stopped (ref §8 wear)
        self.max_phase_switches = 5
        self.retry_ms = _RETRY_MS  # auto-retry after a clearing fault (ref §8: 60 s)
        self.ev_off_ms = _EV_OFF_MS  # gap after an EV-driven C->B (ref §8 wear: 5 s)


class Inputs:
    """One sample of the world, filled by the control loop before each step."""

    def __init__(self):
        self.cp_high_mv = 12000
        self.cp_low_mv = 12000
        self.pp_ohm = 0
        self.current_ma = 0  # highest phase (RMS over whole cycles, or the meter's)
        self.peak_ma = 0  # highest phase's half-cycle peak as RMS equivalent (0: no CT)
        self.temp_dc = TEMP_NONE
        self.contactor_fb = -1  # -1 not fitted, 0 open, 1 closed
        self.lock_fb = -1  # -1 no feedback, 0 unlocked, 1 locked
        self.rcd_trip = False


class Outputs:
    def __init__(self):
        self.pilot = PILOT_PLUS12
        self.duty_pm = 1000
        self.contactor = False
        self.phases = 3
        self.lock = False
        self.rcd_test = False
        self.state = "A"
        self.fault = 0
        self.allowed_ma = 0
        self.charging = False
        self.stop_reason = REASON_NONE  # why the contactor last opened


class Evse:
    def __init__(self, cfg=None):
        self.cfg = cfg or EvseConfig()
        self.inputs = Inputs()
        self.outputs = Outputs()
        self.cp = PilotClassifier()
        self.enabled = True
        self.authorized = False
        # Thread mode (services/runtime.py): commands come from another thread. A command
        # that writes one field writes it directly; reset_faults writes many, so it is a
        # request the step applies (the step stays the only writer of the fault state).
        self.deferred = False
        self._reset_req = False
        # Claims on the offered current (consts.CLAIM_*): MQTT/console, load management,
        # OCPP, grid dimming. CLAIM_NONE_MA until a claim is set; 0 is a pause.
        self.claims = [CLAIM_NONE_MA] * N_CLAIMS
        # claims[CLAIM_BACKEND], kept by set_claim_ma (the only writer of claims). Not a
        # property: a class with one makes every attribute store on its instances look
        # in the class first (~60 us per step on the RP2040).
        self.backend_ma = CLAIM_NONE_MA
        # The lowest claim and its id (the first on a tie), kept by set_claim_ma too: the
        # offer needs it on every step.
        self._low_claim = (CLAIM_NONE_MA, 0)
        self.limited_by = LIMIT_CONFIG  # what binds the offer (consts.LIMIT_NAMES)
        self._lock_ok = True
        self._trips = [0, 0, 0]  # times of the last trips (ring)
        self._ntrips = 0
        self._last_trip = 0  # time of the newest trip in the ring (step ages the ring out)
        self.outputs.phases = self.cfg.phases
        self._phases_target = self.cfg.phases
        self.fault = 0
        self._rt = _RT_NEEDED
        self._reset_timers()
        self._new_session()
        self._boot_test = self.cfg.rcd_fitted  # self-test once at boot, EV or not

    def _reset_timers(self):
        self._retry_at = 0
        self._f_since = 0  # when the pilot went to F
        self._c_since = 0
        self._c_timing = False
        self._stop_since = 0
        self._stopping = False
        self._grace_until = 0
        self._grace = False
        self._grace_ref_ma = 0
        self._oc_since = 0
        self._oc_timing = False
        self._offer_ma = 0  # the last offer >= 6 A while closed (over-current reference)
        self._mirror_since = 0
        self._mirror_timing = False
        self._lock_since = 0
        self._lock_timing = False
        self._no_close_before = 0
        self._close_blocked = False
        self._opened_at = 0
        self._rt_since = 0
        self._rt_redo = False  # a new session began during a running test: test again
        self._bad_cp = 0
        self._thermal = 0  # 0 none, 1 half, 2 quarter, 3 stop
        self._b2_since = 0
        self._wake_stage = 0  # 0 idle, 1 F, 2 x1
        self._wake_since = 0
        self._was_ready = False

    def _new_session(self):
        self.authorized = False
        if not self.cfg.rcd_fitted:
            self._rt = _RT_PASSED
        self._cable_ma = self.cfg.cable_fixed_ma
        self._phase_switches = 0
        self._wake_armed = False
        self._charged = False  # the contactor closed in this session
        self.fault &= ~(F_PP_READING | F_VENTILATION)

    # --- commands (called from the console or link tasks; each returns None or an error) --

    def set_enabled(self, on):
        if on is not True and on is not False:
            return "enabled must be true or false"
        self.enabled = on
        return None

    def authorize(self):
        self.authorized = True
        return None

    def set_backend_limit_ma(self, ma):
        return self.set_claim_ma(CLAIM_BACKEND, ma)

    def set_claim_ma(self, claim, ma):
        """One claim on the offered current: 0 (pause) or 6000..80000 mA (ref §2: below
        6 A no PWM current may be offered); CLAIM_NONE_MA lifts the claim."""
        if not isinstance(claim, int) or not 0 <= claim < N_CLAIMS:
            return "unknown claim %r" % (claim,)
        if not isinstance(ma, int) or isinstance(ma, bool):
            return "current limit must be a whole number of mA"
        if ma != 0 and not (MIN_CURRENT_MA <= ma <= MAX_CURRENT_MA):
            return "current limit must be 0 (pause) or 6000..80000 mA"
        c = self.claims
        c[claim] = ma
        if claim == CLAIM_BACKEND:
            self.backend_ma = ma
        low = min(c)
        self._low_claim = (low, c.index(low))  # one reference: the step reads it whole
        return None

    def limit_name(self):
        """What binds the offered current, for status/MQTT/log ("load management")."""
        return LIMIT_NAMES[self.limited_by]

    def request_phases(self, n):
        if not self.cfg.phase_switch:
            return "phase switching is not fitted on this wallbox"
        if n != 1 and n != 3:
            return "phases must be 1 or 3"
        if n == self._phases_target:
            return None
        if self._phase_switches >= self.cfg.max_phase_switches:
            return "phase switch limit for this session reached (%d)" % self.cfg.max_phase_switches
        self._phases_target = n
        return None

    def reset_faults(self):
        """Clear every fault and the trip history; a condition still present comes back.
        Deferred (thread mode): applied at the start of the next step."""
        if self.deferred:
            self._reset_req = True
            return None
        self._reset_now()
        return None

    def _reset_now(self):
        self.fault = 0
        self._ntrips = 0
        self._mirror_timing = False
        self._lock_timing = False
        self._oc_timing = False
        self._bad_cp = 0
        if not self.outputs.contactor:
            self.cp.reset_diode()  # the EV proves its diode again
            self._retest_rcd()  # (a running RCD test goes on)

    # --- helpers --------------------------------------------------------------------

    def _trip(self, bit, now):
        """Raise a retrying fault; the 3rd within 15 min latches a lockout."""
        if self.fault & bit:
            return
        self.fault |= bit
        self._retry_at = now
        self._last_trip = now
        t = self._trips
        t[self._ntrips % _LOCKOUT_TRIPS] = now
        self._ntrips += 1
        if self._ntrips >= _LOCKOUT_TRIPS:
            oldest = t[self._ntrips % _LOCKOUT_TRIPS]
            if ticks_diff(now, oldest) <= _LOCKOUT_WINDOW_MS:
                self.fault |= F_LOCKOUT

    def _allowed_ma(self, th):
        """The offer: the minimum of the configured maximum, the cable (ref §4), every
        claim and the thermal derating th (ref §6/§8, _thermal_update); limited_by names
        the one that binds."""
        a = self.cfg.max_ma
        by = LIMIT_CONFIG
        cable = self._cable_ma
        if cable and cable < a:
            a = cable
            by = LIMIT_CABLE
        low = self._low_claim
        if low[0] < a:
            a, by = low
        if th:
            t = 0 if th == 3 else max(a // (2 if th == 1 else 4), MIN_CURRENT_MA)
            if t < a:
                a = t
                by = LIMIT_THERMAL
        if a > MAX_CURRENT_MA:
            a = MAX_CURRENT_MA
        self.limited_by = by
        return a

    def _thermal_update(self, t):
        """The derating level for temperature t (0 none, 1 half, 2 quarter, 3 stop), kept
        in _thermal and returned."""
        if t == TEMP_NONE:
            self._thermal = 0
            return 0
        if t >= _T_STOP_DC:
            lvl = 3
        elif t >= _T_QUARTER_DC:
            lvl = 2
        elif t >= _T_HALF_DC:
            lvl = 1
        else:
            lvl = 0
        th = self._thermal
        if lvl > th:
            th = self._thermal = lvl
        elif t < _T_RESUME_DC and th:
            th = self._thermal = 0  # resume only well below the thresholds (hysteresis)
        return th

    # --- the step: sample -> classify -> faults -> transitions -> outputs -------------
    # Each handler is one rule of the standard (its section named); locals pass between
    # them as ints and bools, so a step allocates nothing.

    def step(self, inp, now):
        out = self.outputs
        if self._reset_req:
            self._reset_req = False
            self._reset_now()
        was_closed = out.contactor
        drive_f = out.pilot == PILOT_MINUS12
        if not drive_f:  # while we drive F ourselves the level says nothing
            self._classify(inp, now)
        # A handler with nothing to do is not called: a call costs ~12 us on the RP2040
        # (docs/emulator.md "Figures"). Each guard is the handler's own first test.
        rt = self._rt
        if rt == _RT_PULSE or rt == _RT_CLEAR or inp.rcd_trip:
            self._residual_current(inp, now)
        self._mirror_contact(inp, was_closed, now)
        allowed = self._limits(inp, was_closed, now)
        if self.fault & _RETRY_FAULTS:
            self._retry(now)
        if self._ntrips:
            # Age the trip ring out once its newest trip is older than the lockout window:
            # ticks wrap every 2**30 ms (~12.4 d) and ticks_diff is only right below 2**29,
            # so a trip kept for days read as recent (trips day 0, 1, 7 latched a lockout).
            # Looked at every step, each kept trip is < 2 windows old when _trip reads it.
            d = ticks_diff(now, self._last_trip)
            if d > _LOCKOUT_WINDOW_MS or d < 0:
                self._ntrips = 0
        want_lock = self._lock(inp, drive_f, now) if self.cfg.lock_fitted else False
        if self._rt == _RT_NEEDED:
            self._start_rcd_test(was_closed, drive_f, now)
        ready = self._ready(allowed, now)
        pilot = self._pilot_mode(ready, now)
        closed = self._contactor(inp, was_closed, pilot, now)
        if self._phases_target != out.phases:
            self._phase_switch(closed, was_closed, now)
        self._set_outputs(pilot, closed, allowed, want_lock, drive_f, now)
        return out

    def _classify(self, inp, now):
        """Pilot level -> state (ref §1: thresholds, debounce in iec61851), plug/unplug
        edges, and the pilot faults: E (ref §1, §8), diode (ref §2), implausible CP,
        D without ventilation (ref §1 state D)."""
        c = self.cp
        prev = c.state
        pwm = self.outputs.pilot == PILOT_PWM
        cp = c.update(inp.cp_high_mv, inp.cp_low_mv, pwm)
        if cp != prev:
            if cp == ST_A:
                self._new_session()
            elif ST_B <= cp <= ST_D and (prev == ST_A or prev == ST_UNKNOWN):
                self._plugged(inp)
        raw = c.raw
        if raw == ST_ERR:
            self._bad_cp += 1
            if self._bad_cp >= _CP_READING_SAMPLES:
                self._trip(F_CP_READING, now)
        elif self._bad_cp:
            self._bad_cp = 0
        if cp == ST_E and raw == ST_E:  # (a stale E after F needs a fresh sample)
            self._trip(F_PILOT_SHORT, now)
        if pwm and c.diode_bad:
            self._trip(F_DIODE, now)
        if cp == ST_D and not self.cfg.ventilation:
            self.fault |= F_VENTILATION
        elif self.fault & F_VENTILATION:
            self.fault &= ~F_VENTILATION

    def _residual_current(self, inp, now):
        """RCD (ref §5): a trip any time, except while our own self-test pulses it.
        (step calls it only during a self-test or with the trip input set.)"""
        if self._rt == _RT_PULSE or self._rt == _RT_CLEAR:
            self._rcd_selftest(inp, now)
        elif inp.rcd_trip:
            self._trip(F_RCD_TRIP, now)
            if self.cfg.rcd_fitted:
                self._rt = _RT_NEEDED  # prove the RCD again before the next close

    def _mirror_contact(self, inp, was_closed, now):
        """Welded or not closing (ref §6): the mirror contact disagrees for 1 s, or current
        flows with the contactor open (welded, mirror contact or not)."""
        fb = inp.contactor_fb
        flowing = not was_closed and inp.current_ma >= _OPEN_CURRENT_MA
        if (fb >= 0 and (fb == 1) != was_closed) or flowing:
            if not self._mirror_timing:
                self._mirror_timing = True
                self._mirror_since = now
            elif ticks_diff(now, self._mirror_since) >= _MIRROR_MS:
                if fb == 1 or flowing:
                    self.fault |= F_WELDED
                else:
                    self._trip(F_CONTACTOR, now)
                self._mirror_timing = False
        elif self._mirror_timing:
            self._mirror_timing = False

    def _limits(self, inp, was_closed, now):
        """Thermal stop (ref §6/§8), the current to offer, the EV's 5 s to follow a lower
        offer (ref §2) and over-current (ref §8). Returns the current allowed (mA)."""
        t = inp.temp_dc
        # Below the first threshold with no derating running nothing changes (TEMP_NONE
        # is below it too).
        th = self._thermal_update(t) if t >= _T_HALF_DC or self._thermal else 0
        if th == 3:
            self.fault |= F_OVERTEMP
        elif th == 0 and self.fault & F_OVERTEMP:
            self.fault &= ~F_OVERTEMP
        allowed = self._allowed_ma(th)
        prev = self.outputs.allowed_ma
        if was_closed and allowed < prev:
            if not self._grace or prev > self._grace_ref_ma:
                self._grace_ref_ma = prev
            self._grace = True
            self._grace_until = now
        elif self._grace and ticks_diff(now, self._grace_until) >= _GRACE_MS:
            self._grace = False
        if was_closed:
            self._overcurrent(inp.current_ma, inp.peak_ma, allowed, now)
        elif self._oc_timing:
            self._oc_timing = False
        return allowed

    def _retry(self, now):
        """Auto-clearing faults go away retry_ms (ref §8: 60 s) after the last one."""
        if self.fault & _RETRY_FAULTS and ticks_diff(now, self._retry_at) >= self.cfg.retry_ms:
            self.fault &= ~_RETRY_FAULTS
            # Coming out of F the classifier resumes from the state it held (so a retry
            # does not look like an unplug). F hid the pilot: the EV may have been swapped,
            # so the EV proves its diode and the RCD is self-tested again before a close.
            self.cp.reset_diode()
            self._bad_cp = 0
            self._retest_rcd()

    def _lock(self, inp, drive_f, now):
        """Socket lock (ref §8): locked while an EV is connected; unlocked in A or 5 s
        into F; a lock that does not reach its position within 1 s is a fault.
        Called when a lock is fitted (cfg.lock_fitted); returns whether it should be
        engaged."""
        locked = self.outputs.lock
        if drive_f:
            want_lock = locked and ticks_diff(now, self._f_since) < _F_UNLOCK_MS
        else:
            want_lock = ST_B <= self.cp.state <= ST_D
        lfb = inp.lock_fb
        if lfb >= 0 and (lfb == 1) != locked:
            if not self._lock_timing:
                self._lock_timing = True
                self._lock_since = now
            elif ticks_diff(now, self._lock_since) >= _LOCK_MS:
                self.fault |= F_LOCK
        elif self._lock_timing:
            self._lock_timing = False
        self._lock_ok = locked and lfb != 0
        return want_lock

    def _start_rcd_test(self, was_closed, drive_f, now):
        """RCD self-test (ref §5, §8) at boot and for each session before its first close,
        once faults have cleared. It needs an EV in a sample taken this step: while and
        right after F the held state and the last sample are stale."""
        if was_closed or self.fault & _DRIVE_F_FAULTS:
            return
        c = self.cp
        ev_seen = not drive_f and ST_B <= c.state <= ST_D and ST_B <= c.raw <= ST_D
        if self._rt == _RT_NEEDED and (ev_seen or self._boot_test):
            self._rt = _RT_PULSE
            self._rt_since = now
            self._rt_redo = False  # this test belongs to the session now plugged in
            self._boot_test = False

    def _ready(self, allowed, now):
        """x2, ready to supply (ref §1 B2/C2): enabled, authorized, at least 6 A to offer
        (ref §2), RCD proven, no phase switch pending, no fault, no minimum off time
        running (ref §8 wear). A resume after charging arms the wake-up (ref §8)."""
        if self._close_blocked and ticks_diff(now, self._no_close_before) >= 0:
            self._close_blocked = False
        ready = (self.enabled and (self.authorized or not self.cfg.require_auth)
                 and allowed >= MIN_CURRENT_MA and self._rt == _RT_PASSED
                 and self._phases_target == self.outputs.phases
                 and not self.fault and not self._close_blocked)
        if ready != self._was_ready:
            if ready and self.cp.state == ST_B and self._charged:
                self._wake_armed = True
                self._b2_since = now
            self._was_ready = ready
        return ready

    def _pilot_mode(self, ready, now):
        """F for a fault (ref §1 state F), PWM when ready with an EV (ref §2), steady
        +12 V otherwise; the wake-up sequence (ref §8, EVerest A.5.3) overrides PWM."""
        if self.fault & _DRIVE_F_FAULTS:
            # A fault ends a running wake-up: resumed after the fault, its stale stage and
            # _wake_since (read by ticks_diff, valid < 2**29 ms) held F for up to 6.2 days.
            if self._wake_stage:
                self._wake_stage = 0
            return PILOT_MINUS12
        cp = self.cp.state
        if ready and ST_B <= cp <= ST_D:
            if cp == ST_B and self._wake_armed:
                st = self._wake(now)
                if st == 1:
                    return PILOT_MINUS12
                if st == 2:
                    return PILOT_PLUS12
            else:  # no wake-up: the 30 s in B2 count from now
                self._wake_stage = 0
                self._b2_since = now
            return PILOT_PWM
        if self._wake_stage:
            self._wake_stage = 0
        return PILOT_PLUS12

    def _contactor(self, inp, was_closed, pilot, now):
        """Close only in C (or D with ventilation) held 100 ms, PWM on, diode seen, RCD
        proven, lock engaged and no current flowing (ref §3, §8; DESIGN rule 1). Open at
        once when the EV leaves C/D or a fault comes (ref §3: 100 ms); after PWM off
        (soft stop) give the EV 6 s to go to B first (ref §3 seq. 10.2)."""
        c = self.cp
        cp = c.state
        cfg = self.cfg
        ev_wants = cp == ST_C or (cp == ST_D and cfg.ventilation)
        rcd_ok = self._rt == _RT_PASSED
        fault = self.fault
        # Timed under PWM only: C held through a pause (C1) kept _c_since for days, and
        # after > 2**29 ms (6.2 d) ticks_diff read negative: a re-enable did not close.
        if (ev_wants and pilot == PILOT_PWM and not fault and c.diode_ok
                and (not cfg.lock_fitted or self._lock_ok)):
            if not self._c_timing:
                self._c_timing = True
                self._c_since = now
        elif self._c_timing:
            self._c_timing = False
        if was_closed:
            closed = ev_wants and not fault and rcd_ok and not c.diode_bad
            if closed and pilot != PILOT_PWM:
                if not self._stopping:
                    self._stopping = True
                    self._stop_since = now
                elif ticks_diff(now, self._stop_since) >= _STOP_WAIT_MS:
                    closed = False
            elif self._stopping:
                self._stopping = False
        else:
            closed = (pilot == PILOT_PWM and self._c_timing and rcd_ok
                      and ticks_diff(now, self._c_since) >= _C_STABLE_MS
                      and inp.current_ma < _OPEN_CURRENT_MA)  # never close onto a current
            if self._stopping:
                self._stopping = False
        if was_closed and not closed:
            self._opened(cp, pilot, now)
        elif closed and not was_closed:
            self._charged = True
            self._wake_armed = False
        return closed

    def _phase_switch(self, closed, was_closed, now):
        """1p/3p (ref §8): switch only once the contactor has been open a whole step, then
        keep it open for the phase-switch off time."""
        out = self.outputs
        if self._phases_target != out.phases and not closed and not was_closed:
            out.phases = self._phases_target
            self._phase_switches += 1
            if self._charged:
                self._block_close(now, _PHASE_OFF_MS)

    def _set_outputs(self, pilot, closed, allowed, want_lock, drive_f, now):
        """Every output set in one place; duty from the offer (ref §2)."""
        out = self.outputs
        out.pilot = pilot
        if pilot == PILOT_PWM:
            out.duty_pm = duty_pm_from_ma(allowed)
            out.state = _NAMES_X2[self.cp.state]
        elif pilot == PILOT_PLUS12:
            out.duty_pm = 1000
            out.state = _NAMES_X1[self.cp.state]
        else:  # PILOT_MINUS12: state F
            if not drive_f:
                self._f_since = now
            out.duty_pm = 0
            out.state = "F"
        out.contactor = closed
        out.charging = closed
        if self.cfg.lock_fitted:
            out.lock = want_lock or closed  # never unlock under load
        out.rcd_test = self._rt == _RT_PULSE
        out.fault = self.fault
        out.allowed_ma = allowed if allowed >= MIN_CURRENT_MA else 0

    def _retest_rcd(self):
        if not self.cfg.rcd_fitted:
            return
        if self._rt == _RT_PASSED:
            self._rt = _RT_NEEDED
        elif self._rt != _RT_NEEDED:
            # A test is running (its pulse belongs to the session before): never cut it
            # short, but this session gets its own test after it (hypothesis found a close
            # on the previous session's test after a fast unplug / re-plug).
            self._rt_redo = True

    def _plugged(self, inp):
        self._retest_rcd()  # each session proves the RCD again
        if not self.cfg.cable_fixed_ma:
            # Socket: the cable's rating from its PP resistor, read once per plug-in (ref §4).
            self._cable_ma = pp_rating_ma(inp.pp_ohm)
            if not self._cable_ma:
                self.fault |= F_PP_READING

    def _rcd_selftest(self, inp, now):
        el = ticks_diff(now, self._rt_since)
        if self._rt == _RT_PULSE:
            if inp.rcd_trip:
                self._rt = _RT_CLEAR
                self._rt_since = now
            elif el >= _RCD_TRIP_WAIT_MS:
                self._rt = _RT_NEEDED
                self._trip(F_RCD_TEST, now)
        elif not inp.rcd_trip:
            self._rt = _RT_NEEDED if self._rt_redo else _RT_PASSED
            self._rt_redo = False
        elif el >= _RCD_CLEAR_MS:
            self._rt = _RT_NEEDED
            self._trip(F_RCD_TEST, now)

    def _overcurrent(self, ma, peak_ma, allowed, now):
        """Over-current (ref §8) against what the car was last allowed: during the 5 s
        grace after a lower offer (ref §2) and through a pause or stop (offer < 6 A: PWM
        off, the EV has 6 s to go to B, ref §3 seq. 10.2) the reference stays the last
        offer, so a car still drawing while it follows is never a fault (nor a lockout
        count); only a draw above that offer, or above the cable, is over-current.
        The hard check also takes the half-cycle peak (peak_ma, hal/current.py read_peak)
        so it answers within half a mains cycle; the soft one keeps the RMS and its 5 s."""
        if allowed >= MIN_CURRENT_MA:
            self._offer_ma = allowed
        else:
            allowed = self._offer_ma  # pause/stop: the car may draw what it last had
        ref = allowed
        grace = self._grace
        if grace and self._grace_ref_ma > ref:
            ref = self._grace_ref_ma
        cable = self._cable_ma
        # Hard: far above the limit (1.5x) or the cable (+25 %): open at once (ref §8).
        hard = peak_ma if peak_ma > ma else ma
        if hard * 2 > ref * 3 or (cable and hard * 4 > cable * 5):
            self._trip(F_OVERCURRENT, now)
            return
        margin = allowed // 10
        if margin < _SOFT_OC_MARGIN_MA:
            margin = _SOFT_OC_MARGIN_MA
        if not grace and ma > allowed + margin:
            if not self._oc_timing:
                self._oc_timing = True
                self._oc_since = now
            elif ticks_diff(now, self._oc_since) >= _SOFT_OC_MS:
                self._trip(F_OVERCURRENT, now)
        elif self._oc_timing:
            self._oc_timing = False

    def _opened(self, cp, pilot, now):
        out = self.outputs
        if self.fault:
            out.stop_reason = REASON_FAULT
            self._block_close(now, self.cfg.min_off_ms)
        elif cp == ST_A:
            out.stop_reason = REASON_UNPLUG
        elif pilot == PILOT_PWM:
            out.stop_reason = REASON_EV  # the car went C->B by itself
            self._block_close(now, self.cfg.ev_off_ms)
        else:
            out.stop_reason = REASON_STOP
            self._block_close(now, self.cfg.min_off_ms)
        self._stopping = False
        self._grace = False
        self._c_timing = False  # a close after an open times its 100 ms of C afresh

    def _block_close(self, now, ms):
        t = ticks_add(now, ms)
        if not self._close_blocked or ticks_diff(t, self._no_close_before) > 0:
            self._no_close_before = t
        self._close_blocked = True

    def _wake(self, now):
        """Wake-up for cars that do not resume after a pause (ref §8, EVerest A.5.3): in
        B2 with the wake-up armed. Returns the stage (0 idle, 1 F, 2 x1)."""
        st = self._wake_stage
        if st == 0:
            if ticks_diff(now, self._b2_since) >= _WAKE_B2_MS:
                st = 1
                self._wake_since = now
        elif st == 1:
            if ticks_diff(now, self._wake_since) >= _WAKE_F_MS:
                st = 2
                self._wake_since = now
        elif ticks_diff(now, self._wake_since) >= _WAKE_X1_MS:
            st = 0
            self._wake_armed = False  # at most once per pause
        self._wake_stage = st
        return st

def fault_names(bits):
    """List of names for a fault bitmask (allocates: for reporting, not the hot path)."""
    return [n for i, n in enumerate(FAULT_NAMES) if bits & (1 << i)]
