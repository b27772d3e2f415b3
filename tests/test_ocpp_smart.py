"""OCPP Smart Charging: the pure schedule (firmware/core/ocpp_schedule.py) in the MicroPython
unix port - a TxProfile stacked over a TxDefaultProfile with a daily recurrence across
midnight, a ChargePointMaxProfile cap, W units - and the firmware against the CSMS: profiles
set, stacked, capped by the cable and the installation limit, composite schedule, cleared."""
import time

import pytest
from ocpp.v16 import call

from csms import Csms
from e2e import FAST, SimBench, baseline, charge

SCHED = """
from firmware.core import ocpp_schedule as S
from firmware.core.isotime import parse as T
def prof(pid, level, purpose, kind, start, periods, dur=None, rec=None, unit="A"):
    return {"chargingProfileId": pid, "stackLevel": level, "chargingProfilePurpose": purpose,
            "chargingProfileKind": kind, "recurrencyKind": rec, "transactionId": None,
            "validFrom": None, "validTo": None,
            "chargingSchedule": {"duration": dur, "startSchedule": T(start) if start else None,
                                 "chargingRateUnit": unit,
                                 "chargingSchedulePeriod": [{"startPeriod": a, "limit": b}
                                                            for a, b in periods]}}
default = prof(1, 0, S.TX_DEFAULT, "Recurring", "2026-01-01T22:00:00Z",
               [(0, 10), (8 * 3600, 16)], dur=86400, rec="Daily")
tx = prof(2, 1, S.TX, "Absolute", "2026-03-05T23:00:00Z", [(0, 8)], dur=3600)
ps = [default, tx]
t0 = T("2026-03-05T21:00:00Z")
at = lambda s, p=ps, start=t0: S.limit_ma(p, T(s), start, 7)
result = {
  "21:30": at("2026-03-05T21:30:00Z"), "22:30": at("2026-03-05T22:30:00Z"),
  "23:30": at("2026-03-05T23:30:00Z"), "00:30": at("2026-03-06T00:30:00Z"),
  "06:30": at("2026-03-06T06:30:00Z"),
  "notx 23:30": at("2026-03-05T23:30:00Z", ps, None),
  "cap": at("2026-03-05T22:30:00Z", ps + [prof(3, 0, S.CP_MAX, "Absolute", "2026-01-01T00:00:00Z", [(0, 9)])]),
  "w6": S.limit_ma([prof(4, 0, S.TX_DEFAULT, "Absolute", "2026-01-01T00:00:00Z", [(0, 4140)], unit="W")], t0),
  "w_low": S.limit_ma([prof(4, 0, S.TX_DEFAULT, "Absolute", "2026-01-01T00:00:00Z", [(0, 2000)], unit="W")], t0),
  "none": S.limit_ma([], t0),
  "comp": S.composite(ps, T("2026-03-05T21:30:00Z"), 86400, t0, 7),
}
"""


def test_tx_profile_over_daily_default_across_midnight(mp):
    r = mp.run(SCHED)
    assert r["21:30"] == 16000  # yesterday's 22:00 occurrence, its 06:00 period
    assert r["22:30"] == 10000  # today's occurrence starts at 22:00
    assert r["23:30"] == 8000  # the TxProfile (stack level 1) over it
    assert r["00:30"] == 10000  # after midnight: the default again, same occurrence
    assert r["06:30"] == 16000
    assert r["notx 23:30"] == 10000  # a TxProfile needs a transaction
    assert r["cap"] == 9000  # ChargePointMaxProfile caps the transaction's limit
    assert r["w6"] == 6000  # 4140 W / (230 V x 3)
    assert r["w_low"] == 0  # below 6 A: a pause, never a PWM under 6 A
    assert r["none"] == -1
    assert [tuple(x) for x in r["comp"]] == [(0, 16000), (1800, 10000), (5400, 8000),
                                             (9000, 10000), (30600, 16000)]


@pytest.fixture(scope="module")
def env():
    c = Csms().start()
    b = SimBench(config=dict(FAST, ocpp_url=c.url, ocpp_timeout_s=5, max_current_a=16))
    try:
        c.wait(lambda: c.statuses(0), what="boot")
        yield c, b
    finally:
        b.close()
        c.stop()


