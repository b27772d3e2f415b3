# OCPP 1.6 smart charging (§3.13 "Smart Charging", §7.8 ChargingProfile): which limit the
# installed charging profiles set at a moment, and the composite schedule over a window.
# Pure: no clock reads, no I/O; times are UTC epoch seconds, currents mA. The result is one
# claim on the offered current (evse.set_claim_ma(CLAIM_OCPP, ...)), never a bypass.
#
# A profile is the validated dict of SetChargingProfile (camelCase keys, as received):
#   chargingProfileId, stackLevel, chargingProfilePurpose (ChargePointMaxProfile |
#   TxDefaultProfile | TxProfile), chargingProfileKind (Absolute | Recurring | Relative),
#   recurrencyKind (Daily | Weekly), validFrom, validTo (epoch s, parsed), transactionId,
#   chargingSchedule {duration, startSchedule (epoch s), chargingRateUnit (A | W),
#   chargingSchedulePeriod [{startPeriod, limit, numberPhases}]}
from micropython import const

MIN_MA = const(6000)  # IEC 61851-1: below 6 A no current may be offered (ref §2) -> pause
MAX_MA = const(80000)
NO_LIMIT = const(-1)
_DAY = const(86400)
_WEEK = const(604800)

CP_MAX = "ChargePointMaxProfile"
TX_DEFAULT = "TxDefaultProfile"
TX = "TxProfile"


def schedule_start(p, now, tx_start):
    """Start of the profile's schedule in effect at `now` (epoch s), or None."""
    kind = p.get("chargingProfileKind")
    s = p["chargingSchedule"]
    if kind == "Relative":
        return tx_start  # None without a transaction
    st = s.get("startSchedule")
    if st is None:
        return tx_start if kind == "Absolute" else None
    if kind == "Recurring":
        per = _WEEK if p.get("recurrencyKind") == "Weekly" else _DAY
        if now < st:
            return st - per * ((st - now + per - 1) // per)  # the last occurrence before now
        return st + per * ((now - st) // per)
    return st


def _period_limit(p, now, tx_start):
    """(limit, unit, phases) of the period active at now, or None."""
    if p.get("validFrom") is not None and now < p["validFrom"]:
        return None
    if p.get("validTo") is not None and now >= p["validTo"]:
        return None
    start = schedule_start(p, now, tx_start)
    if start is None or now < start:
        return None
    s = p["chargingSchedule"]
    off = now - start
    dur = s.get("duration")
    if dur is not None and off >= dur:
        return None
    best = None
    for per in s["chargingSchedulePeriod"]:
        if per["startPeriod"] <= off and (best is None or per["startPeriod"] >= best["startPeriod"]):
            best = per
    if best is None:
        return None
    return best["limit"], s["chargingRateUnit"], best.get("numberPhases", 3)


def to_ma(limit, unit, phases, mains_v):
    """A limit in A or W as mA per phase (W over the nominal voltage and the phases)."""
    if unit == "W":
        ph = phases if phases in (1, 2, 3) else 3
        return int(limit * 1000 // (mains_v * ph))
    return int(limit * 1000)


def _purpose_ma(profiles, purpose, now, tx_start, txid, mains_v):
    """Limit (mA) of the highest stack level of `purpose` with a period active now."""
    best = None
    for p in profiles:
        if p["chargingProfilePurpose"] != purpose:
            continue
        if purpose == TX:
            if tx_start is None or (p.get("transactionId") is not None
                                    and p["transactionId"] != txid):
                continue
        if best is not None and p["stackLevel"] <= best[0]:
            continue
        r = _period_limit(p, now, tx_start)
        if r is not None:
            best = (p["stackLevel"], to_ma(r[0], r[1], r[2], mains_v))
    return NO_LIMIT if best is None else best[1]


def limit_ma(profiles, now, tx_start=None, txid=None, mains_v=230):
    """The OCPP limit at `now`: NO_LIMIT, 0 (pause: below 6 A) or 6000..80000 mA.
    TxProfile overrules TxDefaultProfile; ChargePointMaxProfile caps both (§3.13.2)."""
    tx = NO_LIMIT
    if tx_start is not None:
        tx = _purpose_ma(profiles, TX, now, tx_start, txid, mains_v)
    if tx == NO_LIMIT:
        tx = _purpose_ma(profiles, TX_DEFAULT, now, tx_start, txid, mains_v)
    cap = _purpose_ma(profiles, CP_MAX, now, tx_start, txid, mains_v)
    ma = tx
    if cap != NO_LIMIT and (ma == NO_LIMIT or cap < ma):
        ma = cap
    if ma == NO_LIMIT:
        return NO_LIMIT
    if ma < MIN_MA:
        return 0
    return ma if ma < MAX_MA else MAX_MA


def _breaks(p, t0, t1, tx_start):
    """Times in [t0, t1) where profile p may change the limit."""
    out = []
    for k in ("validFrom", "validTo"):
        v = p.get(k)
        if v is not None and t0 < v < t1:
            out.append(v)
    s = p["chargingSchedule"]
    t = t0
    seen = 0
    while t < t1 and seen < 64:  # bounded: a weekly/daily profile repeats inside the window
        start = schedule_start(p, t, tx_start)
        if start is None:
            break
        for per in s["chargingSchedulePeriod"]:
            b = start + per["startPeriod"]
            if t0 < b < t1:
                out.append(b)
        if s.get("duration") is not None and t0 < start + s["duration"] < t1:
            out.append(start + s["duration"])
        if p.get("chargingProfileKind") != "Recurring":
            break
        t = start + (_WEEK if p.get("recurrencyKind") == "Weekly" else _DAY)
        if t0 < t < t1:
            out.append(t)
        seen += 1
    return out


def composite(profiles, now, duration, tx_start=None, txid=None, mains_v=230, max_periods=24):
    """GetCompositeSchedule over [now, now + duration): [(start offset s, mA or NO_LIMIT)],
    one entry per change, at most max_periods."""
    t1 = now + duration
    pts = [now]
    for p in profiles:
        pts.extend(_breaks(p, now, t1, tx_start))
    pts = sorted(set(pts))
    out = []
    for t in pts:
        ma = limit_ma(profiles, t, tx_start, txid, mains_v)
        if not out or out[-1][1] != ma:
            out.append((t - now, ma))
        if len(out) >= max_periods:
            break
    return out
