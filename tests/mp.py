"""Run device code in the MicroPython unix port from pytest (CPython side).

`MicroPython` keeps one `micropython` process alive and sends it code to exec;
results come back as JSON. A failure raises `MicroPythonError` carrying the
MicroPython traceback. `run_script` runs a one-off script in a fresh process.
"""
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKES = os.path.join(ROOT, "tests", "fakes")
DEVICE_TESTLIB = os.path.join(ROOT, "tests", "device")  # device-side test helpers


# The 32-bit unix port (tools/mp32/build.sh, committed with its manifest): 4-byte words,
# 16-byte GC blocks and 31-bit small ints like the ESP32/RP2040, where the PyPI port is
# 64-bit. vm="mp32" (or WALLBOX_VM=mp32 for everything that does not name a vm) runs on it.
MP32 = os.path.join(ROOT, "tools", "mp32", "micropython-v1.28.0-unix-x86")
VMS = ("pypi", "mp32")


def micropython_bin(vm=None):
    """Path of the unix port. vm: "pypi" (default: the venv's PyPI port, then PATH) or
    "mp32" (the committed 32-bit port); None: $WALLBOX_VM, else "pypi"."""
    vm = vm or os.environ.get("WALLBOX_VM") or "pypi"
    if vm not in VMS:
        raise RuntimeError("unknown vm %r: one of %s" % (vm, ", ".join(VMS)))
    if vm == "mp32":
        if not os.access(MP32, os.X_OK):
            raise RuntimeError("32-bit unix port missing: " + MP32)
        return MP32
    venv = os.path.join(ROOT, ".venv", "bin", "micropython")
    if os.path.exists(venv):
        return venv
    found = shutil.which("micropython")
    if not found:
        raise RuntimeError("micropython not found: run `make setup` first")
    return found


def mp_env(fakes=False, extra_path=()):
    """Environment whose MICROPYPATH puts the repo root (and optionally the fake
    `machine` modules) first."""
    paths = list(extra_path)
    if fakes:
        paths.append(FAKES)
    paths += [ROOT, DEVICE_TESTLIB, ".frozen"]
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(paths)
    return env


class MicroPythonError(AssertionError):
    """Device code raised; the message is the MicroPython traceback."""


class MicroPython:
    def __init__(self, fakes=False, heapsize=None, extra_path=(), vm=None):
        args = [micropython_bin(vm)]
        if heapsize:
            args += ["-X", "heapsize=%s" % heapsize]
        args.append(os.path.join(ROOT, "tests", "mp_server.py"))
        self.proc = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=ROOT, env=mp_env(fakes, extra_path), text=True, bufsize=1)
        self.printed = []  # lines the device code printed, in order

    def run(self, code, data=None):
        """Exec `code` in the device VM with `data` bound; return its `result`."""
        if self.proc.poll() is not None:
            raise MicroPythonError("micropython exited: " + self.proc.stderr.read())
        self.proc.stdin.write(json.dumps({"code": code, "data": data}) + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise MicroPythonError("micropython died: " + self.proc.stderr.read())
            if line.startswith("\x02"):
                reply = json.loads(line[1:])
                break
            self.printed.append(line.rstrip("\n"))
        if not reply["ok"]:
            raise MicroPythonError("MicroPython raised:\n" + reply["tb"])
        return reply["result"]

    def call(self, module, func, *args):
        """Import `module` and return `func(*args)` (args and result JSON-able)."""
        return self.run("import %s as _m\nresult = _m.%s(*data)" % (module, func), list(args))

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_script(source, fakes=False, heapsize=None, timeout=60, args=(), vm=None):
    """Run `source` in a fresh micropython process; return stdout. Raise
    MicroPythonError with the traceback if it fails."""
    cmd = [micropython_bin(vm)]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    cmd += ["-c", source] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                       env=mp_env(fakes), timeout=timeout)
    if p.returncode != 0:
        raise MicroPythonError("micropython exit %d:\n%s%s" % (p.returncode, p.stdout, p.stderr))
    return p.stdout
