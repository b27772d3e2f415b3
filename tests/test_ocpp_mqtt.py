"""OCPP and MQTT on one wallbox (docs/ocpp.md "Pointing the wallbox at a CSMS"): both links
up, a transaction reported to the CSMS and its session record to the MQTT backend, and the
MQTT current limit and the OCPP profile are two claims - the lower one binds."""
import json
import queue
import time

import paho.mqtt.client as mqtt
from ocpp.v16 import call

from broker import broker_factory  # noqa: F401  (fixture: a real mosquitto)
from csms import Csms
from e2e import FAST, SimBench, baseline, charge


def test_ocpp_and_mqtt_side_by_side(tmp_path, broker_factory):  # noqa: F811
    br = broker_factory()
    got = queue.Queue()
    peer = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="backend")
    peer.on_message = lambda c, u, m: got.put((m.topic, m.payload.decode()))
    peer.connect("127.0.0.1", br.port)
    peer.subscribe("wallbox/wb1/#", 1)
    peer.loop_start()
    c = Csms().start()
    b = SimBench(data_dir=str(tmp_path), config=dict(
        FAST, ocpp_url=c.url, mqtt_host="127.0.0.1", mqtt_port=br.port, max_current_a=16))
    try:
        c.wait(lambda: c.statuses(0), what="OCPP boot")
        b.wait_for(lambda r: r["status"]["link"].startswith("connected"), timeout=15,
                   what="MQTT connected")
        baseline(b)
        charge(b)
        c.wait(lambda: c.starts, what="StartTransaction")
        txid = max(c.starts)
        peer.publish("wallbox/wb1/set/current", "12", 1)
        b.wait_for(lambda r: r["status"]["allowed_a"] == 12.0, timeout=10, what="MQTT 12 A")
        prof = {"chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative", "transactionId": txid,
                "chargingSchedule": {"chargingRateUnit": "A",
                                     "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8}]}}
        assert c.request(call.SetChargingProfile(connector_id=1,
                                                 cs_charging_profiles=prof)).status == "Accepted"
        b.wait_for(lambda r: r["status"]["allowed_a"] == 8.0, timeout=10, what="OCPP 8 A")
        peer.publish("wallbox/wb1/set/current", "6", 1)
        b.wait_for(lambda r: r["status"]["allowed_a"] == 6.0, timeout=10, what="MQTT 6 A")
        st = b.read()["status"]
        assert st["ocpp"]["conn"] == "connected" and st["ocpp"]["tx"] == txid
        b.set(plugged=False)
        c.wait(lambda: txid in c.stops, what="StopTransaction")
        deadline = time.time() + 15
        session = None
        while time.time() < deadline and session is None:
            try:
                t, p = got.get(timeout=1)
            except queue.Empty:
                continue
            if t == "wallbox/wb1/session":
                session = json.loads(p)
        assert session is not None and session["reason"] == "unplug"
        assert c.schema_errors == []
    finally:
        peer.loop_stop()
        b.close()
        c.stop()
