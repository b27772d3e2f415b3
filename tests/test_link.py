"""firmware/links/mqtt_link.py end to end: the whole firmware on the sim bench (tools/simbench.py)
against a real mosquitto, paho-mqtt as the backend / Home Assistant / evcc peer."""
import json
import os
import signal
import sys
import threading
import time

import pytest

from broker import Broker, FakeBroker, dead_port, mosquitto_bin, tls_files  # noqa: F401

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from simbench import SimBench  # noqa: E402

B = "wallbox/wb1/"
FAST = {"min_off_s": 0, "ev_off_s": 0, "fault_retry_s": 5}
STATES = ["A", "B1", "B2", "C1", "C2", "D1", "D2", "E", "F"]
GAP_BOUND_MS = 100  # generous correctness bound, not a performance target

pytestmark = pytest.mark.skipif(not mosquitto_bin(), reason="mosquitto not installed")


class Backend:
    """paho-mqtt peer that records every message (topic, payload, retain, qos)."""

    def __init__(self, port, topics=("wallbox/#", "homeassistant/#"), client_id=None,
                 user=None, password=None, clean=True):
        import paho.mqtt.client as mqtt
        self.msgs = []
        self.cv = threading.Condition()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=client_id or "backend-%d" % id(self),
                             clean_session=clean)
        if user:
            self.c.username_pw_set(user, password)
        self.c.reconnect_delay_set(0.05, 0.3)
        self.topics = topics
        self._sub = threading.Event()
        self.c.on_message = self._on
        self.c.on_subscribe = lambda *a: self._sub.set()
        self.c.on_connect = lambda c, u, f, rc, p=None: [c.subscribe(t, 1) for t in topics]
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        assert self._sub.wait(5), "backend could not subscribe"

    def _on(self, c, u, m):
        with self.cv:
            self.msgs.append((m.topic, bytes(m.payload), m.retain, m.qos))
            self.cv.notify_all()

    def mark(self):
        with self.cv:
            return len(self.msgs)

    def find(self, topic, since=0):
        with self.cv:
            return [m for m in self.msgs[since:] if m[0] == topic]

    def wait(self, topic, pred=lambda p: True, since=0, timeout=6.0):
        """First message on topic after index `since` whose payload satisfies pred."""
        end = time.time() + timeout
        with self.cv:
            i = since
            while True:
                while i < len(self.msgs):
                    m = self.msgs[i]
                    i += 1
                    if m[0] == topic and pred(m[1]):
                        return m
                left = end - time.time()
                if left <= 0:
                    seen = [(t, p[:80]) for t, p, _, _ in self.msgs[since:]][-15:]
                    raise AssertionError("no %s matching in %.1fs; last: %s" % (topic, timeout, seen))
                self.cv.wait(left)

    def send(self, topic, payload, retain=False):
        self.c.publish(topic, payload, 1, retain).wait_for_publish(5)

    def command(self, sub, payload, timeout=6.0):
        """Publish on wallbox/wb1/<sub>; return the JSON reply to it. A "busy" reply (the
        rate rule of docs/mqtt.md) means not run: sent again, as a backend should."""
        for _ in range(50):
            k = self.mark()
            self.send(B + sub, payload)
            rep = json.loads(self.wait(B + "reply", since=k, timeout=timeout)[1])
            if not rep.get("busy"):
                return rep
            time.sleep(0.15)
        raise AssertionError("busy for 50 tries: %s" % rep)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def cfg(port, **kw):
    c = dict(FAST, mqtt_host="127.0.0.1", mqtt_port=port)
    c.update(kw)
    return c


