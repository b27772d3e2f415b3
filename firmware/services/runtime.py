# The asyncio runtime: the control loop and the tasks around it.
#
#   control   every control_period_ms: sample -> evse.step -> outputs (contactor first);
#             in its own thread where the port has _thread and config control_thread is
#             on (RP2040: core 1), else an asyncio task (docs/design-notes.md says what
#             bounds the reaction time in each mode)
#   metering  1 s: meter poll, energy into the store, temperature
#   sessions  50 ms: turns output changes into session records and events
#   flush     200 ms: writes dirty records; while charging only energy checkpoints
#   watchdog  fed only while the control loop is on time
# A task that raises is logged and restarted; if the control task raises, the outputs
# go safe first. Nothing here blocks: every wait is an await.
#
# Control thread and asyncio side share state explicitly (each slot has one writer):
#   control thread writes  evse.outputs, evse's own state, the edge counters (plugs,
#                          unplugs, closes, opens, *_changes), last_tick_ms, stats
#   asyncio side writes    claims/enabled/authorized/phase target (one field per command),
#                          evse.cfg fields (config), hold, requests the control side applies
#                          at its next step (evse reset_faults, stats.reset_req)
#   both (benign)          the CT's peak arrays (a lost maximum is read again next tick)
# The sim board's world is one object both sides touch: its lock (hw.tick_lock) is held
# by the tick and by the sim bench's request handler, never across an await.
import asyncio
import gc
import sys
import time
from micropython import const

from firmware.core import evse as E

try:
    import _thread
except ImportError:  # a port without threads: the control loop is an asyncio task
    _thread = None

VERSION = "0.3.0"
_RESTART_MS = const(1000)
_CONTROL_RESTART_MS = const(100)
_MAX_CONTROL_FAILS = const(5)  # then stay safe and let the watchdog reset the board
_CONFIRM_MS = const(3)  # a sample that leaves C/D is confirmed this soon, not a period later
_FAILS_RESET_MS = const(60000)  # a control task that ran this long starts a fresh fail count
_STOP_WAIT_MS = const(500)
_CT_CHUNK_WAIT_MS = const(3)  # thread mode: a CT chunk (<= 2 ms) fits in a wait this long  # stop(): how long to wait for the control thread to end
GAP_HIST_N = const(41)  # control-gap histogram: 1 ms buckets 0..39 ms, last one = 40 ms and more


def evse_config(cfg, board=None):
    """EvseConfig (integer units) from the validated Config."""
    ec = E.EvseConfig()
    apply_config(ec, cfg, board)
    return ec


def apply_config(ec, cfg, board=None):
    ec.max_ma = cfg.get("max_current_a") * 1000
    ec.cable_fixed_ma = cfg.get("cable_fixed_a") * 1000
    ec.require_auth = cfg.get("require_auth")
    ec.ventilation = cfg.get("ventilation")
    ec.lock_fitted = cfg.get("lock")
    ec.phases = cfg.get("phases")
    ec.phase_switch = cfg.get("phase_switch")
    ec.min_off_ms = cfg.get("min_off_s") * 1000
    ec.max_phase_switches = cfg.get("max_phase_switches")
    ec.retry_ms = cfg.get("fault_retry_s") * 1000
    ec.ev_off_ms = cfg.get("ev_off_s") * 1000
    if board is not None:
        ec.rcd_fitted = board.rcd is not None


class Stats:
    """Control loop health, read by the console, the link and the benchmarks."""

    def __init__(self):
        self.ticks = 0
        self.max_gap_ms = 0  # longest time between two control ticks
        self.late = 0  # ticks that came more than one period late
        self.max_tick_us = 0  # longest sample+step+outputs
        self.gap_hist = [0] * GAP_HIST_N  # ticks per gap in ms (preallocated: no allocation per tick)
        self.control_fails = 0
        self.task_errors = 0
        self.last_error = ""
        self.threaded = False  # the control loop runs in its own thread
        self.reset_req = False  # threaded: the control side resets the gap figures

    def reset_gaps(self):
        if self.threaded:
            self.reset_req = True  # the control thread writes these: it resets them
            return
        self.do_reset()

    def do_reset(self):
        self.reset_req = False
        self.max_gap_ms = 0
        self.late = 0
        self.max_tick_us = 0
        h = self.gap_hist
        for i in range(GAP_HIST_N):
            h[i] = 0


