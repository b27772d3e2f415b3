# OCPP 1.6 Smart Charging profile (§5.16 SetChargingProfile, §5.5 ClearChargingProfile,
# §5.7 GetCompositeSchedule) for firmware/links/ocpp.py: validates and keeps the installed
# profiles (store record "ocppprof"), and turns them into the OCPP claim on the offered current
# through firmware/core/ocpp_schedule.py. Imported only when a CSMS installs a profile.
from firmware.core import isotime
from firmware.core import ocpp_schedule as S
from firmware.links.ocpp import CallError

_REC = "ocppprof"
_PURPOSES = (S.CP_MAX, S.TX_DEFAULT, S.TX)
_KINDS = ("Absolute", "Recurring", "Relative")


def _bad(code, text):
    raise CallError(code, text)


def _int(d, k, req=True, lo=0):
    v = d.get(k)
    if v is None:
        if req:
            _bad("OccurenceConstraintViolation", "%s is required" % k)
        return None
    if type(v) is not int:
        _bad("TypeConstraintViolation", "%s must be an integer" % k)
    if v < lo:
        _bad("PropertyConstraintViolation", "%s must be >= %d" % (k, lo))
    return v


def _time(d, k, req=False):
    v = d.get(k)
    if v is None:
        if req:
            _bad("OccurenceConstraintViolation", "%s is required" % k)
        return None
    if type(v) is not str:
        _bad("TypeConstraintViolation", "%s must be a date-time string" % k)
    t = isotime.parse(v)
    if t is None:
        _bad("PropertyConstraintViolation", "%s is not an ISO 8601 date-time" % k)
    return t


def _enum(d, k, allowed, req=True):
    v = d.get(k)
    if v is None:
        if req:
            _bad("OccurenceConstraintViolation", "%s is required" % k)
        return None
    if type(v) is not str:
        _bad("TypeConstraintViolation", "%s must be a string" % k)
    if v not in allowed:
        _bad("PropertyConstraintViolation", "%s: %r not allowed" % (k, v))
    return v


def parse_profile(p, max_level, max_periods):
    """A csChargingProfiles object -> the dict ocpp_schedule uses; raises CallError."""
    if type(p) is not dict:
        _bad("TypeConstraintViolation", "csChargingProfiles must be an object")
    out = {"chargingProfileId": _int(p, "chargingProfileId"),
           "stackLevel": _int(p, "stackLevel"),
           "chargingProfilePurpose": _enum(p, "chargingProfilePurpose", _PURPOSES),
           "chargingProfileKind": _enum(p, "chargingProfileKind", _KINDS),
           "recurrencyKind": _enum(p, "recurrencyKind", ("Daily", "Weekly"), False),
           "transactionId": _int(p, "transactionId", False),
           "validFrom": _time(p, "validFrom"), "validTo": _time(p, "validTo")}
    if out["stackLevel"] > max_level:
        _bad("PropertyConstraintViolation", "stackLevel above %d" % max_level)
    s = p.get("chargingSchedule")
    if type(s) is not dict:
        _bad("OccurenceConstraintViolation" if s is None else "TypeConstraintViolation",
             "chargingSchedule must be an object")
    sch = {"duration": _int(s, "duration", False), "startSchedule": _time(s, "startSchedule"),
           "chargingRateUnit": _enum(s, "chargingRateUnit", ("A", "W"))}
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
        q = {"startPeriod": _int(x, "startPeriod"), "limit": lim}
        ph = _int(x, "numberPhases", False, 1)
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
        c = _int(p, "connectorId")
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
        pid = _int(p, "id", False)
        c = _int(p, "connectorId", False)
        purpose = _enum(p, "chargingProfilePurpose", _PURPOSES, False)
        level = _int(p, "stackLevel", False)
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
        c = _int(p, "connectorId")
        dur = _int(p, "duration")
        unit = _enum(p, "chargingRateUnit", ("A", "W"), False) or "A"
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
