"""A session is on flash before it is reported closed, and status() shows the limits MQTT
shows (issue 12 item 8). Each test kills its own firmware process (SIGKILL = power cut:
nothing is flushed)."""
import json
import os
import signal
import sys
import time

import pytest

from broker import Broker, mosquitto_bin
from e2e import FAST, SimBench, baseline, charge

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def _reported_closed(b, sid, timeout=5):
    """Poll the API until session `sid` shows as closed; return its record at once."""
    end = time.time() + timeout
    while True:
        for r in b.sessions()["sessions"]:
            if r["sid"] == sid:
                return r
        assert time.time() < end, "session %s never reported closed" % sid
        time.sleep(0.002)


def _open_sid(b):
    """The open session's sid, once the sessions task has opened it."""
    b.wait_for(lambda r: b.sessions()["open"] is not None, what="session open")
    return b.sessions()["open"]["sid"]


def test_power_cut_right_after_unplug(tmp_path):
    b = SimBench(data_dir=str(tmp_path), config=FAST)
    try:
        baseline(b)
        for n in range(3):
            # A charged session and a short one that never drew energy (B only).
            if n == 1:
                b.set(s2=False)
                b.set(plugged=True)
                b.wait_state("B")
            else:
                b.set(s2=True)
                charge(b)
                time.sleep(0.3)
            sid = _open_sid(b)
            b.set(plugged=False)
            rec = _reported_closed(b, sid)
            b.kill()  # the moment it is reported: nothing more gets flushed
            b.start()
            s = b.sessions()
            recs = {r["sid"]: r for r in s["sessions"]}
            assert recs.get(sid) == rec, (sid, rec, s["sessions"][-3:])
            assert rec["reason"] == "unplug"
            assert s["open"] is None
            assert "session_recovered" not in [e["type"] for e in b.events()]
            baseline(b)
    finally:
        b.close()


def test_power_cut_in_a_short_session_leaves_a_record(tmp_path):
    """The open session is on flash from the plug-in: a cut before any energy checkpoint
    still gives a power_loss record (it used to be lost under 100 Wh)."""
    b = SimBench(data_dir=str(tmp_path), config=FAST)
    try:
        baseline(b)
        charge(b)
        sid = _open_sid(b)
        time.sleep(0.3)
        b.kill()
        b.start()
        recs = {r["sid"]: r for r in b.sessions()["sessions"]}
        assert recs[sid]["reason"] == "power_loss"
    finally:
        b.close()


def test_status_limit_is_the_mqtt_limit(tmp_path):
    """No backend limit set: status() shows the installation's maximum (was: 80 A, the
    'no claim' value), the same as MQTT current_limit and json/status."""
    if not mosquitto_bin():
        pytest.skip("mosquitto not installed")
    import paho.mqtt.client as mqtt
    br = Broker(str(tmp_path)).start()
    got = {}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="limits")
    c.on_message = lambda cl, u, m: got.__setitem__(m.topic, bytes(m.payload))
    c.on_connect = lambda cl, u, f, rc, p=None: cl.subscribe("wallbox/wb1/#", 1)
    c.connect("127.0.0.1", br.port, 30)
    c.loop_start()
    (tmp_path / "fw").mkdir()
    b = SimBench(data_dir=str(tmp_path / "fw"),
                 config=dict(FAST, max_current_a=20, mqtt_host="127.0.0.1", mqtt_port=br.port))
    try:
        b.wait_for(lambda r: r["status"]["link"].startswith("connected;"), what="link up")
        end = time.time() + 10
        while not ("wallbox/wb1/current_limit" in got and "wallbox/wb1/json/status" in got):
            assert time.time() < end, "no limit published: %s" % sorted(got)
            time.sleep(0.05)
        assert b.status()["limit_a"] == 20
        assert float(got["wallbox/wb1/current_limit"]) == 20
        assert json.loads(got["wallbox/wb1/json/status"])["limit_a"] == 20
    finally:
        b.close()
        c.loop_stop()
        c.disconnect()
        br.stop(signal.SIGKILL)