def profile(pid, level, purpose, limit, unit="A", kind="Absolute", **extra):
    p = {"chargingProfileId": pid, "stackLevel": level, "chargingProfilePurpose": purpose,
         "chargingProfileKind": kind,
         "chargingSchedule": {"chargingRateUnit": unit, "startSchedule": "2026-01-01T00:00:00Z",
                              "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}
    p.update(extra)
    return p


def test_profiles_stack_and_are_capped_by_the_installation(env):
    c, b = env
    baseline(b)
    set_p = lambda conn, p: c.request(call.SetChargingProfile(  # noqa: E731
        connector_id=conn, cs_charging_profiles=p)).status
    # above the installation's 16 A: the claim is 40 A, the offer stays 16 A (config binds)
    assert set_p(1, profile(1, 0, "TxDefaultProfile", 40.0)) == "Accepted"
    assert set_p(1, profile(9, 0, "TxProfile", 8.0)) == "Rejected"  # no transaction yet
    charge(b)
    r = b.wait_for(lambda r: r["status"]["contactor"], timeout=10)
    assert r["status"]["allowed_a"] == 16.0
    c.wait(lambda: c.starts, what="start")
    txid = max(c.starts)
    assert set_p(1, profile(2, 1, "TxProfile", 10.0, transactionId=txid)) == "Accepted"
    r = b.wait_for(lambda r: r["status"]["allowed_a"] == 10.0, timeout=5, what="10 A")
    assert r["status"]["duty_pm"] == 167  # 10 A -> 16.7 % (IEC 61851-1 ref section 2)
    comp = c.request(call.GetCompositeSchedule(connector_id=1, duration=3600,
                                               charging_rate_unit="A"))
    assert comp.status == "Accepted"
    assert comp.charging_schedule["charging_schedule_period"][0]["limit"] == 10.0
    # W on connector 0: ChargePointMaxProfile 4140 W = 6 A per phase caps it further
    assert set_p(0, profile(3, 0, "ChargePointMaxProfile", 4140, unit="W")) == "Accepted"
    b.wait_for(lambda r: r["status"]["allowed_a"] == 6.0, timeout=5, what="6 A")
    assert c.request(call.ClearChargingProfile(id=3)).status == "Accepted"
    assert c.request(call.ClearChargingProfile(id=33)).status == "Unknown"
    b.wait_for(lambda r: r["status"]["allowed_a"] == 10.0, timeout=5, what="10 A again")
    b.set(plugged=False)  # the TxProfile ends with its transaction
    c.wait(lambda: txid in c.stops, what="stop")
    comp = c.request(call.GetCompositeSchedule(connector_id=1, duration=60))
    assert comp.charging_schedule["charging_schedule_period"][0]["limit"] == 16.0  # capped 40
    assert c.request(call.ClearChargingProfile()).status == "Accepted"
    assert c.schema_errors == []


def test_bad_profiles_get_callerrors(env):
    c, b = env
    import json
    bad = profile(5, 0, "TxDefaultProfile", 10.0)
    bad["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = "ten"
    c.send_raw(json.dumps([2, "sp1", "SetChargingProfile", {"connectorId": 1,
                                                             "csChargingProfiles": bad}]))
    def answer():
        for raw in c.raw:
            m = json.loads(raw) if raw.startswith("[") else None
            if m and m[1] == "sp1":
                return m
    m = c.wait(answer, what="answer")
    assert m[0] == 4 and m[2] == "TypeConstraintViolation"
    assert b.read()["status"]["allowed_a"] in (0.0, 16.0)


PARSE = """
from firmware.links.ocpp_smart import parse_profile
from firmware.links.ocpp import CallError
def ok():
    return {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": "A",
                                 "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}]}}
result = []
for path, v in data:
    p = ok()
    d = p
    for k in path[:-1]:
        d = d[k] if type(d) is dict else d[0]
    if v == "DEL":
        del d[path[-1]]
    else:
        d[path[-1]] = v
    try:
        parse_profile(p, 3, 4)
        result.append("ok")
    except CallError as e:
        result.append([e.code, e.text])
"""


def test_profile_field_checks_answer_the_first_bad_field(mp):
    """The table-driven field checks of ocpp_smart.py: required, type, range, enum, date."""
    S = ["chargingSchedule"]
    P = S + ["chargingSchedulePeriod", 0]
    cases = [
        (["chargingProfileId"], "DEL", ["OccurenceConstraintViolation", "chargingProfileId is required"]),
        (["chargingProfileId"], "1", ["TypeConstraintViolation", "chargingProfileId must be an integer"]),
        (["stackLevel"], -1, ["PropertyConstraintViolation", "stackLevel must be >= 0"]),
        (["stackLevel"], 4, ["PropertyConstraintViolation", "stackLevel above 3"]),
        (["chargingProfilePurpose"], "X", ["PropertyConstraintViolation",
                                           "chargingProfilePurpose: 'X' not allowed"]),
        (["chargingProfileKind"], 3, ["TypeConstraintViolation", "chargingProfileKind must be a string"]),
        (["recurrencyKind"], "Monthly", ["PropertyConstraintViolation", "recurrencyKind: 'Monthly' not allowed"]),
        (["transactionId"], 1.5, ["TypeConstraintViolation", "transactionId must be an integer"]),
        (["validFrom"], 5, ["TypeConstraintViolation", "validFrom must be a date-time string"]),
        (["validTo"], "soon", ["PropertyConstraintViolation", "validTo is not an ISO 8601 date-time"]),
        (["validTo"], "2026-01-01T00:00:00Z", "ok"),
        (S + ["duration"], -5, ["PropertyConstraintViolation", "duration must be >= 0"]),
        (S + ["startSchedule"], "x", ["PropertyConstraintViolation", "startSchedule is not an ISO 8601 date-time"]),
        (S + ["chargingRateUnit"], "DEL", ["OccurenceConstraintViolation", "chargingRateUnit is required"]),
        (S + ["chargingRateUnit"], "kW", ["PropertyConstraintViolation", "chargingRateUnit: 'kW' not allowed"]),
        (P + ["startPeriod"], "DEL", ["OccurenceConstraintViolation", "startPeriod is required"]),
        (P + ["startPeriod"], 5, ["PropertyConstraintViolation", "the first period must start at 0"]),
        (P + ["numberPhases"], 0, ["PropertyConstraintViolation", "numberPhases must be >= 1"]),
        (P + ["numberPhases"], 3, "ok"),
        (P + ["limit"], "ten", ["TypeConstraintViolation", "limit must be a number"]),
        (["chargingProfileKind"], "Recurring", ["OccurenceConstraintViolation",
                                                "a recurring profile needs recurrencyKind and startSchedule"]),
    ]
    got = mp.run(PARSE, [[p, v] for p, v, _ in cases])
    assert got == [w for _, _, w in cases]
