# Load management service: the mains feed (a Modbus SDM630/SDM72 at its own address on the
# RS-485 bus, an MQTT topic, or none), the policy (firmware/core/loadmgmt.py) and §14a
# dimming, applied as claims on the offered current (CLAIM_LOAD, CLAIM_DIM). Two tasks:
#   mains      reads the Modbus meter every mains_poll_ms (awaits only: never blocks)
#   loadmgmt   every 500 ms: the wallbox's own currents in, policy step, claims out,
#              events on change ("limited by: house fuse 25 A", mains_lost / mains_ok)
# A reading that is implausible (NaN, beyond 2x the fuse, stale) counts as missing, never as
# zero load: after mains_timeout_s without a good one the policy gives the safe current.
# Started by firmware/links/lm_link.py (the FEATURES entry, which adds the MQTT side).
import asyncio
import struct
import time
from micropython import const

from firmware.core import loadmgmt as L
from firmware.core.consts import CLAIM_LOAD, CLAIM_DIM, CLAIM_NONE_MA

_STEP_MS = const(500)  # policy period (reaction: a reading is applied at once, see _reading)
_REG_I = const(0x0006)  # SDM630/SDM72 input registers: I L1..L3 at 0x06/08/0A (A, float32),
_N_REGS = const(12)  # P L1..L3 at 0x0C/0E/10 (W, signed): the sign of the phase's current
_REASON_LOG_MS = const(10000)
_WEAR = "lm_wear"  # store record: [phase switches, contactor closes] since commissioning
_HOLD_LAZY_MS = const(60000)  # lm_limit events at most this often
_MAX_MAINS_A = const(400)  # MQTT payload bound before the 2x-fuse plausibility check

def lm_config(cfg, lc=None):
    """LmConfig (integer units) from the validated Config."""
    lc = lc or L.LmConfig()
    lc.mode = L.MODE_NAMES.index(cfg.get("lm_mode"))
    lc.fuse_ma = cfg.get("mains_max_a") * 1000
    lc.import_ma = cfg.get("pv_import_a") * 1000
    lc.start_ms = cfg.get("pv_start_s") * 1000
    lc.stop_ms = cfg.get("pv_stop_s") * 1000
    lc.min_charge_ms = cfg.get("pv_min_charge_s") * 1000
    lc.min_pause_ms = cfg.get("lm_min_pause_s") * 1000
    lc.attack_pm = cfg.get("pv_attack_pm")
    lc.decay_pm = cfg.get("pv_decay_pm")
    lc.timeout_ms = cfg.get("mains_timeout_s") * 1000
    lc.safe_ma = cfg.get("lm_safe_a") * 1000
    lc.phase_switch = cfg.get("phase_auto") and cfg.get("phase_switch")
    lc.phases_max = cfg.get("phases")
    lc.switch_min_ms = cfg.get("phase_switch_min_s") * 1000
    return lc


def parse_mains(text):
    """MQTT set/mains payload -> ((i1, i2, i3) mA, None) or (None, error). Accepted:
    "12.5,3,-4.2" (A, import positive), [12.5, 3, -4.2] or {"currents": [...], "ts": s},
    as text or as the value of a {"value": ...} payload. Read strictly, as every other
    input (firmware/links/commands.py): invalid JSON and numbers such as "+5", "0x10" or
    "1_0" are errors."""
    from firmware.links.commands import json_strict, number
    ts = None
    v = text
    if type(v) is str:
        t = v.strip()
        if t[:1] == "[" or t[:1] == "{":
            v, err = json_strict(t)
            if err:
                return None, "mains: not valid JSON: " + err
        else:
            v = t.split(",")
    if type(v) is dict:
        ts = v.get("ts")
        v = v.get("currents")
        if ts is not None and type(ts) is not int:
            return None, "mains: ts must be whole seconds (epoch)"
    if type(v) is not list:
        return None, "mains: expected three currents in A, e.g. 12.5,3,-4.2"
    if len(v) != 3:
        return None, "mains: expected three currents in A (L1,L2,L3), got %d" % len(v)
    out = []
    for p in v:
        a = number(p.strip()) if type(p) is str else p
        if type(a) is not int and type(a) is not float:  # bool, None, text that is no number
            return None, "mains: %r is not a number" % (p,)
        if a != a or a > _MAX_MAINS_A or a < -_MAX_MAINS_A:
            return None, "mains: %r out of range -%d..%d A" % (p, _MAX_MAINS_A, _MAX_MAINS_A)
        out.append(int(a * 1000))
    return (out, ts), None


def decode_sdm(d):
    """12 registers from 0x0006 (I1-3, P1-3 as float32) -> [i1, i2, i3] signed mA, or None
    when a value is NaN/inf (the current takes the sign of its phase power)."""
    out = [0, 0, 0]
    for k in range(3):
        i = struct.unpack_from(">f", d, 4 * k)[0]
        p = struct.unpack_from(">f", d, 12 + 4 * k)[0]
        if i != i or p != p or i > 1.0e6 or i < -1.0e6 or p > 1.0e9 or p < -1.0e9:
            return None
        ma = int(abs(i) * 1000)
        out[k] = -ma if p < 0 else ma
    return out


