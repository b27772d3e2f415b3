# Device-side test helper (unix port): a house with other loads and PV per phase, a mains
# meter that reads every second (and can fall silent), an EV behind a contactor that follows
# the offer after its delay, and firmware.core.loadmgmt in between. An independent oracle
# checks on every 100 ms step:
#   fuse     the modelled house current per phase exceeds the fuse (+ the meter noise: a
#            reading may be that far off), with the wallbox drawing,
#            no longer than REACT_MS + the EV's follow time + one reading period
#   feed     a silent feed gives the safe current within timeout + one step
#   switch   the phase count never changes with the contactor closed, at most one switch
#            per switch_min_ms
#   rate     (noisy surplus, no fuse pressure) two offer changes between running currents
#            are at least 5 s apart
# The clock is a ticks value (ticks_add/ticks_diff: on the 32-bit VM it wraps every 2**30 ms,
# as on the chip), so a House can start anywhere and run for days; run(ms, step) takes longer
# steps for quiet days. The oracle forgets what it remembers once older than _OLD_MS (a
# ticks_diff is only right below 2**29 ms).
from time import ticks_add, ticks_diff

from firmware.core import loadmgmt as L
from firmware.core.consts import CLAIM_NONE_MA

STEP_MS = 100
REACT_MS = 2000  # issue 14: mains overload -> lower offer within 2 s
READ_MS = 1000
CLOSE_MS = 1000  # the EVSE closes 1 s after an offer >= 6 A (C stable, RCD, ...)
OPEN_MS = 6000  # the EVSE opens at the latest 6 s after the offer went < 6 A (x1)
_OLD_MS = 1 << 28  # ~3.1 days: longer than any wait the oracle checks


def make_cfg(d):
    c = L.LmConfig()
    for k in d:
        setattr(c, k, d[k])
    return c


