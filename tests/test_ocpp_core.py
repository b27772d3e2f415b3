"""OCPP 1.6J Core profile: the unmodified firmware (unix port, sim board) against a CSMS built
with the mobilityhouse `ocpp` library (tests/csms.py), which validates every message against
the OCPP JSON schemas. Scenarios from the OCPP 1.6 use cases (§4, §5) and EVerest's
tests/ocpp_tests: boot Pending then Accepted, free charging stopped by unplug, remote start with
ConnectionTimeOut expiring, remote start and stop, local authorization, an EV fault stopping
the transaction, the configuration keys, availability, triggers and reset."""
import time

import pytest
from ocpp.v16 import call

from csms import Csms
from e2e import FAST, SimBench, baseline, charge

TAG = "TAG-0001"


@pytest.fixture(scope="module")
def env():
    c = Csms(boot=("Pending", "Accepted"), interval=1).start()
    c.tags[TAG] = "Accepted"
    c.tags["BLOCKED1"] = "Blocked"
    b = SimBench(config=dict(FAST, ocpp_url=c.url, ocpp_timeout_s=5, require_auth=True))
    try:
        c.wait(lambda: c.statuses(0), what="boot accepted + status")
        r = c.request(call.ChangeConfiguration(key="MeterValueSampleInterval", value="1"))
        assert r.status == "Accepted"
        yield c, b
    finally:
        b.close()
        c.stop()


def ocpp(b):
    return b.read()["status"]["ocpp"]


def idle(c, b):
    """Unplugged, no transaction, every queued message delivered."""
    baseline(b)
    b.wait_for(lambda r: r["status"]["ocpp"]["tx"] is None and r["status"]["ocpp"]["queue"] == 0,
               timeout=15, what="ocpp idle")


def test_boot_pending_then_accepted(env):
    c, b = env
    boots = c.actions("BootNotification")
    assert len(boots) >= 2  # Pending, then Accepted after the 1 s interval
    # nothing but BootNotification before the Accepted (§4.2: Pending)
    first_other = next(i for i, m in enumerate(c.msgs) if m[1] != "BootNotification")
    assert all(m[1] == "BootNotification" for m in c.msgs[:first_other])
    assert c.paths[0] == "/ocpp/wb1"  # the charge point id ends the URL
    assert "Available" in c.statuses(1) and c.statuses(0) == ["Available"]
    # Heartbeat interval from the BootNotification.conf (1 s here, clamped to the
    # HeartbeatInterval key's 10 s minimum)
    c.wait(lambda: c.actions("Heartbeat"), timeout=25, what="heartbeat")
    assert c.schema_errors == []


def test_remote_start_then_unplug_stops_with_meter_values(env):
    c, b = env
    idle(c, b)
    r = c.request(call.RemoteStartTransaction(id_tag=TAG, connector_id=1))
    assert r.status == "Accepted"
    n0 = len(c.starts)
    charge(b)
    c.wait(lambda: len(c.starts) > n0, what="StartTransaction")
    txid = max(c.starts)
    assert c.starts[txid]["id_tag"] == TAG
    c.wait(lambda: len([m for m in c.meter_values if m[1] == txid]) >= 2, what="MeterValues")
    b.set(plugged=False)
    c.wait(lambda: txid in c.stops, what="StopTransaction")
    stop = list(c.stops[txid].values())[0]
    assert stop["reason"] == "EVDisconnected"
    assert stop["meter_stop"] >= c.starts[txid]["meter_start"]
    mv = [m for m in c.meter_values if m[1] == txid]
    regs = [int(s["value"]) for m in mv for v in m[2] for s in v["sampled_value"]
            if s.get("measurand") == "Energy.Active.Import.Register"]
    assert regs == sorted(regs) and c.starts[txid]["meter_start"] <= regs[0] <= stop["meter_stop"]
    kinds = {s.get("measurand") for m in mv for v in m[2] for s in v["sampled_value"]}
    assert {"Energy.Active.Import.Register", "Power.Active.Import", "Current.Import"} <= kinds
    td = stop["transaction_data"]
    assert td[0]["sampled_value"][0]["context"] == "Transaction.Begin"
    assert td[1]["sampled_value"][0]["value"] == str(stop["meter_stop"])
    sts = c.statuses(1)
    assert "Charging" in sts and sts[-1] == "Available"
    assert c.schema_errors == []


def test_remote_start_connection_timeout_expires(env):
    c, b = env
    idle(c, b)
    assert c.request(call.ChangeConfiguration(key="ConnectionTimeOut", value="5")).status == "Accepted"
    n0 = len(c.starts)
    assert c.request(call.RemoteStartTransaction(id_tag=TAG)).status == "Accepted"
    b.wait_for(lambda r: r["status"]["authorized"], timeout=5, what="authorized")
    b.wait_for(lambda r: not r["status"]["authorized"], timeout=15, what="authorization lapsed")
    b.set(plugged=True)  # too late: no transaction, no power
    time.sleep(1.5)
    r = b.read()
    assert not r["status"]["contactor"] and len(c.starts) == n0
    assert r["status"]["ocpp"]["status"][0] == "Preparing"
    c.request(call.ChangeConfiguration(key="ConnectionTimeOut", value="60"))


