# Simulated wallbox hardware for the unix port: the same driver interfaces as hal/,
# backed by one World with physics: an EV that presents the standard's CP levels and
# diode, closes S2 when offered PWM, follows the PWM current limit after a delay and can
# misbehave; an RDC-DD that answers its test input; a contactor that can weld; a lock;
# a meter consistent with the load. The world advances on every driver call, using the
# process clock, and applies scheduled physical events at their absolute time (µs), so a
# reaction latency is measured from the instant the physical change happened.
import array
import time
from micropython import const

from firmware.core.iec61851 import ma_from_duty_pm

from firmware.core.consts import (PILOT_OFF, PILOT_PLUS12, PILOT_PWM, PILOT_MINUS12,
                                  PP_OPEN_OHM, TEMP_NONE)

_LEVEL_MV = {"A": 12000, "B": 9000, "C": 6000, "D": 3000, "E": 0}
_CHANGES_MAX = const(100)
_CHANGE_KINDS = ("pilot", "contactor", "phases", "rcd_test", "lock")  # recent output changes (latency look-ups need the last few)
_RCD_TRIP_US = const(20000)  # the RDC-DD answers its test input after 20 ms
_RCD_CLEAR_US = const(30000)  # and releases 30 ms after the test input drops
_LOCK_US = const(100000)  # lock actuator travel time

# What the harness may set, with a validator each (name -> kind).
SETTABLE = {
    "plugged": bool, "s2": bool, "vent": bool, "diode": bool, "cp_short": bool,
    "ev_state": str, "ignore_limit": bool, "ignore_stop": bool, "want_ma": int,
    "ev_phases": int, "delay_ms": int, "pp_ohm": int, "rcd_fault": bool, "rcd_broken": bool,
    "welded": bool, "temp_dc": int, "lock_jammed": bool, "load_ma": int, "meter_dead": bool,
    "mains_mv": int, "button": bool, "noise_mv": int, "fail_sample": bool,
    "fail_count": int,
}


def _house_input(name):
    """An input of the house model (hal/sim_house.py: loads, PV, mains meter, grid relay)?"""
    from hal.sim_house import KINDS
    return name in KINDS


