"""OCPP UpdateFirmware through the signed OTA update (docs/ota.md API, docs/ocpp.md): the CSMS
asks for a bundle at an http:// location, the firmware reports Downloading / Installing /
Installed with FirmwareStatusNotification, reboots into the new version, and its next
BootNotification carries that version."""
import http.server
import threading
import time
from datetime import datetime, timezone

import pytest
from ocpp.v16 import call

import ota_util as U
from csms import Csms
from e2e import FAST
from simbench import SimBench

KEY = U.new_key()


def test_update_firmware_installs_a_signed_bundle():
    data = U.bundle(KEY, "0.9.1", arb=1, summary="ocpp test")

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    box = U.tmpdir()
    U.provision(box, KEY)
    c = Csms().start()
    b = SimBench(data_dir=box, config=dict(FAST, ota_healthy_s=1, ocpp_url=c.url))
    try:
        c.wait(lambda: c.statuses(0), what="boot")
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        c.request(call.UpdateFirmware(location="http://127.0.0.1:%d/wb.wbu" % srv.server_port,
                                      retrieve_date=now))
        deadline = time.time() + 90
        while b.proc.poll() is None:  # the loader's reboot request (exit 75, test_ota_e2e)
            assert time.time() < deadline, b.log()[-2000:]
            time.sleep(0.05)
        assert b.proc.returncode == 75, b.log()[-2000:]
        sts = [m[2]["status"] for m in c.actions("FirmwareStatusNotification")]
        assert "Downloading" in sts and "Installing" in sts, sts
        n = len(c.actions("BootNotification"))
        b.kill()
        b.start()
        c.wait(lambda: len(c.actions("BootNotification")) > n, timeout=30, what="boot again")
        assert c.actions("BootNotification")[-1][2]["firmwareVersion"] == "0.9.1"
        assert c.schema_errors == []
    finally:
        b.close()
        c.stop()
        srv.shutdown()
        U.rmtree(box)
