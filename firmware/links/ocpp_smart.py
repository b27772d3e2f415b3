# OCPP 1.6 Smart Charging profile (§5.16 SetChargingProfile, §5.5 ClearChargingProfile,
# §5.7 GetCompositeSchedule) for firmware/links/ocpp.py: validates and keeps the installed
# profiles (store record "ocppprof"), and turns them into the OCPP claim on the offered current
# through firmware/core/ocpp_schedule.py. Imported only when a CSMS installs a profile.
from micropython import const

from firmware.core import isotime
from firmware.core import ocpp_schedule as S
from firmware.links.ocpp import CallError

_REC = "ocppprof"
_PURPOSES = (S.CP_MAX, S.TX_DEFAULT, S.TX)
_KINDS = ("Absolute", "Recurring", "Relative")


# One field check, driven by a table row (key, kind, required, arg): _INT with arg the least
# value, _TIME (an ISO 8601 string, returned as seconds), _ENUM with arg the allowed strings.
_INT = const(0)
_TIME = const(1)
_ENUM = const(2)
_WANT = ("an integer", "a date-time string", "a string")
_UNITS = ("A", "W")
_PROFILE = (("chargingProfileId", _INT, True, 0), ("stackLevel", _INT, True, 0),
            ("chargingProfilePurpose", _ENUM, True, _PURPOSES),
            ("chargingProfileKind", _ENUM, True, _KINDS),
            ("recurrencyKind", _ENUM, False, ("Daily", "Weekly")),
            ("transactionId", _INT, False, 0),
            ("validFrom", _TIME, False, None), ("validTo", _TIME, False, None))
_SCHEDULE = (("duration", _INT, False, 0), ("startSchedule", _TIME, False, None),
             ("chargingRateUnit", _ENUM, True, _UNITS))
_CLEAR = (("id", _INT, False, 0), ("connectorId", _INT, False, 0),
          ("chargingProfilePurpose", _ENUM, False, _PURPOSES), ("stackLevel", _INT, False, 0))
_COMPOSITE = (("connectorId", _INT, True, 0), ("duration", _INT, True, 0),
              ("chargingRateUnit", _ENUM, False, _UNITS))


def _bad(code, text):
    raise CallError(code, text)


def _get(d, k, kind, req=True, arg=0):
    """d[k] checked as one table row says; None when absent and not required."""
    v = d.get(k)
    if v is None:
        if req:
            _bad("OccurenceConstraintViolation", "%s is required" % k)
        return None
    if type(v) is not (int if kind == _INT else str):
        _bad("TypeConstraintViolation", "%s must be %s" % (k, _WANT[kind]))
    if kind == _INT:
        if v < arg:
            _bad("PropertyConstraintViolation", "%s must be >= %d" % (k, arg))
    elif kind == _TIME:
        v = isotime.parse(v)
        if v is None:
            _bad("PropertyConstraintViolation", "%s is not an ISO 8601 date-time" % k)
    elif v not in arg:
        _bad("PropertyConstraintViolation", "%s: %r not allowed" % (k, v))
    return v


def _fields(d, table):
    """{key: value} of every row of the table, checked in table order (the first bad one
    is the answer)."""
    out = {}
    for row in table:
        out[row[0]] = _get(d, *row)
    return out


def parse_profile(p, max_level, max_periods):
    """A csChargingProfiles object -> the dict ocpp_schedule uses; raises CallError."""
    if type(p) is not dict:
        _bad("TypeConstraintViolation", "csChargingProfiles must be an object")
    out = _fields(p, _PROFILE)
    if out["stackLevel"] > max_level:
        _bad("PropertyConstraintViolation", "stackLevel above %d" % max_level)
    s = p.get("chargingSchedule")
    if type(s) is not dict:
        _bad("OccurenceConstraintViolation" if s is None else "TypeConstraintViolation",
             "chargingSchedule must be an object")
    sch = _fields(s, _SCHEDULE)
    per = s.get("chargingSchedulePeriod")
    if type(per) is not list or not per:
        _bad("TypeConstraintViolation", "chargingSchedulePeriod must be a non-empty list")
    if len(per) > max_periods:
        _bad("PropertyConstraintViolation", "more than %d periods" % max_periods)
    periods = []
    for x in per:
        if type(x) is not dict:
            _bad("TypeConstraintViolation", "a period must be an object")
        lim = x.get("limit")
        if type(lim) not in (int, float):
            _bad("TypeConstraintViolation", "limit must be a number")
        if lim < 0:
            _bad("PropertyConstraintViolation", "limit must be >= 0")
        q = {"startPeriod": _get(x, "startPeriod", _INT), "limit": lim}
        ph = _get(x, "numberPhases", _INT, False, 1)
        if ph is not None:
            q["numberPhases"] = ph
        periods.append(q)
    if periods[0]["startPeriod"] != 0:
        _bad("PropertyConstraintViolation", "the first period must start at 0")
    sch["chargingSchedulePeriod"] = periods
    out["chargingSchedule"] = sch
    if out["chargingProfileKind"] == "Recurring" and (
            out["recurrencyKind"] is None or sch["startSchedule"] is None):
        _bad("OccurenceConstraintViolation", "a recurring profile needs recurrencyKind and startSchedule")
    return out


