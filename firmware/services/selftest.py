# Technician self-test and calibration (console selftest() / calibrate()).
# Only with no EV connected: the control tick steps aside (rt.hold) for the ~2 s the
# test drives the outputs; every wait is an await, so the loop keeps ticking, the
# watchdog stays fed and the other tasks run. Outputs end safe whatever happens,
# and the control tick restores its own outputs on the next tick.
import asyncio
import time
from micropython import const

from firmware.technician.service import ConsoleError

_PILOT_OFF = const(0)
_PILOT_PLUS12 = const(1)
_PILOT_PWM = const(2)
_PILOT_MINUS12 = const(3)
_SETTLE_MS = const(40)  # CP filter and ADC settle after a level change
_CONTACTOR_MS = const(150)  # coil pull-in / drop-out plus mirror contact bounce
_LOCK_MS = const(1500)
_TOL_MV = const(1000)  # CP generator tolerance at +-12 V (IEC 61851-1: +-0.6 V, ADC spread)
_CT_MIN_MA = const(2000)  # below this the CT reading is mostly noise


async def _cp(rt, mode, duty=0):
    """Drive the CP generator, let it settle, return the (high, low) mV after calibration."""
    p = rt.hw.pilot
    p.set(mode, duty)
    await asyncio.sleep_ms(_SETTLE_MS)
    ok = False
    for _ in range(3):  # a few samples: PWM needs both halves seen
        ok = p.sample()
        await asyncio.sleep_ms(5)
    if not ok:
        return None
    g, off = rt.cp_gain_pm, rt.cp_offset_mv
    return p.high_mv * g // 1000 + off, p.low_mv * g // 1000 + off


def _near(mv, want):
    return want - _TOL_MV <= mv <= want + _TOL_MV


def _v(mv):
    return "%+.1f V" % (mv / 1000)


async def _raw(rt, mode):
    p = rt.hw.pilot
    p.set(mode, 0)
    await asyncio.sleep_ms(_SETTLE_MS)
    ok = False
    for _ in range(3):
        ok = p.sample()
        await asyncio.sleep_ms(5)
    return p.high_mv if ok else None


def _begin(svc, what):
    svc.refuse_busy(what)
    rt = svc.rt
    if rt.hold:
        raise ConsoleError("%s refused: a self-test is already running" % what)
    rt.hold = True
    rt.hw.safe()


def _end(rt):
    try:
        rt.hw.safe()
        if rt.hw.rcd is not None:
            rt.hw.rcd.set_test(False)
        if rt.hw.lock is not None:
            rt.hw.lock.set(False)
    finally:
        rt.hold = False


