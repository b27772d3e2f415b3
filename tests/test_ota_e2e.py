"""Updates end to end on the sim bench (the real firmware process, the real loader):
serial update with wbctl over the pty, a version that raises at import, raises in the
control task, hangs until the watchdog fires, or never becomes healthy: each ends back on
the previous version by itself, reported and never tried again (docs/ota.md)."""
import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

import ota_util as U
from e2e import FAST, baseline, charge
from simbench import SimBench, SimError

ROOT = U.ROOT
KEY = U.new_key()
CFG = dict(FAST, ota_healthy_s=1)
FACTORY = "0.3.0"


def _factory_version():
    import re
    src = open(os.path.join(ROOT, "firmware", "services", "runtime.py")).read()
    return re.search(r'^VERSION = "([^"]*)"', src, re.M).group(1)


@pytest.fixture
def box():
    d = U.tmpdir()
    U.provision(d, KEY)
    yield d
    U.rmtree(d)


def _ota(b):
    return b.read()["status"]["ota"]


def _wait_ota(b, pred, timeout=20, what="ota state"):
    return b.wait_for(lambda r: pred(r["status"]["ota"]), timeout=timeout,
                      what=what)["status"]["ota"]


def _stage(mp, d, data):
    p = os.path.join(d, "stage.wbu")
    with open(p, "wb") as f:
        f.write(data)
    r = mp.call("ota_dev", "stage_trial", os.path.join(d, "ota"), p, [U.pub_hex(KEY)])
    assert r[0] == "ok", r


def test_serial_update_with_wbctl_then_healthy(box):
    v0 = _factory_version()
    os.remove(os.path.join(box, "ota", "keys.json"))  # provisioned below with wbctl keys
    rotated = U.new_key()  # key rotation: this release trusts KEY and a new key after it
    data = U.bundle(KEY, "0.9.0", arb=1, summary="serial test",
                    trust=[U.pub_hex(rotated), U.pub_hex(KEY)])
    path = os.path.join(box, "wb-0.9.0.wbu")
    with open(path, "wb") as f:
        f.write(data)
    with SimBench(data_dir=box, console=True, config=CFG) as b:
        baseline(b)
        charge(b)  # one session on the old version: its record must survive the update
        b.unplug()
        b.wait_for(lambda r: b.sessions()["open"] is None, timeout=5)
        sessions = b.sessions()["sessions"]
        assert _ota(b)["installed"] == v0 and _ota(b)["slot"] == "factory"
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "wbctl.py"), "--port",
                            b.console_path, "keys", U.pub_hex(KEY)], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0 and "trusted update keys: 1" in r.stdout, r.stdout + r.stderr
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "wbctl.py"), "--port",
                            b.console_path, "update", path], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "copied" in r.stdout and "update: started" in r.stdout
        U.rebooted(b)
        st = _ota(b)
        assert st["installed"] == "0.9.0" and st["slot"] == "a"
        st = _wait_ota(b, lambda o: not o["trial"], what="healthy")
        assert st["state"] == "idle" and st["floor"] == 1
        assert b.read()["status"]["fw"] == "0.9.0"
        assert b.sessions()["sessions"] == sessions  # the store's records are intact
        kinds = [e["type"] for e in b.events()]
        for k in ("ota_request", "ota_installed", "ota_switch", "ota_healthy"):
            assert k in kinds, kinds
        assert not os.path.exists(os.path.join(box, "ota", "incoming.wbu"))
        with open(os.path.join(box, "ota", "keys.json")) as f:
            assert json.load(f)["keys"] == [U.pub_hex(rotated), U.pub_hex(KEY)]
        from test_console import mpremote
        r = mpremote(b.console_path, "exec", "rollback()")  # the factory app is below arb 1
        assert r.returncode != 0 and "anti-rollback" in r.stdout + r.stderr, r.stdout
        r = mpremote(b.console_path, "exec", "ota()")
        assert "installed  0.9.0" in r.stdout, r.stdout
        # the same version again is fine; a lower anti-rollback level is not
        low = os.path.join(box, "low.wbu")
        with open(low, "wb") as f:
            f.write(U.bundle(KEY, "0.8.0", arb=0))
        r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "wbctl.py"), "--port",
                            b.console_path, "update", low], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 1 and "downgrade refused" in r.stdout, r.stdout + r.stderr
        assert U.boot_state(box)["version"] == "0.9.0"


def _assert_rolled_back(b, box, version, why):
    st = _ota(b)
    assert st["installed"] == _factory_version() and st["slot"] == "factory", st
    assert not st["trial"]
    assert version in st["failed"], st
    assert why in (st["rollback"] or ""), st
    bs = U.boot_state(box)
    assert bs["slot"] is None and version in bs["failed"]