class Runtime:
    def __init__(self, hw, store, config):
        self.hw = hw
        self.store = store
        self.config = config
        self.evse = E.Evse(evse_config(config, hw))
        self.stats = Stats()
        self.period_ms = config.get("control_period_ms")
        self.started_ms = time.ticks_ms()
        self.last_tick_ms = self.started_ms
        self.last_command_ms = self.started_ms
        self.temp_dc = E.TEMP_NONE
        self.current_ma = 0
        self.power_w = 0
        self.v_mv = [0, 0, 0]
        self.i_ma = [0, 0, 0]
        self.meter_error = None
        # Edge counters, written by the control side only; the sessions task keeps
        # what it has seen (no flag both sides write).
        self.state_changes = 0
        self.contactor_changes = 0
        self.fault_changes = 0
        self._seen_state = 0
        self._seen_contactor = 0
        self._seen_fault = 0
        self._prev_state = ""
        self._prev_contactor = False
        self._prev_fault = 0
        self._cfg_version = config.version
        self._meter_e_wh = -1
        self._meter_lock = asyncio.Lock()
        # Contactor openings so far: a meter reading from a poll that began before the
        # latest one says nothing about current with the contacts open (found on the
        # emulated RP2040: an SDM630 poll at 9600 Bd plus the 1 s period outlasts the 1 s
        # welded check, so the last closed-contact reading raised a false "welded").
        # One writer each (thread mode): control counts openings, the meter poll records
        # the count its reading belongs to.
        self._opened = 0
        self._meter_opened = 0
        self._closed_cmd = False
        self.plugs = 0  # state left A / came back to A, since boot
        self.unplugs = 0
        self._seen_plugs = 0
        self._seen_unplugs = 0
        self.closes = 0  # contactor closes/opens since boot (sessions task events)
        self.opens = 0
        self._seen_closes = 0
        self._seen_opens = 0
        self._ct_ma = hw.current.ma if hw.current is not None else None
        self.features = {}  # name -> object with status(): optional features (startup.FEATURES)
        self.link = None  # the backend link, when configured (firmware/links/mqtt_link.py)
        self.tasks = {}
        self.stopped = False
        self.threaded = False  # set by start(): the control loop runs in its own thread
        self._thread_running = False
        self._thread_error = None  # the control thread's last exception (logged by the watch)
        self._tick_lock = getattr(hw, "tick_lock", None)
        self._nxt = 0  # control loop pacing (attributes: the loop allocates nothing)
        self._last = 0
        self._early = False
        self.hold = False  # console self-test owns the outputs (state A only, bounded)
        self.cp_gain_pm = 1000
        self.cp_offset_mv = 0
        self._apply_cal()
        self._restore_setpoints()

    def _apply_cal(self):
        """Calibration keys (console calibrate()) into the tick and the CT driver."""
        c = self.config
        self.cp_gain_pm = c.get("cp_gain_pm")
        self.cp_offset_mv = c.get("cp_offset_mv")
        cal = getattr(self.hw.current, "_cal", None)
        if cal is not None:
            for i, v in enumerate(c.get("ct_cal_pm")):
                cal[i] = v

    def _restore_setpoints(self):
        """The last commanded current/enable/phases survive a reboot (mqtt.md §7)."""
        sp = self.store.setpoints()
        e = self.evse
        ma = sp.get("current_ma")
        if ma is not None:
            e.set_backend_limit_ma(ma)  # validates; a bad stored value changes nothing
        en = sp.get("enabled")
        if en is not None:
            e.set_enabled(en)
        ph = sp.get("phases")
        if ph is not None and self.config.get("phase_switch"):
            e.request_phases(ph)

    def limit_ma(self):
        """The backend limit as shown (status(), MQTT current_limit and json/status): the
        backend claim, at most the installation's maximum (no claim = that maximum)."""
        top = self.config.get("max_current_a") * 1000
        ma = self.evse.backend_ma
        return ma if ma < top else top

    def note_command(self):
        self.last_command_ms = time.ticks_ms()

    # --- control ------------------------------------------------------------------

    def tick(self, now):
        """One control tick: sample -> step -> outputs. No allocation, no waiting."""
        if self.hold:
            return  # the self-test drives and watches the outputs meanwhile
        hw = self.hw
        e = self.evse
        inp = e.inputs
        pilot = hw.pilot
        if pilot.sample():
            g = self.cp_gain_pm
            inp.cp_high_mv = pilot.high_mv * g // 1000 + self.cp_offset_mv
            inp.cp_low_mv = pilot.low_mv * g // 1000 + self.cp_offset_mv
        else:
            inp.cp_high_mv = 20000  # implausible: the classifier counts a reading error
            inp.cp_low_mv = 20000
        if hw.pp is not None:
            inp.pp_ohm = hw.pp.read_ohm()
        ct = hw.current
        if ct is not None:
            # Half-cycle peak, read by the tick itself: hard over-current within one
            # period of reaching the CT, not after the current task's next chunk.
            inp.peak_ma = ct.read_peak()
        cur = self._ct_ma
        if cur is not None:
            # CT readings (updated by the current task): the fast path for over-current.
            m = cur[0]
            if cur[1] > m:
                m = cur[1]
            if cur[2] > m:
                m = cur[2]
            inp.current_ma = m
        else:
            # from the meter, once a second; 0 until a poll after the contactor opened
            inp.current_ma = self.current_ma if self._meter_opened == self._opened else 0
        if hw.temp is not None:
            self.temp_dc = hw.temp.read_dc()  # a few ADC reads, table lookup: no allocation
        inp.temp_dc = self.temp_dc
        inp.contactor_fb = hw.contactor.feedback()
        if hw.lock is not None:
            inp.lock_fb = hw.lock.feedback()
        if hw.rcd is not None:
            inp.rcd_trip = hw.rcd.tripped()
        out = e.step(inp, now)
        # Contactor first: when anything below fails, the power is already off.
        hw.contactor.set(out.contactor)
        if self._closed_cmd and not out.contactor:
            self._opened += 1
        self._closed_cmd = out.contactor
        if out.phases != hw.contactor.phases and not out.contactor:
            hw.contactor.set_phases(out.phases)
        pilot.set(out.pilot, out.duty_pm)
        if hw.lock is not None:
            hw.lock.set(out.lock)
            hw.lock.update()
        if hw.rcd is not None:
            hw.rcd.set_test(out.rcd_test)
        # Edge detection for the sessions task (compares only; allocates nothing).
        if out.state is not self._prev_state:
            # Plug-ins and unplugs are counted, so a short visit between two looks of the
            # sessions task still opens and closes its session.
            was_a = self._prev_state == "A" or self._prev_state == ""
            now_a = out.state == "A"
            if was_a and not now_a:
                self.plugs += 1
            elif now_a and not was_a:
                self.unplugs += 1
            self._prev_state = out.state
            self.state_changes += 1
        if out.contactor != self._prev_contactor:
            self._prev_contactor = out.contactor
            self.contactor_changes += 1
            if out.contactor:
                self.closes += 1  # counted, so a close+open between two looks is not lost
            else:
                self.opens += 1
        if out.fault != self._prev_fault:
            self._prev_fault = out.fault
            self.fault_changes += 1

    def _loop_start(self):
        self._nxt = time.ticks_ms()
        self._last = self._nxt

    def _loop_once(self):
        """One pass of the control loop (either mode): tick, gap figures, pacing.
        Returns the ms to wait before the next pass. Allocates nothing."""
        st = self.stats
        if st.reset_req:
            st.do_reset()
        period = self.period_ms
        now = time.ticks_ms()
        gap = time.ticks_diff(now, self._last)
        self._last = now
        if gap > st.max_gap_ms:
            st.max_gap_ms = gap
        if gap > 2 * period:
            st.late += 1
        st.gap_hist[gap if gap < GAP_HIST_N - 1 else GAP_HIST_N - 1] += 1
        t0 = time.ticks_us()
        lk = self._tick_lock
        if lk is not None:
            lk.acquire()  # the sim's world: its other user holds it only briefly
        try:
            self.tick(now)
        finally:
            if lk is not None:
                lk.release()
        d = time.ticks_diff(time.ticks_us(), t0)
        if d > st.max_tick_us:
            st.max_tick_us = d
        st.ticks += 1
        self.last_tick_ms = now
        if self._early:
            self._early = False  # that was an extra tick: the period grid stays
        else:
            self._nxt = time.ticks_add(self._nxt, period)
        wait = time.ticks_diff(self._nxt, time.ticks_ms())
        if wait < 0:
            self._nxt = time.ticks_ms()  # late: do not try to catch up with a burst
            wait = 0
        if self.evse.cp.confirming and wait > _CONFIRM_MS:
            # A sample just left C/D: take the confirming sample now rather than a
            # period later, so the contactor opens ~1 period sooner.
            wait = _CONFIRM_MS
            self._early = True
        return wait

    async def control(self):
        """Single-loop mode: the control loop as an asyncio task (ports without _thread)."""
        self._loop_start()
        while True:
            await asyncio.sleep_ms(self._loop_once())

    def _control_thread(self):
        """Thread mode: the control loop owns this thread (RP2040: core 1). A failure
        makes the outputs safe first, is handed to the asyncio side to log (control_watch)
        and restarts the loop; after _MAX_CONTROL_FAILS in a row the thread ends with the
        outputs safe and the watchdog is no longer fed."""
        st = self.stats
        ct = self.hw.current
        fails = 0
        try:
            while not self.stopped:
                t0 = time.ticks_ms()
                try:
                    self._loop_start()
                    while not self.stopped:
                        wait = self._loop_once()
                        if ct is not None and wait >= _CT_CHUNK_WAIT_MS:
                            # The CT's RMS window is sampled here too, in the idle time
                            # between ticks (a <= 2 ms chunk): readings the tick uses never
                            # go stale while the asyncio side is held.
                            t1 = time.ticks_ms()
                            ct.update()
                            wait -= time.ticks_diff(time.ticks_ms(), t1)
                            if wait < 0:
                                wait = 0
                        time.sleep_ms(wait)
                except Exception as ex:  # noqa: whatever failed, power off first
                    self._safe_locked()
                    st.control_fails += 1
                    if time.ticks_diff(time.ticks_ms(), t0) >= _FAILS_RESET_MS:
                        fails = 0
                    fails += 1
                    self._thread_error = ex
                    if fails >= _MAX_CONTROL_FAILS:
                        break
                    time.sleep_ms(_CONTROL_RESTART_MS)
        finally:
            self._safe_locked()
            self._thread_running = False

    async def control_watch(self):
        """Thread mode, asyncio side: logs what the control thread reports (the store is
        the asyncio side's) and notes a control thread that gave up."""
        st = self.stats
        while True:
            ex = self._thread_error
            if ex is not None:
                self._thread_error = None
                st.task_errors += 1
                st.last_error = "control: %s" % repr(ex)
                print("control thread failed: %r" % ex)
                self.store.event("task_error", st.last_error[:70], 0)
            if not self._thread_running:
                if not self.stopped:
                    self.store.event("control_dead", "outputs safe", 0)
                return
            await asyncio.sleep_ms(50)

    def _thread_mode(self):
        return _thread is not None and self.config.get("control_thread")

    # --- metering, sessions, flush, watchdog ---------------------------------------------

    async def poll_meter(self):
        """One meter poll; energy since the last poll goes to the store. The lock keeps
        the metering and sessions tasks from talking to the meter at the same time."""
        m = self.hw.meter
        if m is None:
            return
        async with self._meter_lock:
            opened = self._opened
            if await m.poll():
                self.meter_error = None
                self._meter_opened = opened
                for i in range(3):
                    self.v_mv[i] = m.v_mv[i]
                    self.i_ma[i] = m.i_ma[i]
                self.power_w = m.p_w
                self.current_ma = max(m.i_ma)
                if self._meter_e_wh >= 0 and m.e_wh > self._meter_e_wh:
                    # Every Wh counts towards lifetime; the open session gets it too.
                    self.store.add_energy(m.e_wh - self._meter_e_wh, self.current_ma)
                self._meter_e_wh = m.e_wh
            else:
                if m.error != self.meter_error:
                    self.store.event("meter_error", str(m.error))
                self.meter_error = m.error

    async def metering(self):
        while True:
            await self.poll_meter()
            if self.config.version != self._cfg_version:
                self._cfg_version = self.config.version
                apply_config(self.evse.cfg, self.config, self.hw)
                self._apply_cal()
            # A collection at a moment of our choosing, once a second, keeps the small
            # heap of a board without PSRAM from fragmenting (MicroPython's GC does not
            # move objects) and keeps the GC from running inside a busier task instead.
            gc.collect()
            await asyncio.sleep_ms(1000)

    async def sessions(self):
        e = self.evse
        store = self.store
        while True:
            await asyncio.sleep_ms(50)
            n_state = self.state_changes
            n_cont = self.contactor_changes
            n_fault = self.fault_changes
            if (n_state == self._seen_state and n_cont == self._seen_contactor
                    and n_fault == self._seen_fault):
                continue
            out = e.outputs
            if n_fault != self._seen_fault:
                self._seen_fault = n_fault
                names = ",".join(E.fault_names(out.fault))
                store.event("fault" if out.fault else "fault_clear", names, 0)
                if self.link is not None:
                    self.link.on_event("fault" if out.fault else "fault_clear", names)
            if n_cont != self._seen_contactor:
                self._seen_contactor = n_cont
                if self.closes != self._seen_closes:
                    self._seen_closes = self.closes
                    store.event("charge_start", "%d mA" % out.allowed_ma)
                if self.opens != self._seen_opens:
                    self._seen_opens = self.opens
                    store.event("charge_stop", self.stop_reason())
            if n_state != self._seen_state:
                self._seen_state = n_state
                await self._plug_events(out.state)
                if self.link is not None:
                    self.link.on_state()

    async def _plug_events(self, s):
        """Open a session per plug-in and close it per unplug, in order."""
        store = self.store
        e = self.evse
        while self._seen_plugs < self.plugs or self._seen_unplugs < self.unplugs:
            if store.session_open() is None and self._seen_plugs < self.plugs:
                self._seen_plugs += 1
                store.session_start()
                if not e.outputs.contactor:
                    # Plug-in (contactor open): the open session is on flash at once, so
                    # a power cut in it leaves a power_loss record, however short it was.
                    store.flush()
                store.event("plug", s)
                if self.link is not None:
                    self.link.on_event("plug", s)
            elif store.session_open() is not None and self._seen_unplugs < self.unplugs:
                self._seen_unplugs += 1
                await self.poll_meter()  # the last second's energy belongs to it
                rec = store.session_stop(self.stop_reason(unplug=True))
                # Durable before reported: the record (and the state without the open
                # session) is on flash before any reader (API, MQTT, console) can see it
                # closed; no await between the two. Unplugged: the contactor is open.
                store.flush()
                store.event("unplug", rec["sid"] if rec else "")
                if self.link is not None:
                    self.link.on_event("unplug", "")
                    self.link.on_session(rec)
            else:
                # Counts and store disagree (e.g. an unplug with no session open):
                # the store is the truth; drop what cannot be matched.
                self._seen_plugs = self.plugs
                self._seen_unplugs = self.unplugs

    def stop_reason(self, unplug=False):
        out = self.evse.outputs
        r = out.stop_reason
        if r == E.REASON_FAULT:
            names = E.fault_names(self.evse.fault)
            return "fault:" + (names[0] if names else "cleared")
        if unplug and r == E.REASON_NONE:
            return "unplug"
        return r

    async def current(self):
        """CT sampling in small chunks (hal/current.py): 7 ms, not a multiple of 10 ms,
        so the samples walk across the mains cycle."""
        ct = self.hw.current
        if ct is None or self.threaded:
            return  # thread mode: the control thread samples the CT
        while True:
            ct.update()
            await asyncio.sleep_ms(7)

    async def flush(self):
        store = self.store
        while True:
            await asyncio.sleep_ms(200)
            if self.evse.outputs.contactor:
                # Flash writes block in C (DESIGN.md): while charging only energy
                # checkpoints, bounded to one record.
                if store.checkpoint_due():
                    store.flush(1)
            elif store.flush_due():
                store.flush(1)

    async def watchdog(self):
        wdt = self.hw.wdt
        if wdt is None:
            return
        limit = 5 * self.period_ms + 50
        while True:
            # Fed only while the control loop ticks on time: a stalled or dead control
            # loop lets the hardware watchdog reset the board.
            if time.ticks_diff(time.ticks_ms(), self.last_tick_ms) <= limit:
                wdt.feed()
            await asyncio.sleep_ms(100)

    # --- supervision ----------------------------------------------------------------

    def _safe(self):
        """Outputs safe, whatever state the drivers are in."""
        try:
            self.hw.safe()
        except Exception as ex:  # noqa: the contactor pin itself may be what failed
            print("safe() failed:", ex)
        self.evse.outputs.contactor = False

    def _safe_locked(self):
        lk = self._tick_lock
        if lk is not None:
            lk.acquire()
        try:
            self._safe()
        finally:
            if lk is not None:
                lk.release()

    async def _supervise(self, name, fn):
        st = self.stats
        fails = 0  # control failures in a row (a run of 60 s starts the count afresh)
        while not self.stopped:
            t0 = time.ticks_ms()
            try:
                await fn()
                # a task that ended (a one-shot, or nothing to do on this board) holds
                # nothing: its Task and frames go with its entry (~0.4 KB each)
                self.tasks.pop(name, None)
                return
            except asyncio.CancelledError:
                raise
            except Exception as ex:
                if name == "control":
                    self._safe()  # first: power off before anything else
                    st.control_fails += 1
                    if time.ticks_diff(time.ticks_ms(), t0) >= _FAILS_RESET_MS:
                        fails = 0
                    fails += 1
                st.task_errors += 1
                st.last_error = "%s: %s" % (name, repr(ex))
                print("task %s failed: %r" % (name, ex))
                sys.print_exception(ex)
                self.store.event("task_error", st.last_error[:70], 0)
                if name == "control" and fails >= _MAX_CONTROL_FAILS:
                    # Give up: outputs stay safe, the watchdog is no longer fed.
                    self.store.event("control_dead", "outputs safe", 0)
                    return
                await asyncio.sleep_ms(_CONTROL_RESTART_MS if name == "control" else _RESTART_MS)

    def start(self, extra=()):
        """Start the control loop (its own thread where possible) and create every task;
        extra = ((name, coroutine function), ...)."""
        control = self.control
        if self._thread_mode():
            self.threaded = True
            self.stats.threaded = True
            self.evse.deferred = True  # reset_faults is applied by the control side
            self._thread_running = True
            _thread.start_new_thread(self._control_thread, ())
            control = self.control_watch
        for name, fn in (("control", control), ("metering", self.metering),
                         ("sessions", self.sessions), ("flush", self.flush),
                         ("current", self.current),
                         ("watchdog", self.watchdog)) + tuple(extra):
            self.tasks[name] = asyncio.create_task(self._supervise(name, fn))

    async def run(self, extra=()):
        self.start(extra)
        try:
            while not self.stopped:
                await asyncio.sleep_ms(500)
        finally:
            self.stop_control()

    def stop_control(self):
        """Stop the control loop (the thread ends within a period), then outputs safe."""
        self.stopped = True
        if self.threaded:
            t0 = time.ticks_ms()
            while self._thread_running and time.ticks_diff(time.ticks_ms(), t0) < _STOP_WAIT_MS:
                time.sleep_ms(2)
        self._safe()

    # --- reporting (allocates: never from the control tick) -------------------------------

    def status(self):
        e = self.evse
        o = e.outputs
        hw = self.hw
        rcd = "none"
        if hw.rcd is not None:
            rcd = "tripped" if hw.rcd.tripped() else "ok"
        st = {
            "state": o.state, "enabled": e.enabled, "authorized": e.authorized,
            "allowed_a": o.allowed_ma / 1000, "limit_a": self.limit_ma() / 1000,
            "duty_pm": o.duty_pm, "contactor": o.contactor, "phases": o.phases,
            "faults": E.fault_names(o.fault), "current_a": [x / 1000 for x in self.i_ma],
            "voltage_v": [x / 1000 for x in self.v_mv], "power_w": self.power_w,
            "energy_wh": self.store.energy_wh, "temp_c": (self.temp_dc / 10) if self.temp_dc != E.TEMP_NONE else None,
            "rcd": rcd, "meter_error": self.meter_error,
            "uptime_s": self.store.uptime_s(),  # wrap-safe (a ticks_diff turns negative after 6.2 days)
            "fw": VERSION, "ticks": self.stats.ticks, "max_gap_ms": self.stats.max_gap_ms,
            "control": "thread" if self.threaded else "loop",
            "link": self.link.status() if self.link is not None else "off",
            "mem_free": gc.mem_free(),
        }
        for name, f in self.features.items():  # optional features (firmware/startup.py FEATURES)
            st[name] = f.status()
        return st
