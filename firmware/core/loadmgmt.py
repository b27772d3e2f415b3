# Load management policy: house fuse, solar surplus, 1p/3p choice. Pure like evse.step:
# no I/O, no clock reads, integer mA/ms, nothing allocated per step. The service
# (firmware/services/mains.py) feeds it mains readings and the wallbox's own currents,
# steps it about twice a second and turns `offer_ma` into evse.set_claim_ma(CLAIM_LOAD, ..)
# and `phases` into evse.request_phases(..). Figures: ../shared/reference/peers.md §5.1
# (SmartEVSE MAINS/MIN/START/STOP/IMPORT, 11 s feed timeout; OpenEVSE attack/decay and a
# 600 s minimum charge time) and iec61851.md §2 (6 A minimum, the EV has 5 s to follow).
#
# Signs: mains currents are signed per phase, import positive, export negative (SDM630:
# magnitude with the sign of the phase power). "Other load" on a phase is mains minus what
# the wallbox itself draws there; the wallbox may take fuse - other on every phase it uses.
from micropython import const
from time import ticks_add, ticks_diff

from firmware.core.consts import CLAIM_NONE_MA

MODE_OFF = const(0)
MODE_NORMAL = const(1)  # house fuse only
MODE_PV = const(2)  # solar surplus only (plus import_ma)
MODE_MINPV = const(3)  # 6 A always, surplus on top
MODE_NAMES = ("off", "normal", "pv", "minpv")

# Why the offer is what it is (REASON_NAMES; status, MQTT and the log show them).
R_NONE = const(0)  # no limit from load management
R_FUSE = const(1)  # house fuse: the wallbox gets what is left on the worst phase
R_FUSE_PAUSE = const(2)  # not even 6 A fit under the fuse: paused
R_SURPLUS = const(3)  # solar surplus sets the current
R_NO_SURPLUS = const(4)  # too little surplus: paused (or waiting for start_s)
R_MIN_PAUSE = const(5)  # paused, waiting out the minimum pause
R_SWITCH = const(6)  # paused to switch between 1 and 3 phases
R_FEED_LOST = const(7)  # no valid mains reading within the timeout: safe current
R_GROUP = const(8)  # load-sharing group share
R_MIN_CURRENT = const(9)  # minpv: the 6 A floor
REASON_NAMES = ("none", "house fuse", "house fuse: paused", "solar surplus", "no solar surplus",
                "minimum pause", "phase switch", "mains feed lost", "group share",
                "minimum current")

MIN_MA = const(6000)  # iec61851.md §2: below 6 A no current may be offered
_RAISE_MS = const(5000)  # an offer goes up at most this often (down: at once)
_STEP_MA = const(1000)  # and only by whole amps of change (fewer offer changes)
_PV_HOLD_MS = const(5000)  # surplus-driven changes at most this often
_P3_HYST_MA = const(1500)  # 1p -> 3p needs 3 x 6 A plus this much
_OLD_MS = const(1 << 28)  # ~3.1 days: longer than any wait here (config: at most 7200 s)


def _recent(t, now):
    """`t`, or `now - _OLD_MS` if t is older (or ahead: wrapped). ticks_ms wraps every 2**30
    ms on the chip and ticks_diff is only right below 2**29 ms (~6.2 days): a timestamp not
    looked at for that long (an offer held, a pause, for a week) reads as 'just now'. Brought
    forward every step, it stays 'long ago' and every wait on it (< _OLD_MS) stays over."""
    d = ticks_diff(now, t)
    return t if 0 <= d <= _OLD_MS else ticks_add(now, -_OLD_MS)


class LmConfig:
    """What the policy needs from the configuration, in integer units."""

    def __init__(self):
        self.mode = MODE_OFF
        self.fuse_ma = 25000  # mains_max_a per phase (SmartEVSE MAINS 10..200 A)
        self.import_ma = 0  # grid import allowed in the solar modes (sum of phases)
        self.start_ms = 60000  # surplus >= 6 A x phases for this long: start
        self.stop_ms = 300000  # below for this long: stop (SmartEVSE STOP timer)
        self.min_charge_ms = 600000  # OpenEVSE: 600 s minimum charge time before a solar stop
        self.min_pause_ms = 60000  # a pause by load management lasts at least this
        self.attack_pm = 50  # smoothing of a rising surplus per reading (slow up)
        self.decay_pm = 400  # and of a falling one (fast down)
        self.timeout_ms = 11000  # SmartEVSE: mains data older than 11 s counts as lost
        self.safe_ma = MIN_MA  # offer while the feed is lost: 6 A or 0 (pause)
        self.phase_switch = False  # automatic 1p/3p in the solar modes (2nd contactor fitted)
        self.phases_max = 3  # phases wired to the wallbox
        self.switch_min_ms = 300000  # at most one phase switch per this interval