def test_raise_at_import_rolls_back_in_the_same_boot(mp, box):
    bad = U.runtime_source("class Stats:", "raise RuntimeError('broken release')\n\n\nclass Stats:")
    _stage(mp, box, U.bundle(KEY, "0.9.1", replace={"firmware/services/runtime.py": bad}))
    with SimBench(data_dir=box, config=CFG) as b:
        _assert_rolled_back(b, box, "0.9.1", "import failed")
        assert "broken release" in b.log()
        kinds = [(e["type"], e["detail"]) for e in b.events()]
        assert any(k == "ota_rollback" and "0.9.1" in d for k, d in kinds), kinds
    # never tried again
    p = os.path.join(box, "again.wbu")
    with open(p, "wb") as f:
        f.write(U.bundle(KEY, "0.9.1", replace={"firmware/services/runtime.py": bad}))
    r = mp.call("ota_dev", "stage_trial", os.path.join(box, "ota"), p, [U.pub_hex(KEY)])
    assert r[0] == "rejected" and "failed its trial" in r[1], r


def test_raise_in_the_control_task_rolls_back(mp, box):
    bad = U.runtime_source("        if self.hold:\n            return",
                           "        if self.stats.ticks > 30:\n"
                           "            raise ValueError('tick broke')\n"
                           "        if self.hold:\n            return")
    _stage(mp, box, U.bundle(KEY, "0.9.2", replace={"firmware/services/runtime.py": bad}))
    with SimBench(data_dir=box, config=CFG) as b:
        U.rebooted(b)
        _assert_rolled_back(b, box, "0.9.2", "a task raised")
        assert "tick broke" in _ota(b)["rollback"]


def test_hang_until_the_watchdog_fires_rolls_back(mp, box):
    # the control tick spins forever after a while: the event loop stops, the watchdog
    # is no longer fed; here the test is the watchdog (kill -9 when the box stops answering)
    bad = U.runtime_source("        if self.hold:\n            return",
                           "        if self.stats.ticks > 30:\n"
                           "            while True:\n                pass\n"
                           "        if self.hold:\n            return")
    _stage(mp, box, U.bundle(KEY, "0.9.3", replace={"firmware/services/runtime.py": bad}))
    b = SimBench(data_dir=box, config=CFG, start=False)
    try:
        for boot in range(1, 4):
            b.start()
            b.sock.settimeout(1)
            with pytest.raises((SimError, OSError)):
                for _ in range(100):
                    b.read()
                    time.sleep(0.05)
            b.kill()  # the watchdog's reset
            assert U.boot_state(box)["tries"] == boot
        b.start()  # the 4th boot: the loader rolls back before importing the app
        _assert_rolled_back(b, box, "0.9.3", "not healthy within 3 boots")
    finally:
        b.close()


def test_never_healthy_rolls_back_after_three_boots(mp, box):
    # the control loop never ticks (in thread and single-loop mode alike: its one pass
    # only waits): not healthy, so each boot ends in a reboot
    bad = U.runtime_source("    def _loop_once(self):\n",
                           "    def _loop_once(self):\n"
                           "        return 100\n\n    def _loop_once_unused(self):\n")
    _stage(mp, box, U.bundle(KEY, "0.9.4", replace={"firmware/services/runtime.py": bad}))
    with SimBench(data_dir=box, config=CFG) as b:
        for _ in range(3):
            assert _ota(b)["trial"]
            U.rebooted(b)
        _assert_rolled_back(b, box, "0.9.4", "not healthy within 3 boots")
        kinds = [e["type"] for e in b.events()]
        assert kinds.count("ota_unhealthy") == 3, kinds


_BURN = """
import asyncio
from firmware.services import ota_install, ota_ed25519
import binascii, hashlib
_pub = binascii.unhexlify(%r)
_sig = binascii.unhexlify(%r)
_msg = hashlib.sha256(b'manifest').digest()
rt.ota_verifications = 0
async def _burn():
    while True:
        ok = await ota_install.verify_signature(
            b'manifest', [{'key': ota_install.key_id(_pub), 'sig': binascii.hexlify(_sig).decode()}],
            [_pub])
        assert ok is None, ok
        rt.ota_verifications += 1
rt.ota_burn = asyncio.create_task(_burn())
"""


def test_fault_latency_unchanged_while_verifying(box):
    """Updates never verify while charging, but if one did, the chunked verification must
    not delay the contactor: verifications run back to back during a fault."""
    from e2e import LIMIT_MS, trigger
    from test_console import mpremote
    msg = hashlib.sha256(b"manifest").digest()
    with SimBench(data_dir=box, console=True, config=CFG) as b:
        baseline(b)
        charge(b)
        r = mpremote(b.console_path, "exec", _BURN % (U.pub_hex(KEY), KEY.sign(msg).hex()))
        assert r.returncode == 0, r.stdout + r.stderr
        for fault in ({"cp_short": True}, {"rcd_fault": True}):
            before = int(mpremote(b.console_path, "eval", "rt.ota_verifications").stdout)
            lat = trigger(b, **fault)
            assert lat < LIMIT_MS, (fault, lat)
            after = int(mpremote(b.console_path, "eval", "rt.ota_verifications").stdout)
            assert after > before  # it really was verifying meanwhile
            baseline(b)
            charge(b)
        assert b.stats()["task_errors"] == 0
