"""Power cut at every write step of an update (docs/ota.md "Every failure"): the install and
the switch run in a MicroPython process that is killed (kill -9) right after filesystem
change k, for every k the update makes. After each cut the box must boot the old version or
the new one, never neither: the boot pointer names either the factory app or a slot whose
every file matches its signed manifest. A sample of the cuts is then booted for real
(the firmware on the sim bench), and the store's records are intact each time."""
import hashlib
import json
import os
import shutil
import signal
import subprocess

import ota_util as U
from e2e import FAST, baseline, charge
from mp import micropython_bin, mp_env
from simbench import SimBench

KEY = U.new_key()
NEW = "0.9.7"


def _cut(ota, data, bundle, k):
    """Run the install, kill -9 after change k (k=0: to the end). Returns the changes made
    when k=0."""
    p = subprocess.Popen([micropython_bin(), "tests/device/ota_cut.py", ota, data, bundle,
                          U.pub_hex(KEY), str(k)], cwd=U.ROOT, env=mp_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if k == 0:
            p.wait(30)
            assert line.startswith("DONE"), line + p.stderr.read()
            return int(line.split()[1])
        assert line.strip() == "CUT %d" % k, line + p.stderr.read()
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        return None
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _reset(ota):
    """Back to the box as it was before the update: factory app, no slot, no pointer."""
    for name in os.listdir(ota):
        if name != "keys.json":
            path = os.path.join(ota, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


def _boots(ota):
    """'old' or 'new': what the loader will boot; AssertionError if neither would work."""
    st = U.boot_state(os.path.dirname(ota))
    if st is None or st.get("slot") is None:
        return "old"
    slot = os.path.join(ota, st["slot"])
    with open(os.path.join(slot, "manifest.json")) as f:
        m = json.load(f)["manifest"]
    for p, n, h in m["files"]:
        with open(os.path.join(slot, p), "rb") as f:
            data = f.read()
        assert len(data) == n and hashlib.sha256(data).hexdigest() == h, p
    assert m["version"] == st["version"] == NEW and st["trial"]
    return "new"


def test_power_cut_after_every_write(tmp_path):
    d = U.tmpdir()
    try:
        ota = U.provision(d, KEY)
        data = os.path.join(d, "store")
        with SimBench(data_dir=d, config=FAST) as b:  # a box with one charging session
            baseline(b)
            charge(b)
            b.unplug()
            b.wait_for(lambda r: b.sessions()["open"] is None, timeout=5)
            sessions = b.sessions()["sessions"]
            old = b.read()["status"]["fw"]
        bundle = str(tmp_path / "b.wbu")
        with open(bundle, "wb") as f:
            f.write(U.bundle(KEY, NEW, arb=1))
        n = _cut(ota, data, bundle, 0)
        assert _boots(ota) == "new"
        assert n > 50, n  # every file, every 2 KB of it, the wipe, the manifest, the pointer
        seen = []
        for k in range(1, n + 1):
            _reset(ota)
            _cut(ota, data, bundle, k)
            seen.append(_boots(ota))
        # the pointer is the last change: every earlier cut boots the old version
        assert seen == ["old"] * (n - 1) + ["new"], seen
        for k in (1, n // 2, n - 1, n):  # boot a sample for real
            _reset(ota)
            _cut(ota, data, bundle, k)
            with SimBench(data_dir=d, config=dict(FAST, ota_healthy_s=1)) as b:
                fw = b.read()["status"]["fw"]
                assert fw == (NEW if k == n else old), (k, fw)
                assert b.sessions()["sessions"] == sessions, k
                assert "Traceback" not in b.log()
    finally:
        U.rmtree(d)