def wait_link(b, timeout=10):
    b.wait_for(lambda r: r["status"]["link"].startswith("connected;"), timeout=timeout, what="link up")


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One broker, one firmware (phase switch fitted) and one backend for the module."""
    d = tmp_path_factory.mktemp("link")
    br = Broker(d).start()
    be = Backend(br.port)
    bench = SimBench(config=cfg(br.port, phase_switch=True))
    wait_link(bench)
    be.wait(B + "status", lambda p: p == b"online")
    yield br, be, bench
    bench.close()
    be.close()
    br.stop(signal.SIGKILL)


def charge(b, timeout=10):
    b.plug()
    b.wait_for(lambda r: r["status"]["contactor"] and r["world"]["draw_ma"] > 0,
               timeout=timeout, what="charging")


def unplug(b):
    b.unplug()
    b.wait_for(lambda r: r["status"]["state"] == "A", what="A")


# ---- status, discovery, telemetry -----------------------------------------------------

def test_status_state_and_telemetry(shared):
    br, be, b = shared
    for t, want in (("status", b"online"), ("state", b"A"), ("enabled", b"true"),
                    ("current_limit", b"16"), ("phases", b"3")):
        assert be.wait(B + t)[1] == want, t
    # retained: a late subscriber gets them at once
    late = Backend(br.port, topics=(B + "+", B + "json/status"))
    late.wait(B + "json/status")
    late.wait(B + "phases")
    got = {m[0]: m for m in late.msgs}
    late.close()
    for t in ("status", "state", "enabled", "current_limit", "phases"):
        assert got[B + t][2] is True, "%s not retained" % t
    js = json.loads(be.wait(B + "json/status")[1])
    assert {"ts", "state", "enabled", "limit_a", "phases", "fault_code", "uptime_s", "fw"} <= set(js)
    tele = json.loads(be.wait(B + "telemetry")[1])
    assert set(tele) == {"ts", "power_w", "energy_kwh", "currents_a", "voltages_v", "temp_c",
                         "session_wh", "session_s"}
    assert len(tele["currents_a"]) == 3 and len(tele["voltages_v"]) == 3
    # while charging: telemetry faster than the 10 s idle period, with real numbers
    charge(b)
    k = be.mark()
    be.wait(B + "telemetry", lambda p: json.loads(p)["power_w"] > 1000, since=k, timeout=5)
    k = be.mark()
    be.wait(B + "telemetry", since=k, timeout=6.5)  # 5 s while charging, 10 s idle
    assert be.find(B + "state", since=0)[-1][1] == b"C2"
    unplug(b)
    be.wait(B + "state", lambda p: p == b"A", since=k)


def test_discovery_follows_ha_rules_and_is_resent_on_ha_online(shared):
    br, be, b = shared
    topic = "homeassistant/device/wallbox_wb1/config"
    m = be.wait(topic)
    assert m[3] == 1
    d = json.loads(m[1])
    assert d["dev"]["ids"] == ["wallbox_wb1"] and d["dev"]["name"] and d["o"]["name"]
    assert d["avty_t"] == B + "status"
    cm = d["cmps"]
    for key, c in cm.items():
        for k in ("p", "name", "def_ent_id", "uniq_id"):
            assert c.get(k), (key, k)
        assert c["def_ent_id"].startswith(c["p"] + ".wallbox_wb1_")
        assert "object_id" not in c
        if c.get("dev_cla") == "energy":
            assert c["stat_cla"] in ("total_increasing", "total")
        if c.get("dev_cla") in ("power", "current", "voltage", "temperature") and c["p"] == "sensor":
            assert c["stat_cla"] == "measurement"
    assert len({c["uniq_id"] for c in cm.values()}) == len(cm)
    assert cm["energy"]["unit_of_meas"] == "kWh" and cm["energy"]["stat_cla"] == "total_increasing"
    assert cm["power"]["unit_of_meas"] == "W"
    assert cm["state"]["dev_cla"] == "enum" and cm["state"]["ops"] == STATES
    assert cm["enable"]["cmd_t"] == B + "set/enable" and cm["enable"]["stat_t"] == B + "enabled"
    assert cm["current_limit"]["cmd_t"] == B + "set/current"
    assert cm["phases"]["p"] == "select" and cm["phases"]["ops"] == ["1", "3"]
    assert cm["reset_fault"]["cmd_t"] == B + "cmd/reset_fault"
    # retained
    late = Backend(br.port, topics=(topic,))
    assert late.wait(topic)[2] is True
    late.close()
    # HA's birth message -> discovery again
    k = be.mark()
    be.send("homeassistant/status", b"online")
    assert json.loads(be.wait(topic, since=k)[1]) == d


# ---- commands -------------------------------------------------------------------------

def test_set_current_variants_echo_and_duty(shared):
    br, be, b = shared
    charge(b)
    for payload, amps, echo in ((b"10", 10, b"10"), (b"16.0", 16, b"16"), (b"10.5", 10.5, b"10.5"),
                                (b"6", 6, b"6"), (b'{"req":"r1","value":12}', 12, b"12")):
        k = be.mark()
        rep = be.command("set/current", payload)
        assert rep["ok"] is True and rep["value"] == amps and rep["err"] is None, rep
        assert rep["topic"] == "set/current"
        if payload.startswith(b"{"):
            assert rep["req"] == "r1"
        be.wait(B + "current_limit", lambda p: p == echo, since=k)
        duty = round(amps / 0.6 * 10)  # IEC 61851: duty % = A / 0.6 (6..51 A)
        r = b.wait_for(lambda r: abs(r["status"]["duty_pm"] - duty) <= 1, what="duty %d" % duty)
        assert r["world"]["duty_pm"] == r["status"]["duty_pm"]
    rep = be.command("set/current", b"16")
    assert rep["ok"]


def test_set_enable_false_while_charging_goes_c1_then_opens(shared):
    br, be, b = shared
    charge(b)
    for off, on in ((b"false", b"true"), (b"0", b"1"), (b"OFF", b"ON")):
        k = be.mark()
        rep = be.command("set/enable", off)
        assert rep["ok"] is True and rep["value"] is False, rep
        be.wait(B + "enabled", lambda p: p == b"false", since=k)
        be.wait(B + "state", lambda p: p == b"C1", since=k)
        b.wait_for(lambda r: not r["status"]["contactor"], timeout=8, what="contactor open")
        assert b.status()["enabled"] is False
        k = be.mark()
        rep = be.command("set/enable", on)
        assert rep["ok"] is True and rep["value"] is True
        be.wait(B + "enabled", lambda p: p == b"true", since=k)
        charge(b)
    unplug(b)


def test_phases_and_cmds(shared):
    br, be, b = shared
    k = be.mark()
    rep = be.command("set/phases", b"1")
    assert rep["ok"] and rep["value"] == 1
    be.wait(B + "phases", lambda p: p == b"1", since=k)
    rep = be.command("set/phases", b"3")
    assert rep["ok"] and rep["value"] == 3
    be.wait(B + "phases", lambda p: p == b"3", since=k)
    rep = be.command("cmd/reset_fault", b"{}")
    assert rep["ok"] is True and rep["topic"] == "cmd/reset_fault"
    rep = be.command("cmd/authorize", b"")
    assert rep["ok"] is True
    k = be.mark()
    rep = be.command("cmd/status", b'{"req":"poll-7"}')
    assert rep["ok"] and rep["req"] == "poll-7"
    be.wait(B + "json/status", since=k)
    be.wait(B + "state", since=k)


def test_fault_reset_over_mqtt_and_event(shared):
    br, be, b = shared
    charge(b)
    k = be.mark()
    b.rcd_fault(True)
    ev = be.wait(B + "event", lambda p: json.loads(p)["type"] == "fault", since=k)
    assert "rcd_trip" in json.loads(ev[1])["detail"]
    be.wait(B + "state", lambda p: p == b"F", since=k)
    js = json.loads(be.wait(B + "json/status", lambda p: json.loads(p)["fault_code"] != 0, since=k)[1])
    assert "rcd_trip" in js["faults"]
    b.rcd_fault(False)
    rep = be.command("cmd/reset_fault", b"{}")
    assert rep["ok"] and "rcd_trip" in rep["value"]
    be.wait(B + "event", lambda p: json.loads(p)["type"] == "fault_clear", since=k)
    b.wait_for(lambda r: not r["status"]["faults"], what="faults cleared")
    unplug(b)


BAD = [("set/current", b"abc"), ("set/current", b"5"), ("set/current", b"17"), ("set/current", b""),
       ("set/current", b"nan"), ("set/current", b"1e400"), ("set/current", b"\xff\xfe"),
       ("set/current", b"true"), ("set/current", b"9" * 100), ("set/current", b"{bad json"),
       ("set/current", b'{"value": [16]}'), ("set/enable", b"maybe"), ("set/enable", b"2"),
       ("set/enable", b""), ("set/enable", b"{}"), ("set/phases", b"2"), ("set/phases", b"3.0"),
       ("set/phases", b'{"value": 3.0}'), ("set/phases", b'{"value": true}'),
       ("set/voltage", b"230"), ("cmd/reboot", b"{}"), ("cmd/status", b'{"req": 5}'),
       # strict input (issue 12): negatives, values that would round to a pause, lax JSON,
       # invalid UTF-8 (surrogate, overlong)
       ("set/current", b"-0.01"), ("set/current", b"-0"), ("set/current", b"0.04"),
       ("set/current", b'{"value": -0.01}'), ("set/current", b'{"value": 10,}'),
       ("set/current", b'{"value": 10, "value": 12}'), ("set/current", b'{"value": NaN}'),
       ("set/current", b"\xed\xa0\x80"), ("set/current", b"1\xc0\xaf"),
       ("cmd/status", b'{"req": "\\ud800"}'), ("set/enable", b'{"value": true,}')]


def _snapshot(b):
    s = b.status()
    return {k: s[k] for k in ("state", "enabled", "limit_a", "phases", "faults", "contactor",
                              "authorized", "duty_pm")}


def test_bad_payloads_error_reply_no_change(shared):
    br, be, b = shared
    before = _snapshot(b)
    k = be.mark()
    for sub, payload in BAD:
        rep = be.command(sub, payload)
        assert rep["ok"] is False and rep["err"] and rep["value"] is None, (sub, payload, rep)
    assert _snapshot(b) == before
    # each reply goes out before its event: wait for the last event, don't race it
    end = time.time() + 6
    while True:
        rej = [json.loads(m[1]) for m in be.find(B + "event", since=k)]
        n = sum(1 for e in rej if e["type"] == "cmd_rejected")
        if n >= len(BAD) or time.time() > end:
            break
        time.sleep(0.05)
    assert n == len(BAD)
    assert b.status()["link"].startswith("connected;")


def test_property_hostile_payloads_change_nothing(shared):
    from hypothesis import given, settings, strategies as st
    br, be, b = shared
    be.command("set/current", b"16")
    be.command("set/enable", b"true")
    be.command("set/phases", b"3")
    base = _snapshot(b)
    subs = ["set/current", "set/enable", "set/phases", "cmd/reset_fault", "cmd/authorize",
            "cmd/status", "set/x", "cmd/y"]
    text = st.one_of(
        st.binary(max_size=80), st.text(max_size=40).map(lambda s: s.encode()),
        st.sampled_from([b"-6", b"0x10", b"1_6", b"  ", b"\x00", b"16\x00", b"6e0", b"inf",
                         b"-inf", b"1e-400", b"[]", b"{}", b"null", b'{"value":null}',
                         b'{"value":"16","req":"' + b"x" * 40 + b'"}', b"\xc3\x28", b"ON ",
                         b'{"value":1e999}', b'{"value":{"value":16}}', b"3 ", b" 1"]),
        st.floats(allow_nan=True, allow_infinity=True).map(lambda f: repr(f).encode()),
        st.integers(-10 ** 20, 10 ** 20).map(lambda i: str(i).encode()))

    @settings(max_examples=60, deadline=None)
    @given(st.sampled_from(subs), text)
    def example(sub, payload):
        rep = be.command(sub, payload)
        now = _snapshot(b)
        if not rep["ok"]:
            assert rep["err"] and now == base, (sub, payload, rep, now)
            return
        # accepted: it must be a well-formed value the topic allows, echoed as applied
        if sub == "set/current":
            assert rep["value"] == 0 or 6 <= rep["value"] <= 16, rep
            assert now["limit_a"] == rep["value"]
            assert be.command("set/current", b"16")["ok"]
        elif sub == "set/enable":
            assert rep["value"] in (True, False) and now["enabled"] == rep["value"]
            assert be.command("set/enable", b"true")["ok"]
        elif sub == "set/phases":
            assert rep["value"] in (1, 3)
            assert be.command("set/phases", b"3")["ok"]
        else:
            assert sub.startswith("cmd/") and now == base, (sub, payload, now)
        b.wait_for(lambda r: _snapshot(b) == base, timeout=3, what="back to base")

    example()
    assert b.alive() and b.status()["link"].startswith("connected;")
    assert _snapshot(b) == base


def test_fallback_current_when_backend_silent(shared):
    br, be, b = shared
    assert be.command("set/current", b"16")["ok"]
    k = be.mark()
    b.config_set("fallback_current_a", 8)
    b.config_set("fallback_timeout_s", 1)
    try:
        be.wait(B + "current_limit", lambda p: p == b"8", since=k, timeout=4)
        assert b.status()["limit_a"] == 8
        assert json.loads(be.wait(B + "json/status", lambda p: json.loads(p)["fallback"],
                                  since=k)[1])["limit_a"] == 8
        be.wait(B + "event", lambda p: json.loads(p)["type"] == "fallback", since=k)
        # any command is a sign of life: back to the last commanded current
        k = be.mark()
        assert be.command("cmd/status", b"")["ok"]
        be.wait(B + "current_limit", lambda p: p == b"16", since=k, timeout=3)
    finally:
        b.config_set("fallback_timeout_s", 0)
    assert be.command("set/current", b"16")["ok"]


# ---- broker outages, reboots, delivery ---------------------------------------------------

def _persistent_broker(d):
    br = Broker(d)
    with open(br.conf) as f:
        conf = f.read().replace("persistence false", "persistence true\npersistence_location %s/" % d)
    with open(br.conf, "w") as f:
        f.write(conf)
    return br.start()


def test_sessions_delivered_across_broker_restart_and_kill9(tmp_path):
    br = _persistent_broker(tmp_path)
    # the backend keeps a persistent session: the broker queues records for it
    be = Backend(br.port, topics=(B + "session", B + "status"), client_id="maker-backend",
                 clean=False)
    b = SimBench(config=cfg(br.port))
    try:
        wait_link(b)
        charge(b)
        b.unplug()
        be.wait(B + "session", timeout=5)
        # broker dies mid-session; the session ends while it is down
        charge(b)
        br.stop()  # SIGTERM: mosquitto saves the backend's session
        b.unplug()
        b.wait_for(lambda r: r["status"]["state"] == "A", what="A")
        time.sleep(0.3)
        assert len(b.sessions()["outbox"]) == 1
        br.start()
        wait_link(b, timeout=15)
        b.wait_for(lambda r: not b.sessions()["outbox"], timeout=5, what="outbox empty")
        # a record on the wire when the firmware is killed: broker frozen, no PUBACK
        b.plug()
        b.wait_state("B")
        br.freeze()
        b.unplug()
        time.sleep(0.8)  # record committed to flash, PUBLISH written, never acked
        assert len(b.sessions()["outbox"]) == 1
        b.kill()
        os.kill(br.proc.pid, signal.SIGCONT)
        # and one more ended while the firmware was off: kill -9 with the broker down
        br.stop()
        b.start()
        b.plug()
        b.wait_state("B")
        b.unplug()
        b.wait_for(lambda r: r["status"]["state"] == "A", what="A")
        time.sleep(0.5)
        b.kill()
        br.start()
        b.start()
        wait_link(b, timeout=15)
        b.wait_for(lambda r: not b.sessions()["outbox"], timeout=8, what="outbox empty")
        sent = {s["sid"] for s in b.sessions()["sessions"]}
        assert len(sent) == 4
        end = time.time() + 5
        while {json.loads(m[1])["sid"] for m in be.find(B + "session")} != sent:
            assert time.time() < end, (sent, be.find(B + "session"))
            time.sleep(0.1)
        by_sid = {}
        for m in be.find(B + "session"):
            r = json.loads(m[1])
            assert by_sid.setdefault(r["sid"], m[1]) == m[1]  # a duplicate is the same record
        assert b.alive()
        last = Backend(br.port, topics=(B + "session/last",))
        assert json.loads(last.wait(B + "session/last")[1])["sid"] in sent
        last.close()
    finally:
        b.close()
        be.close()
        br.stop(signal.SIGKILL)


def test_clean_stop_publishes_offline_and_will_on_kill(tmp_path):
    br = Broker(tmp_path).start()
    be = Backend(br.port, topics=(B + "status",))
    b = SimBench(config=cfg(br.port))
    try:
        wait_link(b)
        be.wait(B + "status", lambda p: p == b"online")
        k = be.mark()
        b.stop()
        be.wait(B + "status", lambda p: p == b"offline", since=k, timeout=5)
        # the broker logs the DISCONNECT after it has forwarded "offline": give it a moment
        t_end = time.monotonic() + 10
        while "Client wallbox-wb1 disconnected." not in br.read_log() and time.monotonic() < t_end:
            time.sleep(0.1)
        assert "Client wallbox-wb1 disconnected." in br.read_log()
        b.start()
        be.wait(B + "status", lambda p: p == b"online", since=k)
        k = be.mark()
        b.kill()  # the will (keepalive 30 s, but the socket closes with the process)
        be.wait(B + "status", lambda p: p == b"offline", since=k, timeout=5)
    finally:
        b.close()
        be.close()
        br.stop(signal.SIGKILL)


def _loop_keeps_period(b, seconds=3.0):
    charge(b)
    b.reset_stats()
    time.sleep(seconds)
    s = b.stats()
    assert s["ticks"] > 0, s
    assert s["max_gap_ms"] < GAP_BOUND_MS, s
    assert b.contactor()
    return s


def test_silent_and_unreachable_broker_while_charging():
    fb = FakeBroker(lambda conn: time.sleep(60))  # accepts TCP, never answers
    hold = dead_port()
    try:
        for port in (fb.port, hold.getsockname()[1]):
            with SimBench(config=cfg(port)) as b:
                b.wait_for(lambda r: r["status"]["link"].startswith("connecting ("), what="tries")
                _loop_keeps_period(b)
                assert b.status()["link"].startswith("connecting")
        assert fb.accepted >= 1
    finally:
        fb.close()
        hold.close()


def test_tls_with_ca_file_and_no_reconnect_while_charging(tmp_path, tls_files):
    br = Broker(tmp_path, tls=tls_files).start()
    be = Backend(br.port)
    b = SimBench(config=cfg(br.tls_port, mqtt_host="localhost", mqtt_tls=True,
                            mqtt_ca=tls_files["ca_pem"]))
    try:
        wait_link(b)
        be.wait(B + "status", lambda p: p == b"online")
        assert be.command("set/current", b"10")["ok"]
        charge(b)
        br.stop(signal.SIGKILL)
        b.wait_for(lambda r: r["status"]["link"].startswith("waiting: contactor closed"), what="gate")
        br.start()
        time.sleep(1.5)  # a plain TCP link would be back by now; TLS must wait
        s = b.status()
        assert s["link"].startswith("waiting: contactor closed") and s["contactor"]
        b.unplug()
        wait_link(b, timeout=10)
    finally:
        b.close()
        be.close()
        br.stop(signal.SIGKILL)


def test_acl_denied_topic_retained_setpoint_and_no_secrets(tmp_path):
    pw = "Sup3r-s3cret-pw"
    acl = ("user wb\ntopic readwrite wallbox/wb1/#\ntopic read homeassistant/status\n"
           "user peer\ntopic readwrite #\n")  # discovery (homeassistant/...) denied
    br = Broker(tmp_path, users={"wb": pw, "peer": "p"}, acl=acl).start()
    be = Backend(br.port, topics=("#",), user="peer", password="p")
    be.send(B + "set/current", b"8", retain=True)  # the last setpoint, retained
    be.send(B + "cmd/reset_fault", b"{}", retain=True)  # never run
    b = SimBench(config=cfg(br.port, mqtt_user="wb", mqtt_password=pw))
    try:
        wait_link(b)
        be.wait(B + "current_limit", lambda p: p == b"8")
        assert b.status()["limit_a"] == 8
        assert not [m for m in be.find(B + "reply") if b"cmd/" in m[1]]
        assert be.command("set/current", b"11")["ok"]
        assert b.status()["limit_a"] == 11
        charge(b)
        b.unplug()
        be.wait(B + "session")
        time.sleep(0.5)
        assert "Denied PUBLISH from wallbox-wb1" in br.read_log()
        assert b.status()["link"].startswith("connected;") and b.alive()
        assert not be.find("homeassistant/device/wallbox_wb1/config")
        # the password is nowhere: not on MQTT, not in status/events/config/log
        blob = b"".join(m[1] for m in be.msgs).decode(errors="replace")
        blob += json.dumps(b.status()) + json.dumps(b.events()) + json.dumps(b.config_get())
        blob += b.log()
        assert pw not in blob
        be.send(B + "set/current", b"", retain=True)
        be.send(B + "cmd/reset_fault", b"", retain=True)
    finally:
        b.close()
        be.close()
        br.stop(signal.SIGKILL)