def test_local_authorization_and_remote_stop(env):
    c, b = env
    idle(c, b)
    b.set(plugged=True)
    time.sleep(0.5)
    assert not b.read()["status"]["contactor"]  # require_auth: nothing without a tag
    ok = b.cmd("authorize", "BLOCKED1")
    time.sleep(1.0)
    assert not b.read()["status"]["contactor"]  # the CSMS said Blocked
    n0 = len(c.starts)
    b.cmd("authorize", TAG)  # Authorize.req -> Accepted -> StartTransaction
    c.wait(lambda: [m for m in c.actions("Authorize") if m[2]["idTag"] == TAG], what="Authorize")
    b.wait_for(lambda r: r["status"]["contactor"], timeout=10, what="charging")
    c.wait(lambda: len(c.starts) > n0, what="start")
    txid = max(c.starts)
    b.wait_for(lambda r: r["status"]["ocpp"]["tx"] == txid, timeout=10, what="tx id known")
    assert c.request(call.RemoteStopTransaction(transaction_id=txid + 77)).status == "Rejected"
    assert c.request(call.RemoteStopTransaction(transaction_id=txid)).status == "Accepted"
    c.wait(lambda: txid in c.stops, what="stop")
    assert list(c.stops[txid].values())[0]["reason"] == "Remote"
    b.wait_for(lambda r: not r["status"]["contactor"], timeout=10, what="contactor open")
    time.sleep(1.0)
    assert not b.read()["status"]["contactor"]  # stays off: no energy outside a transaction
    assert ok is not None
    c.wait(lambda: c.statuses(1)[-1] == "Finishing", what="Finishing")


def test_ev_fault_stops_the_transaction(env):
    c, b = env
    idle(c, b)
    n0 = len(c.starts)
    c.request(call.RemoteStartTransaction(id_tag=TAG))
    charge(b)
    c.wait(lambda: len(c.starts) > n0, what="start")
    txid = max(c.starts)
    b.set(diode=False)  # the EV's diode fails: state F, contactor open
    c.wait(lambda: txid in c.stops, what="stop")
    assert list(c.stops[txid].values())[0]["reason"] == "Other"
    st = c.wait(lambda: [m[2] for m in c.actions("StatusNotification")
                         if m[2]["status"] == "Faulted"], what="Faulted")
    assert st[-1]["errorCode"] == "EVCommunicationError"
    b.set(diode=True, plugged=False)


def test_configuration_keys(env):
    c, b = env
    r = c.request(call.GetConfiguration(key=["HeartbeatInterval", "NumberOfConnectors",
                                             "NoSuchKey", "AuthorizationKey"]))
    keys = {k["key"]: k for k in r.configuration_key}
    assert keys["NumberOfConnectors"] == {"key": "NumberOfConnectors", "readonly": True,
                                          "value": "1"}
    assert set(r.unknown_key) == {"NoSuchKey", "AuthorizationKey"}  # write-only: never read
    everything = c.request(call.GetConfiguration())
    names = {k["key"] for k in everything.configuration_key}
    assert {"MeterValueSampleInterval", "TransactionMessageAttempts",
            "SupportedFeatureProfiles"} <= names
    ch = lambda k, v: c.request(call.ChangeConfiguration(key=k, value=v)).status  # noqa: E731
    assert ch("NumberOfConnectors", "2") == "Rejected"  # read-only
    assert ch("NoSuchKey", "1") == "NotSupported"
    assert ch("HeartbeatInterval", "abc") == "Rejected"
    assert ch("MeterValuesSampledData", "Energy.Active.Import.Register,Bogus") == "Rejected"
    assert ch("AuthorizationKey", "short") == "Rejected"  # config.check: 16..40
    assert ch("AuthorizationKey", "0123456789abcdef0123") == "RebootRequired"
    assert b.config_get()["ocpp_password"] == "***"  # a secret: never shown
    assert ch("HeartbeatInterval", "30") == "Accepted"
    r = c.request(call.GetConfiguration(key=["HeartbeatInterval"]))
    assert r.configuration_key[0]["value"] == "30"
    assert c.schema_errors == []


def test_availability_trigger_clear_cache_data_transfer_unlock(env):
    c, b = env
    idle(c, b)
    assert c.request(call.ChangeAvailability(connector_id=1, type="Inoperative")).status == "Accepted"
    c.wait(lambda: c.statuses(1)[-1] == "Unavailable", what="Unavailable")
    assert c.request(call.RemoteStartTransaction(id_tag=TAG)).status == "Rejected"
    assert c.request(call.ChangeAvailability(connector_id=0, type="Operative")).status == "Accepted"
    c.wait(lambda: c.statuses(1)[-1] == "Available", what="Available again")
    n = len(c.actions("StatusNotification"))
    assert c.request(call.TriggerMessage(requested_message="StatusNotification",
                                         connector_id=1)).status == "Accepted"
    c.wait(lambda: len(c.actions("StatusNotification")) > n, what="triggered status")
    n = len(c.actions("MeterValues"))
    assert c.request(call.TriggerMessage(requested_message="MeterValues")).status == "Accepted"
    c.wait(lambda: len(c.actions("MeterValues")) > n, what="triggered meter values")
    assert c.request(call.ClearCache()).status == "Accepted"
    assert c.request(call.DataTransfer(vendor_id="com.example", message_id="x",
                                       data="{}")).status == "UnknownVendorId"
    assert c.request(call.UnlockConnector(connector_id=1)).status == "NotSupported"  # no lock
    assert c.schema_errors == []
