"""A hostile CSMS: malformed JSON, an unknown action, wrong types, a huge frame and a CSMS that
never answers. Each gets the OCPP-J CALLERROR (§4.2.3) or a timeout, nothing changes that
should not, and the contactor still opens within the IEC 61851-1 limit meanwhile."""
import json
import time

import pytest
from ocpp.v16 import call

from csms import Csms
from e2e import FAST, LIMIT_MS, SimBench, baseline, charge, trigger


@pytest.fixture(scope="module")
def env():
    c = Csms(interval=300, max_size=None).start()
    b = SimBench(config=dict(FAST, ocpp_url=c.url, ocpp_timeout_s=2))
    try:
        c.wait(lambda: c.statuses(0), what="boot accepted")
        yield c, b
    finally:
        b.close()
        c.stop()


def errors_for(c, uid):
    out = []
    for raw in c.raw:
        try:
            m = json.loads(raw)
        except ValueError:
            continue
        if isinstance(m, list) and len(m) >= 3 and m[0] in (3, 4) and m[1] == uid:
            out.append(m)
    return out


def raw_call(c, uid, text):
    c.send_raw(text)
    return c.wait(lambda: errors_for(c, uid), timeout=10, what="answer to %s" % uid)[0]


def test_malformed_unknown_and_wrong_types_get_callerrors(env):
    c, b = env
    cfg0 = c.request(call.GetConfiguration(key=["MeterValueSampleInterval"])).configuration_key
    c.send_raw("{not json")
    c.wait(lambda: errors_for(c, "-1"), what="CALLERROR for garbage")
    assert errors_for(c, "-1")[0][2] == "FormationViolation"
    m = raw_call(c, "u1", json.dumps([2, "u1", "MakeCoffee", {}]))
    assert m[0] == 4 and m[2] == "NotImplemented"
    m = raw_call(c, "u2", json.dumps([2, "u2", "ChangeConfiguration", [1, 2]]))
    assert m[2] == "FormationViolation"
    m = raw_call(c, "u3", json.dumps([2, "u3", "ChangeConfiguration",
                                      {"key": "MeterValueSampleInterval", "value": 5}]))
    assert m[2] == "TypeConstraintViolation"
    m = raw_call(c, "u4", json.dumps([2, "u4", "RemoteStopTransaction", {}]))
    assert m[2] == "OccurenceConstraintViolation"
    m = raw_call(c, "u5", json.dumps([2, "u5", "Reset", {"type": "Sideways"}]))
    assert m[2] == "PropertyConstraintViolation"
    m = raw_call(c, "u6", json.dumps([2, "u6", "GetConfiguration"]))  # no payload element
    assert m[2] == "FormationViolation"
    # nothing changed, the link is still up
    assert c.request(call.GetConfiguration(
        key=["MeterValueSampleInterval"])).configuration_key == cfg0
    assert b.read()["status"]["ocpp"]["conn"] == "connected"
    assert b.alive()


def test_invalid_json_frames_get_formation_violation_and_change_nothing(env):
    """One strict JSON reading for OCPP frames (issue 12 item 4): MicroPython's json.loads
    would take a trailing comma or a duplicate key; the charge point answers FormationViolation
    to the CALL whose id it can still read, acts on none of them, and drops a broken answer."""
    c, b = env
    key = "MeterValueSampleInterval"
    cfg0 = c.request(call.GetConfiguration(key=[key])).configuration_key
    old = cfg0[0]["value"]
    new = "7" if old != "7" else "8"
    frames = {
        "tc1": '[2,"tc1","ChangeConfiguration",{"key":"%s","value":"%s"},]' % (key, new),
        "tc2": '[2,"tc2","ChangeConfiguration",{"key":"%s","value":"%s",}]' % (key, new),
        "tc3": '[2,"tc3","ChangeConfiguration",{"key":"%s","value":"%s","value":"%s"}]' % (
            key, new, new),
        "tc4": '[2,"tc4","ChangeConfiguration",{"key":"%s","value":"%s"}] x' % (key, new),
    }
    for uid, text in frames.items():
        m = raw_call(c, uid, text)
        assert m[0] == 4 and m[2] == "FormationViolation", (uid, m)
        assert m[3].startswith("invalid JSON"), m
    # a broken CALLRESULT has nobody to answer: dropped, no CALLERROR for it
    c.send_raw('[3,"tc5",{"status":"Accepted",}]')
    m = raw_call(c, "tc6", '[2,"tc6","GetConfiguration",{"key":["%s"]}]' % key)  # in order
    assert m[0] == 3 and m[2]["configurationKey"][0]["value"] == old
    assert errors_for(c, "tc5") == []
    assert c.request(call.GetConfiguration(key=[key])).configuration_key == cfg0
    assert b.read()["status"]["ocpp"]["conn"] == "connected"
    assert b.alive()
    assert any(e["type"] == "ocpp_bad_json" for e in b.events()), "logged"


def test_huge_frame_closes_1009_and_reconnects(env):
    c, b = env
    n = c.connections
    c.send_raw(json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "A" * 100000}]))
    c.wait(lambda: c.connections > n, timeout=30, what="reconnect after 1009")
    c.wait(lambda: b.read()["status"]["ocpp"]["conn"] == "connected", what="connected")
    assert b.alive()


def test_csms_that_never_answers_and_fault_latency(env):
    c, b = env
    baseline(b)
    for k, v in (("TransactionMessageRetryInterval", "1"), ("TransactionMessageAttempts", "5")):
        assert c.request(call.ChangeConfiguration(key=k, value=v)).status == "Accepted"
    c.answer = False  # from now on the CSMS swallows everything
    try:
        n = len(c.starts)
        charge(b)  # free charging: a transaction starts, its StartTransaction gets no answer
        c.wait(lambda: c.actions("StartTransaction"), what="StartTransaction sent")
        time.sleep(2.5)  # > ocpp_timeout_s: the call timed out, the loop went on
        st = b.read()["status"]
        assert st["contactor"] and st["ocpp"]["queue"] >= 1
        lat = trigger(b, plugged=False)
        assert lat < LIMIT_MS, lat
        assert len(c.starts) == n
    finally:
        c.answer = True
    # answers again: the queued transaction is delivered (the retry uses the same message id)
    c.wait(lambda: c.stops, timeout=120, what="stop delivered after retries")
    uids = [m[0] for m in c.actions("StartTransaction")]
    assert len(set(uids)) == 1
    assert c.schema_errors == []