class House:
    def __init__(self, cfg, now=0):
        self.lm = L.LoadManager(cfg)
        self.cfg = cfg
        self.now = now
        self.other = [0, 0, 0]  # other loads per phase (mA)
        self.pv = [0, 0, 0]  # PV generation per phase (mA)
        self.noise = 0  # +- on every reading
        self.silent = False  # the meter does not answer
        self.connected = True
        self.want_ma = 16000
        self.ev_delay = 1000  # the EV follows a change within this (<= 5 s, ref §2)
        self.contactor = False
        self.phases = cfg.phases_max
        self.draw = 0  # per phase, on self.phases phases
        self._target = 0
        self._target_at = 0
        self._offer_low_at = None
        self._offer_ok_at = None
        self._read_at = now
        self._rng = 1
        self.steps = 0
        self.errors = []
        self.closed_steps = 0
        # oracle state
        self._over_since = [None, None, None]
        self._last_good = None
        self._switch_at = None
        self._last_phases_out = 0
        self._last_change = None
        self._prev_offer = self.lm.offer_ma
        self.check_rate = False
        self._step = STEP_MS

    def _rand(self, n):
        self._rng = (self._rng * 1103515245 + 12345) & 0x3FFFFFFF
        return self._rng % (2 * n + 1) - n if n else 0

    def house(self, p):
        d = self.draw if p < self.phases else 0
        return self.other[p] - self.pv[p] + d

    def err(self, msg):
        if len(self.errors) < 5:
            self.errors.append("t=%d %s" % (self.now, msg))

    def _ev(self):
        """EVSE + EV: close CLOSE_MS after an offer >= 6 A, open OPEN_MS after one < 6 A
        (or once the EV stopped drawing); the draw follows the offer after ev_delay."""
        lm = self.lm
        offer = lm.offer_ma
        now = self.now
        if offer >= 6000 and self.connected:
            self._offer_low_at = None
            if self._offer_ok_at is None:
                self._offer_ok_at = now
            if not self.contactor and ticks_diff(now, self._offer_ok_at) >= CLOSE_MS:
                self.contactor = True
        else:
            self._offer_ok_at = None
            if self._offer_low_at is None:
                self._offer_low_at = now
            if self.contactor and (not self.connected or self.draw == 0 or
                                   ticks_diff(now, self._offer_low_at) >= OPEN_MS):
                self.contactor = False
        # the phase contactor follows lm.phases only with the main contactor open
        if lm.phases and lm.phases != self.phases and not self.contactor:
            self.phases = lm.phases
        tgt = 0
        if self.contactor:
            tgt = self.want_ma
            cap = offer if offer >= 6000 else 0
            if cap < tgt:
                tgt = cap
        if tgt != self._target:
            # the EV has ev_delay from a change to follow it; a second lower offer while
            # it still follows the first does not give it more time (ref §2: 5 s)
            settled = self.draw == self._target
            if settled or self.draw == 0 or tgt > self._target:
                self._target_at = now
            self._target = tgt
        if not self.contactor:
            self.draw = 0
        elif ticks_diff(now, self._target_at) >= self.ev_delay:
            self.draw = self._target

    def _io(self):
        lm = self.lm
        n = self.phases
        for p in range(3):
            lm.own_ma[p] = self.draw if p < n else 0
        lm.charging = self.contactor
        lm.connected = self.connected
        lm.phases_now = n
        if ticks_diff(self.now, self._read_at) >= READ_MS:
            self._read_at = self.now
            if not self.silent:
                m = [self.house(p) + self._rand(self.noise) for p in range(3)]
                lm.feed(m[0], m[1], m[2], self.now)
                self._last_good = self.now

    def _oracle(self):
        lm = self.lm
        cfg = self.cfg
        now = self.now
        bound = REACT_MS + self.ev_delay + READ_MS + self._step
        if self._last_good is not None and ticks_diff(now, self._last_good) > _OLD_MS:
            self._last_good = None  # (None: no reading for ages)
        if self._switch_at is not None and ticks_diff(now, self._switch_at) > _OLD_MS:
            self._switch_at = None
        if self._last_change is not None and ticks_diff(now, self._last_change) > _OLD_MS:
            self._last_change = None
        for p in range(3):
            if self.house(p) > cfg.fuse_ma + self.noise and self.draw > 0 and p < self.phases \
                    and not self.silent and lm.feed_ok:
                if self._over_since[p] is None:
                    self._over_since[p] = now
                elif ticks_diff(now, self._over_since[p]) > bound:
                    self.err("fuse: L%d %d mA > %d for %d ms (draw %d, offer %d)" % (
                        p + 1, self.house(p), cfg.fuse_ma, ticks_diff(now, self._over_since[p]),
                        self.draw, lm.offer_ma))
                    self._over_since[p] = now
            else:
                self._over_since[p] = None
        if cfg.mode != L.MODE_OFF:
            age = _OLD_MS if self._last_good is None else ticks_diff(now, self._last_good)
            if age > cfg.timeout_ms + self._step + READ_MS:
                safe = cfg.safe_ma
                if lm.offer_ma > safe or lm.reason != L.R_FEED_LOST:
                    self.err("feed: silent %d ms, offer %d reason %d" % (age, lm.offer_ma, lm.reason))
        if lm.phases and lm.phases != self._last_phases_out:
            if self._last_phases_out and self.contactor:
                self.err("switch: phases %d -> %d with the contactor closed" % (
                    self._last_phases_out, lm.phases))
            if self._switch_at is not None and ticks_diff(now, self._switch_at) < cfg.switch_min_ms:
                self.err("switch: two switches %d ms apart" % ticks_diff(now, self._switch_at))
            if self._last_phases_out:
                self._switch_at = now
            self._last_phases_out = lm.phases
        o = lm.offer_ma
        if o != self._prev_offer:
            running = o >= 6000 and self._prev_offer >= 6000 and o != CLAIM_NONE_MA \
                and self._prev_offer != CLAIM_NONE_MA
            if self.check_rate and running and self._last_change is not None and \
                    ticks_diff(now, self._last_change) < 5000:
                self.err("rate: offer %d -> %d %d ms after the last change" % (
                    self._prev_offer, o, ticks_diff(now, self._last_change)))
            if running or self._last_change is None:
                self._last_change = now
            self._prev_offer = o

    def run(self, ms, step=STEP_MS):
        """`ms` of house time in steps of `step` (a longer one for quiet days: a reading
        each step then, and the oracle's bounds grow by it)."""
        self._step = step
        for _ in range((ms + step - 1) // step):
            self.now = ticks_add(self.now, step)
            self._ev()
            self._io()
            self.lm.step(self.now)
            self._oracle()
            self.steps += 1
            if self.contactor:
                self.closed_steps += 1


def run_actions(actions, cfg, check_rate=False):
    h = House(make_cfg(cfg))
    h.check_rate = check_rate
    offers = 0
    for a in actions:
        k, v = a[0], a[1]
        if k == "wait":
            h.run(v)
        elif k == "other":
            h.other[v[0]] = v[1]
        elif k == "pv":
            for p in range(3):
                h.pv[p] = v
        elif k == "noise":
            h.noise = v
        elif k == "silent":
            h.silent = v
        elif k == "plug":
            h.connected = v
        elif k == "want":
            h.want_ma = v
        elif k == "delay":
            h.ev_delay = v
        offers = h.lm.offer_changes
    return {"steps": h.steps, "errors": h.errors, "n_errors": len(h.errors),
            "closed_steps": h.closed_steps, "offer_changes": offers,
            "cycles": h.lm.cycles, "switches": h.lm.switches}