class World:
    def __init__(self):
        # Thread mode: the control thread and the asyncio side both touch the world; the
        # tick holds this lock (runtime hw.tick_lock), the sim bench's requests and the
        # meter take it too (hal/simctl.py). None on a port without _thread.
        try:
            import _thread
            self.mutex = _thread.allocate_lock()
        except ImportError:
            self.mutex = None
        # EV and cable
        self.plugged = False
        self.s2 = True  # the EV wants to charge: closes S2 when it sees PWM
        self.vent = False  # asks for ventilation (state D instead of C)
        self.diode = True
        self.cp_short = False  # CP shorted to PE (state E)
        self.ev_state = ""  # "" = follow the EV model; "A".."E" forces the CP state
        self.ignore_limit = False  # draws want_ma whatever the duty says
        self.ignore_stop = False  # stays in C when the PWM stops
        self.want_ma = 16000  # what the EV would draw per phase
        self.ev_phases = 3
        self.delay_ms = 300  # EV reaction to S2/PWM/limit changes
        self.pp_ohm = 220  # 32 A cable
        # faults and environment
        self.rcd_fault = False
        self.rcd_broken = False
        self.welded = False
        self.temp_dc = 250
        self.lock_jammed = False
        self.load_ma = -1  # >= 0: force this draw per phase (misbehaving EV / short)
        self.meter_dead = False
        self.mains_mv = 230000
        self.button = False
        self.noise_mv = 0  # peak noise added to CP samples
        self.fail_sample = False  # CP sampler raises (a driver bug) to test task recovery
        self.fail_count = 0  # > 0: that many CP samples raise (then it works again)
        self.house = None  # hal/sim_house.py House, made on first use (load management)
        # what the drivers drive
        self.pilot = PILOT_PLUS12
        self.duty_pm = 1000
        self.contactor = False
        self.phases = 3
        self.lock = False
        self.rcd_test = False
        self.led = 0
        # derived physics
        self.s2_closed = False
        self._s2_since = 0
        self.draw_ma = 0  # per phase, while power flows
        self._target_ma = 0
        self._target_since = 0
        self._rcd_test_on_us = 0
        self._rcd_test_off_us = 0
        self._lock_pos = False
        self._lock_since = 0
        self.energy_mwh = 0  # delivered energy (milli-Wh)
        # what is below 1 mWh, so nothing is truncated away: us not yet integrated (< 1 ms),
        # mW x ms as mJ (< 3600) + uJ (< 1000); all small ints on a 32-bit port too
        self._e_us = 0
        self._e_mj = 0
        self._e_uj = 0
        self._last_us = time.ticks_us()
        self._rng = 12345
        self.cp_hi_mv = 12000  # cp_levels() writes these
        self.cp_lo_mv = 12000
        self.schedule = []  # [t_us, name, value], sorted by time
        self.applied = []  # [t_us, name, value] applied scheduled events (last 100)
        # Output changes, the last _CHANGES_MAX, as a ring of preallocated int arrays:
        # recording one allocates nothing (the control thread records them) and the ring
        # costs ~1 KB of heap instead of ~8 KB of 4-element lists on a 64-bit port.
        self._ch_t = array.array("q", bytes(8 * _CHANGES_MAX))  # ticks_us: > 32 bits here
        self._ch_k = bytearray(_CHANGES_MAX)
        self._ch_v = array.array("i", bytes(4 * _CHANGES_MAX))
        self.changes_seq = 0
        self.wdt_feeds = 0
        self.wdt_last_us = 0
        self.wdt_max_gap_us = 0

    # --- harness side ----------------------------------------------------------------

    def set(self, name, value):
        kind = SETTABLE.get(name)
        if kind is None:
            if _house_input(name):
                return self.house_model().set(name, value)
            return "unknown sim input %r" % name
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            return "%s must be %s" % (name, kind.__name__)
        if name == "ev_state" and value not in ("", "A", "B", "C", "D", "E"):
            return "ev_state must be one of '', A, B, C, D, E"
        setattr(self, name, value)
        return None

    def house_model(self):
        """The house around the wallbox (hal/sim_house.py), imported on first use so a
        bench without load management does not pay its heap."""
        if self.house is None:
            from hal.sim_house import House
            self.house = House(self)
        return self.house

    def at(self, t_us, name, value):
        if name not in SETTABLE and not _house_input(name):
            return "unknown sim input %r" % name
        s = self.schedule
        i = len(s)
        while i > 0 and time.ticks_diff(s[i - 1][0], t_us) > 0:
            i -= 1
        s.insert(i, [t_us, name, value])
        return None

    def record(self, what, value):
        i = self.changes_seq % _CHANGES_MAX
        self._ch_t[i] = time.ticks_us()
        self._ch_k[i] = _CHANGE_KINDS.index(what)
        self._ch_v[i] = value
        self.changes_seq += 1

    def changes(self, since=0):
        """Output changes after seq `since`, oldest first: [t_us, what, value, seq]."""
        out = []
        n = self.changes_seq
        seq = n - _CHANGES_MAX if n > _CHANGES_MAX else 0
        if seq < since:
            seq = since
        while seq < n:
            i = seq % _CHANGES_MAX
            seq += 1
            out.append([self._ch_t[i], _CHANGE_KINDS[self._ch_k[i]], self._ch_v[i], seq])
        return out

    # --- physics ---------------------------------------------------------------------

    def update(self):
        now = time.ticks_us()
        s = self.schedule
        while s and time.ticks_diff(now, s[0][0]) >= 0:
            t, name, value = s.pop(0)
            self.set(name, value)
            self.applied.append([t, name, value])
            if len(self.applied) > 100:
                self.applied.pop(0)
        dt = time.ticks_diff(now, self._last_us)
        self._last_us = now
        # S2: the EV closes it when plugged, willing and offered PWM; opens when the
        # PWM stops (unless misbehaving), each after its reaction delay.
        want_c = self.plugged and self.s2 and (
            self.pilot == PILOT_PWM or (self.ignore_stop and self.s2_closed))
        if want_c != self.s2_closed:
            if self._s2_since == 0:
                self._s2_since = now or 1
            elif time.ticks_diff(now, self._s2_since) >= self.delay_ms * 1000:
                self.s2_closed = want_c
                self._s2_since = 0
        else:
            self._s2_since = 0
        # Current: follows the advertised limit after the delay.
        st = self.cp_state()
        power = (self.contactor or self.welded) and (st == "C" or st == "D")
        target = 0
        if power:
            target = self.want_ma
            if not self.ignore_limit:
                adv = ma_from_duty_pm(self.duty_pm) if self.pilot == PILOT_PWM else 0
                if adv < target:
                    target = adv if adv > 0 else 0
        if target != self._target_ma:
            self._target_ma = target
            self._target_since = now
        if not power:
            self.draw_ma = 0
        elif self.load_ma >= 0:
            self.draw_ma = self.load_ma
        else:
            # d < 0: the target was set > 2**29 us (8.9 min) ago (ticks_us wraps every 2**30
            # us on a 32-bit port and the chip): the delay is long over, e.g. after load_ma.
            d = time.ticks_diff(now, self._target_since)
            if d >= self.delay_ms * 1000 or d < 0:
                self.draw_ma = target
        if self.draw_ma and dt > 0:
            self._energy(self.mains_mv // 1000 * self.draw_ma * self.live_phases(), dt)
        # Lock actuator travel.
        if self._lock_pos != self.lock and not self.lock_jammed:
            # d < 0: commanded > 2**29 us (8.9 min) ago, e.g. a long jam just cleared: the
            # travel time is long over (it read negative up to 17.9 min after the command).
            d = time.ticks_diff(now, self._lock_since)
            if d >= _LOCK_US or d < 0:
                self._lock_pos = self.lock

    def _energy(self, p_mw, dt_us):
        """Integrate p_mw (sum over phases of V x mA) over dt_us into energy_mwh in 31-bit
        small ints: this runs in the control tick, where mW x us (22 kW x 1 ms is 2.2e10)
        would allocate a long int on a chip's 32-bit port every tick. Exact in mW x ms;
        the < 1 ms left over goes in with the next call."""
        t = self._e_us + dt_us
        ms = t // 1000
        self._e_us = t - ms * 1000
        w = p_mw // 1000
        r = p_mw - w * 1000
        mj = self._e_mj
        uj = self._e_uj
        while ms > 0:
            n = ms if ms < 1000 else 1000  # W x 1 s stays small up to 1 MW
            ms -= n
            uj += r * n
            mj += w * n + uj // 1000
            uj %= 1000
            self.energy_mwh += mj // 3600
            mj %= 3600
        self._e_mj = mj
        self._e_uj = uj

    def live_phases(self):
        n = self.phases if self.phases < self.ev_phases else self.ev_phases
        return n if n > 0 else 1

    def cp_state(self):
        if self.ev_state:
            return self.ev_state
        if self.cp_short:
            return "E"
        if not self.plugged:
            return "A"
        if self.s2_closed:
            return "D" if self.vent else "C"
        return "B"

    def cp_levels(self):
        """CP high/low level (mV) into cp_hi_mv / cp_lo_mv: fields, not a tuple, so the
        control tick's sample allocates nothing (thread mode: no garbage from that side)."""
        st = self.cp_state()
        p = self.pilot
        if p == PILOT_MINUS12:
            self.cp_hi_mv = self.cp_lo_mv = -12000
            return
        if p == PILOT_OFF:
            self.cp_hi_mv = self.cp_lo_mv = 0
            return
        hi = _LEVEL_MV[st]
        if self.noise_mv:
            self._rng = (self._rng * 1103515245 + 12345) & 0x3FFFFFFF
            hi += self._rng % (2 * self.noise_mv + 1) - self.noise_mv
        if p == PILOT_PWM:
            lo = -12000 if (self.diode or st == "A" or st == "E") else -hi
        else:
            lo = hi
        self.cp_hi_mv = hi
        self.cp_lo_mv = lo

    def rcd_tripped(self):
        if self.rcd_fault:
            return True
        if self.rcd_broken:
            return False
        now = time.ticks_us()
        if self.rcd_test:
            return time.ticks_diff(now, self._rcd_test_on_us) >= _RCD_TRIP_US
        off = self._rcd_test_off_us
        if off:
            # Released _RCD_CLEAR_US after the test input dropped, for good: the time was
            # kept, and with ticks_us wrapping every 2**30 us (32-bit port, chip) ticks_diff
            # read negative 8.9-17.9 min after every self-test: tripped again (F_RCD_TRIP).
            d = time.ticks_diff(now, off)
            if 0 <= d < _RCD_CLEAR_US:
                return True
            self._rcd_test_off_us = 0
        return False


# --- drivers with the hal/ interfaces ----------------------------------------------------

class SimPilot:
    def __init__(self, w):
        self.w = w
        self.high_mv = 0
        self.low_mv = 0
        self.error = None
        self.mode = -1
        self.duty = -1

    def set(self, mode, duty_pm):
        if mode == self.mode and (mode != PILOT_PWM or duty_pm == self.duty):
            return
        self.mode = mode
        self.duty = duty_pm
        w = self.w
        w.pilot = mode
        w.duty_pm = duty_pm if mode == PILOT_PWM else (1000 if mode == PILOT_PLUS12 else 0)
        w.record("pilot", mode * 10000 + w.duty_pm)

    def sample(self):
        w = self.w
        if w.fail_sample:
            raise OSError(5, "sim: CP sampler failure")
        if w.fail_count > 0:
            w.fail_count -= 1
            raise OSError(5, "sim: CP sampler failure")
        w.update()
        w.cp_levels()
        self.high_mv = w.cp_hi_mv
        self.low_mv = w.cp_lo_mv
        return True


class SimProximity:
    def __init__(self, w):
        self.w = w
        self.error = None

    def read_ohm(self):
        return self.w.pp_ohm if self.w.plugged else PP_OPEN_OHM


class SimContactor:
    def __init__(self, w):
        self.w = w
        self.phases = w.phases
        self.error = None

    def set(self, on):
        w = self.w
        if w.contactor != on:
            w.contactor = on
            w.record("contactor", 1 if on else 0)

    def force_off(self):
        self.set(False)

    def feedback(self):
        return 1 if (self.w.contactor or self.w.welded) else 0

    def set_phases(self, n):
        if n != 1 and n != 3:
            return "bad_phases"
        if self.w.contactor:
            return "contactor_closed"
        self.phases = n
        self.w.phases = n
        self.w.record("phases", n)
        return None


class SimRcd:
    def __init__(self, w):
        self.w = w
        self.trip_ms = 0
        self.clear_ms = 0

    def tripped(self):
        return self.w.rcd_tripped()

    def set_test(self, on):
        w = self.w
        if on != w.rcd_test:
            w.rcd_test = on
            if on:
                w._rcd_test_on_us = time.ticks_us()
            else:
                w._rcd_test_off_us = time.ticks_us() or 1
            w.record("rcd_test", 1 if on else 0)

    async def selftest(self):
        """Same contract as hal.rcd.Rcd.selftest: (ok, reason)."""
        import asyncio
        if self.tripped():
            return False, "rcd_tripped_before_test"
        self.set_test(True)
        t0 = time.ticks_ms()
        try:
            while not self.tripped():
                if time.ticks_diff(time.ticks_ms(), t0) > 500:
                    return False, "rcd_no_trip"
                await asyncio.sleep_ms(5)
            self.trip_ms = time.ticks_diff(time.ticks_ms(), t0)
        finally:
            self.set_test(False)
        t1 = time.ticks_ms()
        while self.tripped():
            if time.ticks_diff(time.ticks_ms(), t1) > 1200:
                return False, "rcd_no_clear"
            await asyncio.sleep_ms(5)
        self.clear_ms = time.ticks_diff(time.ticks_ms(), t1)
        return True, None


class SimCurrent:
    """CT readings per phase (mA) from the world's load."""

    def __init__(self, w):
        self.w = w
        self.ma = [0, 0, 0]
        self.error = None

    def update(self):
        w = self.w
        d = w.draw_ma
        n = w.live_phases()
        m = self.ma
        m[0] = d
        m[1] = d if n >= 2 else 0
        m[2] = d if n >= 3 else 0

    def read_peak(self):
        """The control tick's half-cycle peak (hal/current.py): the sim's draw is a clean
        sine, so its peak's RMS equivalent is the draw itself, as the world has it now."""
        return self.w.draw_ma


class SimMeter:
    """A meter consistent with the load (per-phase V and I, power, energy)."""

    def __init__(self, w, current):
        self.w = w
        self.current = current
        self.v_mv = [0, 0, 0]
        self.i_ma = [0, 0, 0]
        self.p_w = 0
        self.e_wh = 0
        self.error = None

    async def poll(self):
        w = self.w
        if w.meter_dead:
            self.error = "meter_timeout"
            return False
        lk = w.mutex
        if lk is not None:
            lk.acquire()
        try:
            self._poll()
        finally:
            if lk is not None:
                lk.release()
        return True

    def _poll(self):
        w = self.w
        w.update()
        self.current.update()
        for i in range(3):
            self.v_mv[i] = w.mains_mv
            self.i_ma[i] = self.current.ma[i]
        self.p_w = w.mains_mv // 1000 * (self.i_ma[0] + self.i_ma[1] + self.i_ma[2]) // 1000
        self.e_wh = w.energy_mwh // 1000
        self.error = None
        return True


class SimTemp:
    def __init__(self, w):
        self.w = w
        self.error = None

    def read_dc(self):
        t = self.w.temp_dc
        self.error = "temp_open" if t == TEMP_NONE else None
        return t


class SimLock:
    def __init__(self, w):
        self.w = w
        self.busy = False
        self.error = None

    def set(self, locked):
        w = self.w
        if w.lock != locked:
            w.lock = locked
            w._lock_since = time.ticks_us()
            w.record("lock", 1 if locked else 0)

    def update(self):
        pass

    def feedback(self):
        return 1 if self.w._lock_pos else 0


class SimLed:
    def __init__(self, w):
        self.w = w

    def show(self, rgb):
        if self.w.led != rgb:
            self.w.led = rgb


class SimButton:
    def __init__(self, w):
        self.w = w

    def pressed(self):
        return self.w.button


class SimWatchdog:
    """Records feeds; the harness reads the longest gap (a real WDT would reset)."""

    def __init__(self, w, timeout_ms):
        self.w = w
        self.timeout_ms = timeout_ms

    def feed(self):
        w = self.w
        now = time.ticks_us()
        if w.wdt_feeds:
            gap = time.ticks_diff(now, w.wdt_last_us)
            if gap > w.wdt_max_gap_us:
                w.wdt_max_gap_us = gap
        w.wdt_last_us = now
        w.wdt_feeds += 1