async def selftest(svc):
    """Run every check, print PASS/FAIL/SKIP lines; ConsoleError if any failed."""
    rt = svc.rt
    hw = rt.hw
    _begin(svc, "selftest")
    res = []

    def line(name, verdict, detail):
        res.append(verdict)
        print("  %-12s %-4s  %s" % (name, verdict, detail))

    t0 = time.ticks_ms()
    print("selftest: no EV; the test drives the outputs for about 2 s")
    try:
        # CP generator first: +12 V idle also proves that no EV is connected.
        lv = await _cp(rt, _PILOT_PLUS12)
        if lv is None:
            line("cp +12V", "FAIL", "CP reading failed: %s" % hw.pilot.error)
        elif not _near(lv[0], 12000):
            line("cp +12V", "FAIL", "%s, want +12 V (EV connected? CP wiring?)" % _v(lv[0]))
        else:
            line("cp +12V", "PASS", _v(lv[0]))
        ev_free = lv is not None and _near(lv[0], 12000)
        lv = await _cp(rt, _PILOT_PWM, 500)
        if lv is None or not (_near(lv[0], 12000) and _near(lv[1], -12000)):
            line("cp pwm", "FAIL", "high/low %s" % (
                "unreadable" if lv is None else "%s / %s" % (_v(lv[0]), _v(lv[1]))))
        else:
            line("cp pwm", "PASS", "50%% duty: high %s, low %s" % (_v(lv[0]), _v(lv[1])))
        lv = await _cp(rt, _PILOT_MINUS12)
        if lv is None or not _near(lv[0], -12000):
            line("cp -12V", "FAIL", "unreadable" if lv is None else _v(lv[0]))
        else:
            line("cp -12V", "PASS", _v(lv[0]))
        hw.pilot.set(_PILOT_PLUS12, 0)

        if hw.rcd is None:
            line("rcd", "SKIP", "no RCD fitted on this board")
        else:
            ok, why = await hw.rcd.selftest()
            if ok:
                line("rcd", "PASS", "trips in %d ms, clears in %d ms" % (hw.rcd.trip_ms,
                                                                       hw.rcd.clear_ms))
            else:
                line("rcd", "FAIL", why)

        c = hw.contactor
        fb = c.feedback()
        if not ev_free:
            line("contactor", "SKIP", "not switched: CP is not at +12 V")
        elif hw.rcd is not None and hw.rcd.tripped():
            line("contactor", "SKIP", "not switched: RCD tripped")
        elif fb == 1:
            line("contactor", "FAIL", "feedback says closed while open: welded?")
        else:
            c.set(True)  # pilot stays at +12 V: no EV can draw
            await asyncio.sleep_ms(_CONTACTOR_MS)
            fb_on = c.feedback()
            c.set(False)
            await asyncio.sleep_ms(_CONTACTOR_MS)
            fb_off = c.feedback()
            if fb == -1:
                line("contactor", "SKIP", "switched on/off; no feedback contact fitted")
            elif fb_on == 1 and fb_off == 0:
                line("contactor", "PASS", "closes and opens, feedback follows")
            else:
                line("contactor", "FAIL", "feedback %d when closed, %d when open" % (
                    fb_on, fb_off))

        lk = hw.lock
        if lk is None or not rt.config.get("lock"):
            line("lock", "SKIP", "no lock configured (config lock)")
        else:
            got = []
            for want in (True, False):
                lk.set(want)
                t1 = time.ticks_ms()
                while time.ticks_diff(time.ticks_ms(), t1) < _LOCK_MS:
                    lk.update()
                    hw.pilot.sample()  # the sim's world advances on driver calls
                    if lk.feedback() == int(want):
                        break
                    await asyncio.sleep_ms(10)
                got.append(lk.feedback())
            if got[0] == -1:
                line("lock", "SKIP", "moved; no lock feedback fitted")
            elif got == [1, 0]:
                line("lock", "PASS", "locks and unlocks")
            else:
                line("lock", "FAIL", "feedback %d locked, %d unlocked" % (got[0], got[1]))

        m = hw.meter
        if m is None:
            line("meter", "SKIP", "no meter")
        else:
            if svc.safe_mode:  # no metering task: ask it here
                ok = await m.poll()
                err = None if ok else m.error
            else:
                err = rt.meter_error  # the metering task polls it every second
            line("meter", "FAIL" if err else "PASS", err or "answers")

        if hw.temp is not None:
            t = hw.temp.read_dc()
            if -400 <= t <= 1000:
                line("temp", "PASS", "%d.%d C" % (t // 10, t % 10))
            else:
                line("temp", "FAIL", hw.temp.error or "out of range")
    finally:
        _end(rt)
    fails = res.count("FAIL")
    print("RESULT: %s  (%d pass, %d fail, %d skip, %d ms)" % (
        "FAIL" if fails else "PASS", res.count("PASS"), fails, res.count("SKIP"),
        time.ticks_diff(time.ticks_ms(), t0)))
    rt.store.event("selftest", "fail" if fails else "pass", 0)
    if fails:
        raise ConsoleError("selftest failed: %d check(s), see the FAIL lines" % fails)


def _num_mv(x, what):
    if type(x) not in (int, float) or x != x:
        raise ConsoleError("%s must be a number of volts/amps, e.g. 12.1" % what)
    return int(round(x * 1000))


async def calibrate(svc, what=None, a=None, b=None):
    rt = svc.rt
    if what == "ct":
        ct = rt.hw.current
        if ct is None:
            raise ConsoleError("no CT sensor on this board (the meter measures current)")
        if type(a) is not int or not 1 <= a <= 3:
            raise ConsoleError("calibrate('ct', phase, amps): phase is 1, 2 or 3")
        ref = _num_mv(b, "amps")
        meas = ct.ma[a - 1]
        if meas < _CT_MIN_MA or ref < _CT_MIN_MA:
            raise ConsoleError("CT calibration needs at least 2 A flowing on L%d (reads %d mA,"
                               " reference %d mA)" % (a, meas, ref))
        cal = list(rt.config.get("ct_cal_pm"))
        old = cal[a - 1]
        cal[a - 1] = old * ref // meas
        err = rt.config.set("ct_cal_pm", cal)
        if err:
            raise ConsoleError(err + ": reading and reference differ too much, check the CT")
        print("CT L%d: read %d mA, reference %d mA: gain %d -> %d permille (saved)" % (
            a, meas, ref, old, cal[a - 1]))
        return
    if what == "cp":
        vp = _num_mv(a, "plus_v")
        vm = _num_mv(b, "minus_v")
        if not (9000 <= vp <= 14000 and -14000 <= vm <= -9000):
            raise ConsoleError("calibrate('cp', plus_v, minus_v): the CP voltages you measured"
                               " at +12 and -12, e.g. calibrate('cp', 11.9, -12.1)")
        _begin(svc, "CP calibration")
        try:
            rp = await _raw(rt, _PILOT_PLUS12)
            rm = await _raw(rt, _PILOT_MINUS12)
        finally:
            _end(rt)
        if rp is None or rm is None or rp - rm < 12000:
            raise ConsoleError("CP readings unusable (+12: %s, -12: %s): check wiring" % (rp, rm))
        g = (vp - vm) * 1000 // (rp - rm)
        off = vp - rp * g // 1000
        err = rt.config.update({"cp_gain_pm": g, "cp_offset_mv": off})
        if err:
            raise ConsoleError(err + ": readings too far from the reference, check the CP"
                               " front end (nothing changed)")
        print("CP: read %d / %d mV for %d / %d mV: gain %d permille, offset %d mV (saved)" % (
            rp, rm, vp, vm, g, off))
        return
    raise ConsoleError("calibrate('ct', phase, amps) with a clamp meter reading while"
                       " charging, or calibrate('cp', plus_v, minus_v) with no EV")
