"""Shared helpers of the emulated-RP2040 tests (tests/test_emu_*.py).

The first test that needs the firmware on the chip deploys it with `wbctl deploy`
over the pty (the real host tool, the real rp2 port) and keeps the flash image in
build/emu/ keyed by the device sources' hash; the other tests power on from that
image, as a board that was flashed once."""
import hashlib
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "rp2"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from emu import MS, Chip, ChipError, node_ready  # noqa: E402,F401

CACHE = os.path.join(ROOT, "build", "emu")
PY = os.path.join(ROOT, ".venv", "bin", "python")

needs_node = pytest.mark.skipif(node_ready() is not None, reason=str(node_ready()))


def sources_hash():
    import wbctl
    h = hashlib.sha256()
    for src, rel in wbctl.device_files():
        h.update(rel.encode())
        h.update(open(src, "rb").read())
    return h.hexdigest()[:16]


def wbctl(port, *args, timeout=900):
    return subprocess.run([PY, os.path.join(ROOT, "tools", "wbctl.py"), "--port", port,
                           "--timeout", "300"] + list(args),
                          capture_output=True, text=True, timeout=timeout)


def deploy(chip):
    """wbctl deploy to a chip at its REPL; returns wbctl's CompletedProcess."""
    chip.bridged = True  # the pty is wbctl's now
    try:
        return wbctl(chip.port, "deploy")
    finally:
        chip.bridged = False


# The single-loop build of the control loop (config control_thread off): what a port
# without _thread runs; the emulated chip runs the control thread on core 1 otherwise
# (emu/patches/dual-core.mjs, docs/emulator.md "Second core").
SINGLE_LOOP = ("import os\n"
               "try:\n    os.mkdir('/store')\nexcept OSError:\n    pass\n"
               "from firmware.services.store import Store\n"
               "from firmware.services.config import Config\n"
               "s = Store('/store')\n"
               "print(Config(s).set('control_thread', False))\n"
               "s.flush()\n")


def deployed_flash(single_loop=False):
    """Path of a flash image with the stock MicroPython and this tree's firmware: its
    control loop on core 1 (the default), or the single-loop build. One deploy gives both."""
    path = os.path.join(CACHE, "flash-%s.bin" % sources_hash())
    single = os.path.join(CACHE, "flash-single-%s.bin" % sources_hash())
    if not os.path.exists(single):
        os.makedirs(CACHE, exist_ok=True)
        with Chip() as chip:
            chip.boot()
            r = deploy(chip)
            assert r.returncode == 0, r.stdout + r.stderr
            chip.save_flash(path)
            chip.exec(SINGLE_LOOP)  # at the stock REPL, before the firmware's first boot
            chip.save_flash(single)
    return single if single_loop else path


def modules_flash():
    """The deployed flash with main.py set aside: the stock REPL at boot, the firmware's
    modules importable (no tasks, no watchdog): for tests of one module on the chip."""
    path = os.path.join(CACHE, "modules-%s.bin" % sources_hash())
    if not os.path.exists(path):
        chip = boot_firmware()
        try:
            chip.exec("import os\nos.rename('main.py', 'main_off.py')")
            chip.save_flash(path)
        finally:
            chip.stop()
    return path


def boot_firmware(flash=None, single_loop=False):
    """Power on a chip with the firmware deployed; return it at the console prompt."""
    chip = Chip(flash=flash or deployed_flash(single_loop)).start()
    chip.wait_usb(120)
    chip.write(b"\r")
    chip.wait_text(b"wb> ", 180)
    return chip


def data(chip, what, n=0):
    """The console's data() over the raw REPL (as wbctl does), parsed."""
    out = chip.exec("data(%r, %d)" % (what, n))
    return json.loads(out.strip().splitlines()[-1])