class Mains:
    def __init__(self, rt):
        self.rt = rt
        cfg = rt.config
        self.lm = L.LoadManager(lm_config(cfg))
        self._cfg_version = cfg.version
        self.source = cfg.get("mains_source")
        self.i_ma = [0, 0, 0]  # last plausible reading (signed mA)
        self.error = None  # why the last reading did not count
        self.reads = 0
        self.bad = 0
        self.dim = False  # §14a dimming active
        self.dim_source = cfg.get("dim_source")
        self.group = None  # firmware/links/group.py Group, when group_id is set
        self._last_reason = -1
        self._last_feed_ok = None
        self._last_dim = False
        self._started_ms = time.ticks_ms()
        self._reason_ms = 0
        # contactor wear across sessions: automatic phase switches and load-management
        # pauses, in the store (written lazily, by the flush task, never while charging)
        w = rt.store.get(_WEAR)
        self.wear = [w[0], w[1]] if type(w) is list and len(w) == 2 else [0, 0]
        self._seen_switches = 0
        self._seen_cycles = 0
        e = rt.evse
        e.set_claim_ma(CLAIM_LOAD, CLAIM_NONE_MA)
        e.set_claim_ma(CLAIM_DIM, CLAIM_NONE_MA)

    # --- readings ---------------------------------------------------------------------

    def _own(self):
        """The wallbox's own phase currents (CT if fitted, else the meter)."""
        rt = self.rt
        cur = rt.hw.current
        src = cur.ma if cur is not None else rt.i_ma
        o = self.lm.own_ma
        o[0] = src[0]
        o[1] = src[1]
        o[2] = src[2]

    def reading(self, i_ma, now=None, ts=None):
        """A mains reading (signed mA per phase). Implausible -> counted as missing:
        returns the error (and the feed ages towards the timeout), else None."""
        now = time.ticks_ms() if now is None else now
        fuse = self.lm.cfg.fuse_ma
        err = None
        for v in i_ma:
            if v > 2 * fuse or v < -2 * fuse:
                err = "mains: %d mA beyond 2x the fuse (%d A)" % (v, fuse // 1000)
        if ts is not None:
            t = self.rt.store._epoch()
            age = t - ts
            if t > 1600000000 and (age * 1000 > self.lm.cfg.timeout_ms or age < -60):
                err = "mains: reading is stale (ts %d, %d s old)" % (ts, age)
        if err:
            self.bad += 1
            self.error = err
            return err
        self.reads += 1
        self.error = None
        self._own()
        for k in range(3):
            self.i_ma[k] = i_ma[k]
        self.lm.feed(i_ma[0], i_ma[1], i_ma[2], now)
        self.apply(now)  # react at once (issue 14: overload -> lower offer within 2 s)
        return None

    def missing(self, why):
        self.bad += 1
        self.error = why

    async def poll_modbus(self):
        """Mains meter on the RS-485 bus: one read of I1-3/P1-3 every mains_poll_ms; the
        bus is shared with the EV meter, so the runtime's meter lock is held per read."""
        rt = self.rt
        bus = getattr(rt.hw, "modbus", None)
        if bus is None:
            self.missing("mains: no RS-485 bus on this board")
            rt.store.event("mains_error", "no RS-485 bus", 0)
            return
        lock = rt._meter_lock
        while True:
            t0 = time.ticks_ms()
            addr = rt.config.get("mains_addr")
            async with lock:
                d = await bus.read_input(addr, _REG_I, _N_REGS)
                vals = decode_sdm(d) if d is not None else None
                err = bus.error if d is None else None
            if vals is None:
                self.missing("mains: " + (err or "meter_range"))
            else:
                self.reading(vals)
            wait = rt.config.get("mains_poll_ms") - time.ticks_diff(time.ticks_ms(), t0)
            await asyncio.sleep_ms(wait if wait > 50 else 50)

    # --- policy -> claims -----------------------------------------------------------------

    def set_dim(self, on):
        if on is not True and on is not False:
            return "dim must be true or false"
        self.dim = on
        return None

    def apply(self, now):
        rt = self.rt
        e = rt.evse
        o = e.outputs
        lm = self.lm
        if rt.config.version != self._cfg_version:
            self._cfg_version = rt.config.version
            mode = lm.cfg.mode
            lm_config(rt.config, lm.cfg)
            if lm.cfg.mode != mode:
                lm.reset(now)
        lm.charging = o.contactor
        lm.connected = o.state != "A"
        lm.phases_now = o.phases
        if not lm.charging:
            self._own()
        lm.step(now)
        e.set_claim_ma(CLAIM_LOAD, lm.offer_ma)
        if lm.phases and lm.phases != o.phases and not o.contactor:
            err = e.request_phases(lm.phases)
            if err:
                lm.refuse_phases()
                rt.store.event("phase_refused", err[:60])
        self._apply_dim()
        self._report()
        self._count_wear()

    def _count_wear(self):
        lm = self.lm
        if lm.switches != self._seen_switches or lm.cycles > self._seen_cycles:
            self.wear[0] += lm.switches - self._seen_switches
            if lm.cycles > self._seen_cycles:
                self.wear[1] += lm.cycles - self._seen_cycles
            self._seen_switches = lm.switches
            self.rt.store.put(_WEAR, list(self.wear), _HOLD_LAZY_MS)
        self._seen_cycles = lm.cycles  # (reset to 0 with each new session)

    def _apply_dim(self):
        rt = self.rt
        src = self.dim_source
        if src == "input":
            pin = getattr(rt.hw, "dim_input", None)
            self.dim = bool(pin is not None and pin.value())
        ma = CLAIM_NONE_MA
        if self.dim:
            ph = rt.evse.outputs.phases
            ma = L.dim_ma(rt.config.get("dim_power_w"), rt.config.get("mains_v") * 1000, ph)
            if ma > CLAIM_NONE_MA:
                ma = CLAIM_NONE_MA
        rt.evse.set_claim_ma(CLAIM_DIM, ma)

    def _report(self):
        """Events on change (the log shows what limits the wallbox and why)."""
        lm = self.lm
        st = self.rt.store
        ok = lm.feed_ok
        if ok != self._last_feed_ok:
            # lost: after having data, or never had any within the timeout since start
            lost = not ok and (self._last_feed_ok is True or time.ticks_diff(
                time.ticks_ms(), self._started_ms) > lm.cfg.timeout_ms)
            if ok:
                st.event("mains_ok", "")
                self._last_feed_ok = ok
            elif lost:
                st.event("mains_lost", ("safe %d A%s" % (lm.cfg.safe_ma // 1000, (
                    " (" + self.error + ")") if self.error else ""))[:60], 0)
                self._notify("mains_lost")
                self._last_feed_ok = ok
        now = time.ticks_ms()
        # d < 0: the last event is over 2**29 ms old (ticks wrap every 2**30 ms): long ago
        d = time.ticks_diff(now, self._reason_ms)
        if lm.reason != self._last_reason and (self._last_reason < 0 or d < 0 or
                                               d >= _REASON_LOG_MS):
            self._last_reason = lm.reason  # (a flapping reason: one event per 10 s at most)
            self._reason_ms = now
            st.event("lm_limit", ("limited by: " + L.reason_text(lm))[:60])
        if self.dim != self._last_dim:
            self._last_dim = self.dim
            st.event("dim", "on" if self.dim else "off")

    def _notify(self, kind):
        link = self.rt.link
        if link is not None:
            link.on_event(kind, "")

    # --- reporting (allocates: status, MQTT) ---------------------------------------------

    def limit_text(self):
        """'house fuse 25 A' when load management binds, else what does."""
        e = self.rt.evse
        if e.limited_by == CLAIM_LOAD:
            return L.reason_text(self.lm)
        if e.limited_by == CLAIM_DIM:
            return "grid dimming %d W" % self.rt.config.get("dim_power_w")
        return e.limit_name()

    def status(self):
        lm = self.lm
        return {
            "mode": L.MODE_NAMES[lm.cfg.mode], "source": self.source,
            "mains_a": [x / 1000 for x in self.i_ma], "feed_ok": lm.feed_ok,
            "error": self.error, "offer_a": lm.offer_ma / 1000,
            "reason": L.reason_text(lm), "limited_by": self.limit_text(),
            "surplus_a": lm.surplus_ma / 1000, "fuse_free_a": lm.fuse_avail_ma / 1000,
            "phases_wanted": lm.phases, "cycles": lm.cycles, "switches": lm.switches,
            "offer_changes": lm.offer_changes, "dim": self.dim,
            "switches_total": self.wear[0], "cycles_total": self.wear[1],
            "reads": self.reads, "bad": self.bad,
            "group": self.group.status() if self.group is not None else None,
        }

    def line(self):
        """One console line for status()."""
        lm = self.lm
        i = self.i_ma
        return "load mgmt %s: mains %.1f/%.1f/%.1f A%s, offer %s, limited by: %s%s" % (
            L.MODE_NAMES[lm.cfg.mode], i[0] / 1000, i[1] / 1000, i[2] / 1000,
            "" if lm.feed_ok else " (feed lost)",
            "none" if lm.offer_ma >= CLAIM_NONE_MA else "%d A" % (lm.offer_ma // 1000),
            self.limit_text(), ", DIMMED" if self.dim else "")

    async def run(self):
        while True:
            self.apply(time.ticks_ms())
            await asyncio.sleep_ms(_STEP_MS)