class Smart:
    def __init__(self, oc):
        self.oc = oc
        saved = oc.rt.store.get(_REC)
        self.profiles = saved if type(saved) is list else []
        self.pending_tx = None  # the TxProfile of a RemoteStartTransaction, until it starts

    def _save(self):
        self.oc.rt.store.put(_REC, self.profiles, 0)

    def _tx(self):
        t = self.oc.tx
        return (t["start_s"], t["txid"]) if t is not None else (None, None)

    def limit_ma(self, now=None):
        start, txid = self._tx()
        rt = self.oc.rt
        return S.limit_ma(self.profiles, self.oc.now_s() if now is None else now, start, txid,
                          rt.config.get("mains_v"))

    def install(self, prof):
        """Replace a profile of the same id, or of the same purpose and stack level."""
        keep = []
        for q in self.profiles:
            if q["chargingProfileId"] == prof["chargingProfileId"] or (
                    q["stackLevel"] == prof["stackLevel"]
                    and q["chargingProfilePurpose"] == prof["chargingProfilePurpose"]):
                continue
            keep.append(q)
        if len(keep) >= self.oc.keys.get("MaxChargingProfilesInstalled"):
            return False
        keep.append(prof)
        self.profiles = keep
        self._save()
        return True

    def tx_started(self):
        if self.pending_tx is not None:
            self.install(self.pending_tx)
            self.pending_tx = None

    def tx_ended(self):
        """TxProfiles live as long as their transaction (§3.13.2)."""
        n = len(self.profiles)
        self.profiles = [q for q in self.profiles if q["chargingProfilePurpose"] != S.TX]
        if len(self.profiles) != n:
            self._save()

    def parse(self, p):
        k = self.oc.keys
        return parse_profile(p, k.get("ChargeProfileMaxStackLevel"),
                             k.get("ChargingScheduleMaxPeriods"))

    def set(self, p):
        c = _get(p, "connectorId", _INT)
        prof = self.parse(p.get("csChargingProfiles"))
        if c > 1:
            return "Rejected"
        if prof["chargingProfilePurpose"] == S.TX:
            t = self.oc.tx
            if c != 1 or t is None:
                return "Rejected"  # §5.16: a TxProfile needs a transaction on the connector
            if prof["transactionId"] is not None and prof["transactionId"] != t["txid"]:
                return "Rejected"
        elif prof["chargingProfilePurpose"] == S.CP_MAX and c != 0:
            return "Rejected"
        return "Accepted" if self.install(prof) else "Rejected"

    def clear(self, p):
        f = _fields(p, _CLEAR)
        pid, c, level = f["id"], f["connectorId"], f["stackLevel"]
        purpose = f["chargingProfilePurpose"]
        if c is not None and c > 1:
            return "Unknown"
        keep = [q for q in self.profiles if not (
            (pid is None or q["chargingProfileId"] == pid)
            and (purpose is None or q["chargingProfilePurpose"] == purpose)
            and (level is None or q["stackLevel"] == level))]
        if len(keep) == len(self.profiles):
            return "Unknown"
        self.profiles = keep
        self._save()
        return "Accepted"

    def cap_ma(self):
        """What the wallbox can offer at most: the installation limit and the cable."""
        rt = self.oc.rt
        ma = rt.config.get("max_current_a") * 1000
        cab = rt.config.get("cable_fixed_a") * 1000 or getattr(rt.evse, "_cable_ma", 0)
        return cab if 0 < cab < ma else ma

    def composite(self, p):
        f = _fields(p, _COMPOSITE)
        c, dur, unit = f["connectorId"], f["duration"], f["chargingRateUnit"] or "A"
        if c > 1:
            return {"status": "Rejected"}
        oc = self.oc
        now = oc.now_s()
        start, txid = self._tx()
        mains = oc.rt.config.get("mains_v")
        cap = self.cap_ma()
        periods = []
        for off, ma in S.composite(self.profiles, now, dur, start, txid, mains,
                                   oc.keys.get("ChargingScheduleMaxPeriods")):
            ma = cap if ma == S.NO_LIMIT or ma > cap else ma
            ph = oc._phases()
            lim = ma / 1000 if unit == "A" else ma * mains * ph // 1000
            q = {"startPeriod": off, "limit": lim}
            if unit == "W":
                q["numberPhases"] = ph
            if not periods or periods[-1]["limit"] != lim:
                periods.append(q)
        return {"status": "Accepted", "connectorId": c, "scheduleStart": isotime.iso(now),
                "chargingSchedule": {"duration": dur, "startSchedule": isotime.iso(now),
                                     "chargingRateUnit": unit,
                                     "chargingSchedulePeriod": periods}}
