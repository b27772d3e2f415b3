"""Updates over MQTT (docs/ota.md "Transports"): a real mosquitto carries cmd/update and the
HA-style status, the bundle comes from a test HTTP (and HTTPS) server, streamed into the
inactive slot; an update requested while charging waits for the session to end."""
import http.server
import json
import os
import signal
import ssl
import threading
import time

import pytest

import ota_util as U
from broker import Broker, tls_files  # noqa: F401
from e2e import FAST, baseline, charge
from simbench import SimBench
from test_link import Backend

KEY = U.new_key()
B = "wallbox/wb1/"


class Files(http.server.ThreadingHTTPServer):
    """Serves a directory; records the paths asked for."""

    def __init__(self, directory, tls=None):
        self.asked = []
        outer = self

        class H(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=directory, **kw)

            def log_message(self, fmt, *args):
                outer.asked.append(self.path)

        super().__init__(("127.0.0.1", 0), H)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls["cert"], tls["key"])
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


@pytest.fixture
def setup(tmp_path):
    d = U.tmpdir()
    U.provision(d, KEY)
    web = str(tmp_path / "web")
    os.makedirs(web)
    br = Broker(tmp_path).start()
    be = Backend(br.port)
    yield d, web, br, be
    be.close()
    br.stop(signal.SIGKILL)
    U.rmtree(d)


def _state(be, pred, since=0, timeout=20):
    m = be.wait(B + "ota/state", lambda p: pred(json.loads(p)), since=since, timeout=timeout)
    assert m is not None, [x for x in be.msgs if x[0] == B + "ota/state"][-3:]
    return json.loads(m[1])


def _reply(be, since, timeout=10):
    m = be.wait(B + "reply", lambda p: json.loads(p)["topic"].startswith("cmd/"),
                since=since, timeout=timeout)
    assert m is not None
    return json.loads(m[1])


def _publish(be, topic, obj):
    be.c.publish(topic, obj if isinstance(obj, str) else json.dumps(obj), 1).wait_for_publish(5)


def test_mqtt_update_waits_for_the_session_then_runs(setup):
    d, web, br, be = setup
    data = U.bundle(KEY, "0.9.0", arb=1, summary="faster meter")
    with open(os.path.join(web, "wb.wbu"), "wb") as f:
        f.write(data)
    srv = Files(web)
    url = "http://127.0.0.1:%d/wb.wbu" % srv.port
    cfg = dict(FAST, mqtt_host="127.0.0.1", mqtt_port=br.port, ota_healthy_s=1)
    try:
        with SimBench(data_dir=d, config=cfg) as b:
            st = _state(be, lambda s: s["state"] == "idle")
            assert st["slot"] == "factory"
            disc = be.wait("homeassistant/device/wallbox_wb1/config")
            upd = json.loads(disc[1])["cmps"]["firmware"]
            assert upd["p"] == "update" and upd["stat_t"] == B + "ota/state"
            assert upd["cmd_t"] == B + "cmd/update" and upd["pl_inst"] == "install"
            # a wrong hash: rejected with the reason, nothing changes
            n = be.mark()
            _publish(be, B + "cmd/update", {"url": url, "sha256": "ab" * 32, "req": "r1"})
            rep = _reply(be, n)
            assert rep["ok"] and rep["req"] == "r1"
            st = _state(be, lambda s: s["state"] == "failed", since=n)
            assert "is not the expected" in st["error"]
            assert U.boot_state(d) is None
            # bad payloads: clear errors
            for bad, want in (({"sha256": U.sha(data)}, "url missing"),
                              ({"url": "ftp://x/y", "sha256": U.sha(data)}, "http://"),
                              ({"url": url, "sha256": "xyz"}, "64 hex"),
                              ("install", "no release offered")):
                n = be.mark()
                _publish(be, B + "cmd/update", bad)
                rep = _reply(be, n)
                assert not rep["ok"] and want in rep["err"], (bad, rep)
            # offer the release (HA shows it), start charging, then press Install
            n = be.mark()
            _publish(be, B + "cmd/update", {"url": url, "sha256": U.sha(data),
                                            "version": "0.9.0", "summary": "faster meter",
                                            "install": False})
            st = _state(be, lambda s: s["latest"] == "0.9.0", since=n)
            assert st["summary"] == "faster meter" and st["installed"] != "0.9.0"
            baseline(b)
            charge(b)
            asked = len(srv.asked)
            n = be.mark()
            _publish(be, B + "cmd/update", "install")
            rep = _reply(be, n)
            assert rep["ok"] and "waiting" in rep["value"], rep
            st = _state(be, lambda s: s["state"] == "waiting", since=n)
            assert "contactor" in st["waiting"]
            time.sleep(1.5)
            r = b.read()
            assert r["status"]["contactor"] and r["status"]["ota"]["state"] == "waiting"
            assert len(srv.asked) == asked  # nothing downloaded while charging
            b.unplug()  # the session ends: the update runs, then the box reboots into it
            U.rebooted(b)
            assert srv.asked[-1] == "/wb.wbu"
            n = be.mark()
            st = _state(be, lambda s: s["installed"] == "0.9.0" and not s["trial"], since=0)
            assert st["slot"] == "a"
            n = be.mark()  # anti-rollback: 0.9.0 raised the floor to 1, the factory app is 0
            _publish(be, B + "cmd/rollback", {})
            rep = _reply(be, n)
            assert not rep["ok"] and "anti-rollback" in rep["err"], rep
            assert b.read()["status"]["fw"] == "0.9.0"
            kinds = [e["type"] for e in b.events()]
            for k in ("ota_request", "ota_wait", "ota_installed", "ota_switch", "ota_healthy"):
                assert k in kinds, (k, kinds)
    finally:
        srv.close()


def test_https_download(setup, tls_files):  # noqa: F811
    d, web, br, be = setup
    data = U.bundle(KEY, "0.9.5", arb=0)
    with open(os.path.join(web, "wb.wbu"), "wb") as f:
        f.write(data)
    srv = Files(web, tls=tls_files)
    cfg = dict(FAST, mqtt_host="127.0.0.1", mqtt_port=br.port, ota_healthy_s=1)
    try:
        with SimBench(data_dir=d, config=cfg) as b:
            _state(be, lambda s: s["state"] == "idle")
            _publish(be, B + "cmd/update", {"url": "https://localhost:%d/wb.wbu" % srv.port,
                                            "sha256": U.sha(data)})
            U.rebooted(b)
            st = _state(be, lambda s: s["installed"] == "0.9.5" and not s["trial"])
            assert st["slot"] == "a"
            # a manual rollback (arb 0: allowed) goes back to the factory app
            n = be.mark()
            _publish(be, B + "cmd/rollback", {"req": "rb"})
            rep = _reply(be, n)
            assert rep["ok"] and rep["req"] == "rb", rep
            U.rebooted(b)
            st = _state(be, lambda s: s["slot"] == "factory", since=n)
            assert st["installed"] != "0.9.5" and "manual rollback" in st["rollback"]
    finally:
        srv.close()