class LoadManager:
    def __init__(self, cfg=None):
        self.cfg = cfg or LmConfig()
        # inputs (the service writes them before step)
        self.mains_ma = [0, 0, 0]
        self.own_ma = [0, 0, 0]  # the wallbox's own phase currents now (CT or meter)
        self._own_fed = [0, 0, 0]  # ... as they were when the mains reading was taken
        self.charging = False  # the contactor is closed
        self.connected = False  # an EV is plugged in (state != A)
        self.phases_now = self.cfg.phases_max  # phases the wallbox switches today
        self.group_ma = CLAIM_NONE_MA  # load-sharing group share (links/group.py)
        # outputs
        self.offer_ma = CLAIM_NONE_MA  # the claim: 0 (pause), 6000.., or CLAIM_NONE_MA
        self.phases = 0  # phases wanted (0: no wish)
        self.reason = R_NONE
        self.fuse_avail_ma = 0  # what fits under the fuse on the worst phase (per phase)
        self.surplus_ma = 0  # smoothed surplus for the wallbox (sum of phases)
        self.feed_ok = False
        # counters (status, bench)
        self.cycles = 0  # contactor closes this session
        self.offer_changes = 0
        self.switches = 0
        self.feed_losses = 0
        self._fed = False
        self._fresh = False
        self._mains_at = 0
        self._raw_surplus = 0
        self._smooth_init = False
        self._was_charging = False
        self._charge_since = 0
        self._paused = self.cfg.mode == MODE_PV
        self._pause_since = 0
        self._timing = False  # start/stop/switch condition timer running
        self._timer_since = 0
        self._changed_at = 0
        self._changed_once = False
        self._switched_at = 0
        self._switched_once = False
        self._want_phases = 0
        self._target = 0  # phases asked for (0: none); phases_now follows once switched
        self._no_switch = False  # the wallbox refused a switch: none more this session

    def feed(self, i1, i2, i3, now):
        """A plausible mains reading (mA per phase, signed) taken at `now`; own_ma must
        hold the wallbox's currents of the same moment (other load = mains - own)."""
        m = self.mains_ma
        m[0] = i1
        m[1] = i2
        m[2] = i3
        o = self.own_ma
        f = self._own_fed
        f[0] = o[0]
        f[1] = o[1]
        f[2] = o[2]
        self._mains_at = now
        self._fed = True
        self._fresh = True

    def reset(self, now):
        """New configuration or mode: start from a clean pause state."""
        self._paused = self.cfg.mode == MODE_PV
        self._pause_since = now
        self._timing = False
        self._smooth_init = False

    # --- the step ---------------------------------------------------------------------

    def step(self, now):
        cfg = self.cfg
        self._session(now)
        self._changed_at = _recent(self._changed_at, now)  # unread while the offer holds
        self._pause_since = _recent(self._pause_since, now)  # unread while paused without sun
        self._switched_at = _recent(self._switched_at, now)  # unread while the phases stay
        self._charge_since = _recent(self._charge_since, now)  # unread while charging on
        self._timer_since = _recent(self._timer_since, now)  # unread in a fuse/group pause
        # The feed ages in every mode: left unread through a week of mode off, a reading looked
        # fresh again (ticks_diff < 0 past 2**29 ms: the tick period is 2**30). No reading is
        # stamped after the step that sees it, so a negative age is stale as well.
        if self._fed:
            d = ticks_diff(now, self._mains_at)
            if d < 0 or d > cfg.timeout_ms:
                self.feed_losses += 1  # counted once per loss
                self._fed = False
                self._fresh = False
        if cfg.mode == MODE_OFF:  # no policy; a load-sharing group's share still binds
            g = self.group_ma
            if g < CLAIM_NONE_MA:
                self._set(g if g >= MIN_MA else 0, R_GROUP, now, False)
            else:
                self._set(CLAIM_NONE_MA, R_NONE, now, True)
            self.phases = 0
            return self
        self.feed_ok = self._fed
        if not self.feed_ok:
            self._paused = cfg.mode == MODE_PV
            self._pause_since = now
            self._timing = False
            safe = cfg.safe_ma
            if self.group_ma < safe:
                safe = self.group_ma if self.group_ma >= MIN_MA else 0
            self._set(safe, R_FEED_LOST, now, True)
            return self
        fuse = self._fuse_avail()
        if self._fresh:
            self._smooth()
            self._fresh = False
        if cfg.mode == MODE_NORMAL:
            self._normal(fuse, now)
        else:
            self._solar(fuse, now)
        return self

    def _session(self, now):
        """Contactor cycles per session (a close is a cycle); the session ends in A."""
        if not self.connected:
            self.cycles = 0
            self._no_switch = False
        if self.charging and not self._was_charging:
            self.cycles += 1
            self._charge_since = now
        self._was_charging = self.charging

    def _cap(self):
        """The most the wallbox could take: the fuse headroom capped by the group share."""
        g = self.group_ma
        f = self.fuse_avail_ma
        return g if g < f else f

    def _fuse_avail(self):
        """Per-phase current left under the fuse on the worst phase the wallbox uses."""
        cfg = self.cfg
        m = self.mains_ma
        o = self._own_fed
        n = self.phases_now
        worst = cfg.fuse_ma - (m[0] - o[0])
        if n > 1:
            for p in (1, 2):
                a = cfg.fuse_ma - (m[p] - o[p])
                if a < worst:
                    worst = a
        if worst < 0:
            worst = 0
        self.fuse_avail_ma = worst
        return worst

    def _smooth(self):
        """Surplus for the wallbox = export + its own draw + allowed import (sum of
        phases), smoothed: a rising surplus slowly (attack), a falling one fast (decay)."""
        cfg = self.cfg
        m = self.mains_ma
        o = self._own_fed
        s = o[0] + o[1] + o[2] - m[0] - m[1] - m[2] + cfg.import_ma
        self._raw_surplus = s
        if not self._smooth_init:
            self._smooth_init = True
            self.surplus_ma = s
            return
        d = s - self.surplus_ma
        k = cfg.attack_pm if d > 0 else cfg.decay_pm
        step = d * k // 1000
        if step == 0 and d:
            step = 1 if d > 0 else -1
        self.surplus_ma += step

    def _normal(self, fuse, now):
        """House fuse: take what is left (>= 6 A) or pause; resume after the minimum pause
        once 6 A fit again (iec61851.md §2: no offer below 6 A)."""
        cap = self._cap()
        by = R_GROUP if self.group_ma < fuse else R_FUSE
        if self._paused:
            if cap < MIN_MA + _STEP_MA:  # a little hysteresis before resuming
                self._set(0, R_FUSE_PAUSE if by == R_FUSE else R_GROUP, now, True)
                return
            if ticks_diff(now, self._pause_since) < self.cfg.min_pause_ms:
                self._set(0, R_MIN_PAUSE, now, True)
                return
            self._paused = False
        if cap < MIN_MA:
            self._pause(now, R_FUSE_PAUSE if by == R_FUSE else R_GROUP)
            return
        self._set(self._quantize(cap), by, now, False)

    def _solar(self, fuse, now):
        """pv: surplus only, start after start_ms above 6 A x phases, stop after stop_ms
        below (not before min_charge_ms); minpv: 6 A always, surplus on top. The fuse and
        the group share cap both."""
        cfg = self.cfg
        cap = self._cap()
        n = self._choose_phases(now)
        if self._want_phases:
            if not self.charging:
                n = self._switch(now)
            elif self._may_stop(now):
                self._pause(now, R_SWITCH)
                return
        elif n != self.phases_now and self.charging:
            self._pause(now, R_SWITCH)  # closed before the switch was made: open first
            return
        per = self.surplus_ma // n
        if cap < MIN_MA:  # the fuse (or group) leaves no room: pause at once
            self._pause(now, R_FUSE_PAUSE if self.group_ma >= fuse else R_GROUP)
            return
        if cfg.mode == MODE_MINPV:
            self._paused = False
            want = per if per > MIN_MA else MIN_MA
            why = R_SURPLUS if per > MIN_MA else R_MIN_CURRENT
        else:
            want = self._pv_gate(per, now)
            if not want:
                return
            why = R_SURPLUS
        if want > cap:
            want = cap
            why = R_FUSE if self.group_ma >= fuse else R_GROUP
        forced = want < self.offer_ma and why != R_SURPLUS and why != R_MIN_CURRENT
        if not forced and self._changed_once and ticks_diff(now, self._changed_at) < _PV_HOLD_MS:
            if self.offer_ma <= cap:
                return  # surplus-driven changes wait for the hold time
        self._set(self._quantize(want), why, now, forced)

    def _pv_gate(self, per, now):
        """pv start/stop timers: the offer the surplus gives, or 0 when paused (set here)."""
        cfg = self.cfg
        if self._paused:
            if per < MIN_MA or ticks_diff(now, self._pause_since) < cfg.min_pause_ms:
                self._timing = False
                self._set(0, R_NO_SURPLUS if per < MIN_MA else R_MIN_PAUSE, now, True)
                return 0
            if not self._timing:
                self._timing = True
                self._timer_since = now
            if ticks_diff(now, self._timer_since) < cfg.start_ms:
                self._set(0, R_NO_SURPLUS, now, True)
                return 0
            self._paused = False
            self._timing = False
        if per >= MIN_MA:
            self._timing = False
            return per
        # below 6 A per phase: hold 6 A for stop_ms (and min_charge_ms), then pause
        if not self._timing:
            self._timing = True
            self._timer_since = now
        if ticks_diff(now, self._timer_since) >= cfg.stop_ms and self._may_stop(now):
            self._pause(now, R_NO_SURPLUS)
            return 0
        return MIN_MA

    def _may_stop(self, now):
        """A solar stop (or a switch) waits for min_charge_ms of charging."""
        return not self.charging or ticks_diff(now, self._charge_since) >= self.cfg.min_charge_ms

    def _choose_phases(self, now):
        """Solar modes with a phase switch: 3 phases when the surplus carries 3 x 6 A
        (plus a margin to go up), one phase below; at most one switch per switch_min_ms.
        Returns the phase count the wallbox is heading for."""
        cfg = self.cfg
        self._want_phases = 0
        cur = self._target or self.phases_now
        if not cfg.phase_switch or cfg.phases_max != 3 or self._no_switch:
            self.phases = self._target
            return cur
        s = self.surplus_ma
        want = cur
        if cur == 3 and s < 3 * MIN_MA:
            want = 1
        elif cur == 1 and s >= 3 * MIN_MA + _P3_HYST_MA:
            want = 3
        if want != cur and self._switched_once and \
                ticks_diff(now, self._switched_at) < cfg.switch_min_ms:
            want = cur
        self._want_phases = want if want != cur else 0
        self.phases = self._target
        return cur

    def _switch(self, now):
        """Contactor open: ask for the other phase count (the service passes `phases` to
        evse.request_phases, which switches only with the contactor open)."""
        n = self._want_phases
        self._target = n
        self.phases = n
        self._want_phases = 0
        self._switched_at = now
        self._switched_once = True
        self.switches += 1
        self._timing = False
        return n

    def refuse_phases(self):
        """The wallbox refused the switch (its per-session limit): stay as it is."""
        self._target = 0
        self.phases = 0
        self._no_switch = True

    def _pause(self, now, why):
        if not self._paused:
            self._paused = True
            self._pause_since = now
            self._timing = False
        self._set(0, why, now, True)

    def _quantize(self, ma):
        """Whole amps, at most CLAIM_NONE_MA (the claim's range is 6..80 A)."""
        ma = ma // _STEP_MA * _STEP_MA
        if ma > CLAIM_NONE_MA:
            ma = CLAIM_NONE_MA
        return ma

    def _set(self, ma, why, now, at_once):
        """The new offer. Lower at once; higher only by a whole amp and at most every
        _RAISE_MS (fewer PWM changes, a bounded change rate under a noisy feed)."""
        cur = self.offer_ma
        prev = self.reason
        self.reason = why
        if ma == cur:
            return
        if ma > cur and not at_once and cur != 0 and prev != R_FEED_LOST:
            if ma - cur < _STEP_MA:
                return
            if self._changed_once and ticks_diff(now, self._changed_at) < _RAISE_MS:
                return
        self.offer_ma = ma
        self.offer_changes += 1
        self._changed_at = now
        self._changed_once = True


def dim_ma(power_w, volt_mv, phases):
    """§14a EnWG dimming: the per-phase current for `power_w` at `volt_mv` on `phases`
    (4200 W at 230 V: 18.2 A on one phase, 6.0 A on three -> clamped to 6 A)."""
    ma = power_w * 1000 // (volt_mv // 1000 * phases)
    return ma if ma >= MIN_MA else MIN_MA


def reason_text(lm):
    """'house fuse 25 A' and the like (allocates: for status and the log only)."""
    r = lm.reason
    name = REASON_NAMES[r]
    if r == R_FUSE or r == R_FUSE_PAUSE:
        return "%s %d A" % (name, lm.cfg.fuse_ma // 1000)
    if r == R_FEED_LOST:
        return "%s: %s" % (name, "%d A" % (lm.cfg.safe_ma // 1000) if lm.cfg.safe_ma else "paused")
    if r == R_GROUP:
        return "%s %d A" % (name, lm.group_ma // 1000)
    if r == R_SURPLUS:
        return "%s %.1f A" % (name, lm.surplus_ma / 1000)
    return name
