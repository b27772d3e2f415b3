"""The committed 32-bit MicroPython unix port is the one its manifest names
(tools/mp32/build.sh builds it from pinned commits; CI cannot fetch, so the binary is
committed and checked here) and it is the model of the chip it stands for: 32-bit words,
31-bit small ints, and the modules the firmware uses."""
import hashlib
import json
import os
import re

from mp import MP32, ROOT, run_script

DIR = os.path.dirname(MP32)


def _manifest():
    return json.load(open(os.path.join(DIR, "manifest.json")))


def test_binary_sha_matches_manifest():
    m = _manifest()
    assert os.path.join(DIR, m["binary"]) == MP32
    data = open(MP32, "rb").read()
    assert len(data) == m["binary_bytes"]
    assert hashlib.sha256(data).hexdigest() == m["binary_sha256"]
    # ELF, 32-bit class, i386, statically linked (no PT_INTERP: CI needs no i386 runtime)
    assert data[:5] == b"\x7fELF\x01" and data[18] == 3
    assert b"/ld-linux.so" not in data


def test_manifest_pins_every_source_and_the_build():
    m = _manifest()
    script = open(os.path.join(ROOT, "tools", "mp32", "build.sh")).read()
    for repo, rev in m["sources"].items():
        assert re.fullmatch("[0-9a-f]{40}", rev), repo
        assert rev in script, "build.sh and the manifest disagree on " + repo
    assert m["sources"]["micropython/micropython"] == "e0e9fbb17ed6fd06bb76e266ae554784c9c80804"
    assert "MICROPY_FORCE_32BIT=1" in m["build_command"]
    assert m["build_command"].split(" -j")[0] in script.replace("\\\n", "")


PROBE = """
import sys, gc, micropython
import _thread, asyncio, socket, select, json, vfs, uctypes
r = {"version": sys.implementation.version[:3], "maxsize": sys.maxsize,
     "ptr": uctypes.sizeof({"p": uctypes.PTR | 0}), "thread": sys.implementation._thread,
     "vfs": [hasattr(vfs, n) for n in ("VfsLfs2", "VfsRom", "VfsPosix")]}
# 31-bit small ints: 2**30 - 1 is the largest that is not a heap object
def grow(a):
    micropython.heap_lock()
    try:
        a - 1  # still small
        try:
            a + 1
            return "no alloc"
        except MemoryError:
            return "alloc"
    finally:
        micropython.heap_unlock()
r["long"] = grow((1 << 30) - 1)
# bytearray(1): a 4-word object + its 1-byte buffer, one 16-byte GC block each (96 bytes
# on the 64-bit PyPI port)
gc.collect(); m0 = gc.mem_alloc(); x = bytearray(1); r["block"] = gc.mem_alloc() - m0
print(json.dumps(r))
"""


def test_binary_runs_32bit_with_the_firmware_modules():
    r = json.loads(run_script(PROBE, vm="mp32").strip().splitlines()[-1])
    assert r["version"] == [1, 28, 0]
    assert r["maxsize"] == 2 ** 31 - 1
    assert r["ptr"] == 4
    assert r["vfs"] == [True, True, True]
    assert r["long"] == "alloc", r
    assert r["block"] == 2 * 16, r
