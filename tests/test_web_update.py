"""Firmware update through the web page: a signed bundle (tools/release.py) uploaded as the
body of POST /api/update streams into ota.install (docs/ota.md). A bundle signed by an
unknown key, an upload while charging, one without the CSRF token or of the wrong type are
refused with the reason and change nothing; a good one is installed and runs after the
reboot the firmware asks for."""
import json
import time

import pytest

import ota_util as U
from web_client import login, raw, request, set_password, setup_code, start_bench

KEY = U.new_key()
PASSWORD = "update-password"


@pytest.fixture(scope="module")
def box():
    d = U.tmpdir()
    U.provision(d, KEY)
    b = start_bench(data_dir=d, ota_healthy_s=1)
    set_password(b.web_port, setup_code(b), PASSWORD)
    b.cookie, b.csrf = login(b.web_port, PASSWORD)
    yield b
    b.close()
    U.rmtree(d)


def upload(b, data, csrf=True, ctype="application/octet-stream", timeout=120):
    head = ("POST /api/update HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: wb_session=%s\r\n"
            "Content-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
                b.web_port, b.cookie, ctype, len(data),
                ("X-CSRF-Token: %s\r\n" % b.csrf) if csrf else ""))
    st, _, body = raw(b.web_port, head.encode() + data, timeout=timeout)
    return st, json.loads(body) if body.startswith(b"{") else body


def fw(b):
    return json.loads(request(b.web_port, "GET", "/api/session")[2])["fw"]


def test_refused_without_csrf_or_as_the_wrong_type(box):
    data = U.bundle(KEY, "0.9.0", arb=1)
    assert upload(box, data, csrf=False)[0] == 403
    assert upload(box, data, ctype="application/json")[0] == 415
    assert box.read()["status"]["ota"]["state"] == "idle"


def test_a_bundle_from_an_unknown_key_is_rejected(box):
    v0 = fw(box)
    st, j = upload(box, U.bundle(U.new_key(), "0.9.0", arb=1))
    assert st == 400 and j["error"], j
    assert box.alive() and fw(box) == v0
    assert box.read()["status"]["ota"]["error"]


def test_no_upload_while_charging(box):
    box.plug()
    box.wait_for(lambda r: r["status"]["contactor"], timeout=15, what="charging")
    st, j = upload(box, U.bundle(KEY, "0.9.0", arb=1))
    assert st == 409 and ("charg" in j["error"] or "contactor" in j["error"]), (st, j)
    assert box.read()["status"]["contactor"]  # still charging, nothing started
    box.unplug()
    box.wait_for(lambda r: not r["status"]["contactor"] and r["status"]["state"] == "A", timeout=15)


def test_a_good_bundle_is_installed_and_runs_after_the_reboot(box):
    st, j = upload(box, U.bundle(KEY, "0.9.0", arb=1, summary="web upload test"))
    assert st == 200 and "0.9.0" in j["message"], j
    deadline = time.time() + 60
    while box.proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert box.proc.returncode == 75, box.log()[-2000:]  # the firmware asks for its reboot
    box.kill()
    box.start()
    deadline = time.time() + 30
    while True:
        try:
            if fw(box) == "0.9.0":
                break
        except (OSError, ValueError):
            pass
        assert time.time() < deadline, box.log()[-2000:]
        time.sleep(0.2)
