"""Host side of the emulated RP2040 (emu/chip.mjs): starts node, bridges the chip's
USB CDC REPL to a pty (so mpremote and tools/wbctl.py talk to it as to a board on
/dev/ttyACM0) and speaks the JSON-line control channel (the world at the pins,
flash save, power cut, emulated time).

    with Chip() as chip:            # boots the stock image
        chip.wait_text(b">>> ")
        print(chip.port)           # /dev/pts/N
        chip.world(ev="B")
"""
import json
import os
import pty
import queue
import select
import socket
import shutil
import subprocess
import termios
import threading
import time
import tty

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EMU = os.path.join(ROOT, "emu")
IMAGE = os.path.join(ROOT, "tools", "rp2", "image", "micropython-v1.28.0-RPI_PICO.uf2")
MS = 1_000_000  # ns


def node_ready():
    """None when the harness can run, else why not (for pytest.skip)."""
    if not shutil.which("node"):
        return "node missing (make setup installs it)"
    if not os.path.isdir(os.path.join(EMU, "node_modules", "rp2040js")):
        return "emu/node_modules missing (make setup runs npm ci)"
    return None


class ChipError(Exception):
    """A MicroPython exception on the chip (its traceback is the message)."""


class Chip:
    def __init__(self, flash=None, no_patch=(), log=None, stderr=None):
        self.flash = flash
        self.no_patch = no_patch
        self.stderr = stderr  # node's stderr (None: inherited; rp2040js warns there)
        self.log = log  # file-like: the chip's USB CDC output is copied there
        self.out = bytearray()  # everything the chip wrote on USB CDC, while not bridged
        self.events = queue.Queue()
        self.replies = {}
        self._id = 0
        self._cv = threading.Condition()
        self.bridged = False  # True: CDC bytes go only to the pty (mpremote/wbctl own it)

    # -- life cycle ----------------------------------------------------------
    def start(self):
        # The chip's USB CDC byte stream: one end of a socket pair, its fd number given
        # to node (--cdc-fd).
        self._cdc, child = socket.socketpair()
        args = ["node", os.path.join(EMU, "chip.mjs"), "--image", IMAGE,
                "--cdc-fd", str(child.fileno())]
        if self.flash:
            args += ["--flash", self.flash]
        for p in self.no_patch:
            args += ["--no-patch", p]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, cwd=EMU, pass_fds=(child.fileno(),))
        child.close()
        self._master, slave = pty.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self.port = os.ttyname(slave)
        self._slave = slave  # kept open: the pty must outlive each mpremote call
        self._stop = False
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._control_reader, daemon=True).start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._cdc.close()
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    # -- USB CDC <-> pty -----------------------------------------------------
    def _pump(self):
        while not self._stop:
            try:
                r, _, _ = select.select([self._cdc, self._master], [], [], 0.2)
            except (OSError, ValueError):
                return
            for fd in r:
                try:
                    data = self._cdc.recv(4096) if fd is self._cdc else os.read(fd, 4096)
                except OSError:
                    data = b""
                if fd is self._cdc:
                    if not data:
                        return
                    if self.log:
                        self.log.write(data.decode("utf-8", "replace"))
                    if self.bridged:
                        os.write(self._master, data)
                    else:
                        with self._cv:
                            self.out += data
                            self._cv.notify_all()
                elif data:
                    self._cdc.sendall(data)

    def wait_usb(self, timeout=60):
        """Wait until the emulated host has enumerated the chip's USB CDC device."""
        end = time.monotonic() + timeout
        while True:
            try:
                ev = self.events.get(timeout=max(0.1, end - time.monotonic()))
            except queue.Empty:
                raise TimeoutError("USB CDC never enumerated")
            if ev.get("ev") == "usb":
                return ev

    def boot(self, timeout=120):
        """Power on to the REPL prompt (the banner went out before the host enumerated:
        like a board opened after boot, Enter shows the prompt)."""
        self.wait_usb(timeout)
        start = len(self.out)
        self.write(b"\r")
        self.wait_text(b">>> ", timeout, start)
        return self

    def write(self, data):
        self._cdc.sendall(data)

    def wait_text(self, text, timeout=60, start=0):
        """Wait until the chip's CDC output (from offset start) contains text."""
        end = time.monotonic() + timeout
        with self._cv:
            while text not in self.out[start:]:
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError("chip did not print %r; got %r" % (text, bytes(self.out[-400:])))
                self._cv.wait(min(left, 0.5))
            return self.out.index(text, start)

    def exec_start(self, code, timeout=120):
        """Enter the raw REPL and send code without waiting for it to finish; returns
        the output offset where its "OK" will appear."""
        start = len(self.out)
        self.write(b"\r\x03\x03\x01")
        i = self.wait_text(b"raw REPL; CTRL-B to exit\r\n>", timeout, start)
        self.write(code.encode() + b"\x04")
        return i + 27

    def exec(self, code, timeout=120):
        """Run code in the raw REPL; return its stdout (raises ChipError on an exception).
        Leaves the chip at the raw REPL prompt (friendly REPL: write b"\\x02")."""
        start = len(self.out)
        self.write(b"\r\x03\x03\x01")
        i = self.wait_text(b"raw REPL; CTRL-B to exit\r\n>", timeout, start)
        self.write(code.encode() + b"\x04")
        k = self.wait_text(b"OK", timeout, i + 27)
        e = self.wait_text(b"\x04", timeout, k + 2)
        f = self.wait_text(b"\x04", timeout, e + 1)
        self.wait_text(b">", timeout, f + 1)
        out = bytes(self.out[k + 2:e]).decode("utf-8", "replace")
        err = bytes(self.out[e + 1:f]).decode("utf-8", "replace")
        if err:
            raise ChipError(err.strip())
        return out

    # -- control channel ------------------------------------------------------
    def _control_reader(self):
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "id" in msg:
                with self._cv:
                    self.replies[msg["id"]] = msg
                    self._cv.notify_all()
            else:
                self.events.put(msg)

    def call(self, cmd, timeout=60, **kw):
        with self._cv:
            self._id += 1
            i = self._id
        self.proc.stdin.write((json.dumps(dict(kw, id=i, cmd=cmd)) + "\n").encode())
        self.proc.stdin.flush()
        end = time.monotonic() + timeout
        with self._cv:
            while i not in self.replies:
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError("no reply to %s" % cmd)
                self._cv.wait(min(left, 0.5))
            r = self.replies.pop(i)
        if "error" in r:
            raise RuntimeError(r["error"])
        return r

    def world(self, **kw):
        """Change the world at the pins; returns the emulated time (ns) it took effect."""
        return self.call("world", set=kw)["t"]

    def status(self):
        return self.call("status")

    def now(self):
        return self.status()["t"]

    def sleep(self, ms, timeout=None):
        """Let ms of emulated time pass (wall time is bounded generously)."""
        t = self.now() + ms * MS
        return self.call("until", t=t, timeout=timeout or (60 + ms / 10))["t"]

    def wait_for(self, pred, ms, step_ms=20):
        """Poll the chip status until pred(status) holds, at most ms emulated."""
        end = self.now() + ms * MS
        while True:
            s = self.status()
            if pred(s):
                return s
            if s["t"] >= end:
                raise TimeoutError("condition not met in %d ms emulated: %r" % (ms, s["world"]))
            self.sleep(step_ms)

    def events_since(self, t):
        return self.call("events", since=t)["events"]

    def save_flash(self, path):
        return self.call("save_flash", path=path)["t"]

    def cut(self, path, at=None):
        """Power cut: stop the chip now (or at emulated time at, ns), keep the flash as
        it is in path."""
        t = self.call("cut", path=path, at=at or 0, timeout=300)["t"]
        self.proc.wait(30)
        return t
