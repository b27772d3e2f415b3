"""OCPP Local Auth List Management and the authorization cache (LocalAuthorizeOffline,
LocalPreAuthorize, AllowOfflineTxForUnknownId), GetDiagnostics uploading the event log,
UpdateFirmware wired to the signed OTA update, and the security profiles 1 (basic auth) and 2
(TLS with the CSMS certificate checked against a configured CA)."""
import http.server
import ssl
import threading
import time

import pytest
from ocpp.v16 import call
from websockets.asyncio.server import basic_auth

from broker import tls_files  # noqa: F401  (fixture: openssl-made CA + server certificate)
from csms import Csms
from e2e import FAST, SimBench, baseline

LOCAL = "LOCAL-01"
PASSWORD = "0123456789abcdef"


@pytest.fixture(scope="module")
def env():
    c = Csms().start()
    b = SimBench(config=dict(FAST, ocpp_url=c.url, ocpp_timeout_s=3, require_auth=True))
    try:
        c.wait(lambda: c.statuses(0), what="boot")
        yield c, b
    finally:
        b.close()
        c.stop()


def ch(c, k, v):
    assert c.request(call.ChangeConfiguration(key=k, value=v)).status == "Accepted", (k, v)


def test_local_list_versions(env):
    c, b = env
    r = c.request(call.SendLocalList(list_version=3, update_type="Full", local_authorization_list=[
        {"idTag": LOCAL, "idTagInfo": {"status": "Accepted"}},
        {"idTag": "GONE-01", "idTagInfo": {"status": "Blocked"}}]))
    assert r.status == "Accepted"
    assert c.request(call.GetLocalListVersion()).list_version == 3
    r = c.request(call.SendLocalList(list_version=2, update_type="Differential",
                                     local_authorization_list=[{"idTag": "X"}]))
    assert r.status == "VersionMismatch"
    r = c.request(call.SendLocalList(list_version=4, update_type="Differential",
                                     local_authorization_list=[{"idTag": "GONE-01"}]))
    assert r.status == "Accepted"
    assert c.request(call.GetLocalListVersion()).list_version == 4
    assert c.schema_errors == []


def test_local_pre_authorize_skips_the_authorize_request(env):
    c, b = env
    baseline(b)
    ch(c, "LocalPreAuthorize", "true")
    n = len(c.actions("Authorize"))
    b.set(plugged=True)
    ok = b.cmd("authorize", LOCAL)
    b.wait_for(lambda r: r["status"]["contactor"], timeout=10, what="charging")
    c.wait(lambda: [m for m in c.actions("StartTransaction") if m[2]["idTag"] == LOCAL],
           what="start")
    assert len(c.actions("Authorize")) == n and ok is not None
    b.cmd("authorize", LOCAL)  # the same tag again: stops it (reason Local)
    c.wait(lambda: [s for st in c.stops.values() for s in st.values() if s["reason"] == "Local"],
           what="Local stop")
    ch(c, "LocalPreAuthorize", "false")
    b.set(plugged=False)


def test_offline_authorization(env):
    c, b = env
    baseline(b)
    ch(c, "AllowOfflineTxForUnknownId", "false")
    c.stop()  # offline
    try:
        b.wait_for(lambda r: r["status"]["ocpp"]["conn"] != "connected", timeout=20,
                   what="offline")
        b.set(plugged=True)
        b.cmd("authorize", "STRANGER")  # unknown, not allowed offline
        time.sleep(0.8)
        assert not b.read()["status"]["contactor"]
        b.cmd("authorize", LOCAL)  # in the local list: LocalAuthorizeOffline (default true)
        b.wait_for(lambda r: r["status"]["contactor"] and r["status"]["ocpp"]["queue"] >= 1,
                   timeout=10, what="charging offline, StartTransaction queued")
        b.set(plugged=False)
    finally:
        c.start()
    c.wait(lambda: [m for m in c.actions("StartTransaction") if m[2]["idTag"] == LOCAL][1:],
           timeout=60, what="offline transaction delivered")


class _Put(http.server.BaseHTTPRequestHandler):
    got = []

    def do_PUT(self):
        body = b""
        if self.headers.get("Transfer-Encoding") == "chunked":
            while True:
                n = int(self.rfile.readline().strip(), 16)
                if n == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(n)
                self.rfile.readline()
        _Put.got.append((self.path, body.decode()))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def test_get_diagnostics_uploads_the_event_log(env):
    c, b = env
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Put)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        r = c.request(call.GetDiagnostics(location="http://127.0.0.1:%d/diag" % srv.server_port))
        assert r.file_name.startswith("diag-wb1-")
        c.wait(lambda: [m for m in c.actions("DiagnosticsStatusNotification")
                        if m[2]["status"] == "Uploaded"], what="Uploaded")
        path, body = _Put.got[-1]
        assert path == "/diag/" + r.file_name
        assert " boot " in body and "ocpp_tx_start" in body
        assert PASSWORD not in body
        r = c.request(call.GetDiagnostics(location="ftp://127.0.0.1/x"))
        assert r.file_name is None  # not supported: nothing uploaded
    finally:
        srv.shutdown()


def test_update_firmware_reports_through_ota(env):
    c, b = env
    if b.read()["status"].get("ota") is None:
        pytest.skip("OTA not in this build")
    r = c.request(call.UpdateFirmware(location="http://127.0.0.1:9/none.wbu",
                                      retrieve_date="2026-01-01T00:00:00Z", retries=0))
    st = c.wait(lambda: [m[2]["status"] for m in c.actions("FirmwareStatusNotification")
                         if m[2]["status"].endswith("Failed")], timeout=30, what="failure")
    assert st[-1] in ("DownloadFailed", "InstallationFailed") and r is not None
    assert c.schema_errors == []


def test_security_profile_2_tls_with_ca_and_basic_auth(tls_files, tmp_path):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_files["cert"], tls_files["key"])
    c = Csms(ssl=ctx, process_request=basic_auth(credentials=("CP-7", PASSWORD))).start()
    try:
        b = SimBench(data_dir=str(tmp_path), config=dict(
            FAST, ocpp_url=c.url, ocpp_id="CP-7", ocpp_password=PASSWORD,
            ocpp_ca=tls_files["ca_der"]))
        try:
            c.wait(lambda: c.statuses(0), what="boot over wss with basic auth")
            assert c.paths[-1] == "/ocpp/CP-7"
            assert PASSWORD not in b.log() and PASSWORD not in str(b.events())
            assert b.config_get()["ocpp_password"] == "***"
        finally:
            b.close()
        # a CA that did not sign the CSMS certificate: no connection at all
        (tmp_path / "wrong").mkdir()
        b = SimBench(data_dir=str(tmp_path / "wrong"), config=dict(
            FAST, ocpp_url=c.url, ocpp_id="CP-7", ocpp_password=PASSWORD,
            ocpp_ca=tls_files["wrong_der"]))
        try:
            n = c.connections
            time.sleep(3)
            assert c.connections == n
            assert "connecting" in b.read()["status"]["ocpp"]["conn"]
        finally:
            b.close()
    finally:
        c.stop()
