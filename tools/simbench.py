#!/usr/bin/env python3
"""SimBench: run the wallbox firmware on the simulated bench and drive it from CPython.

The firmware runs unchanged under the MicroPython unix port (`micropython main.py`)
on boards/sim.py; this class talks to it over the sim control channel (hal/simctl.py,
JSON lines on loopback). It is the API the end-to-end tests, `make sim` and the
benchmarks use: keep it stable and documented (docs/simbench.md).

    with SimBench(config={"min_off_s": 5}) as b:
        b.plug()                                  # cable in, EV willing to charge
        b.wait_for(lambda r: r["status"]["contactor"], timeout=5)
        t = b.now_us(50_000)
        b.at(t, plugged=False)                    # unplug 50 ms from now (device clock)
        b.wait_for(lambda r: not r["status"]["contactor"])
        print(b.latency_ms(t, "contactor", 0))   # physical change -> contactor open
"""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from mp import MP32, micropython_bin  # noqa: E402  (one place finds the unix port)


class SimError(RuntimeError):
    pass


_LIVE = set()  # every SimBench whose firmware was started and not closed


def live():
    """The benches whose firmware process is still running."""
    return {b for b in list(_LIVE) if b.alive()}


@atexit.register
def _reap():
    # a bench a crashed test or script never closed must not outlive this process
    for b in list(_LIVE):
        try:
            b.kill()
        except Exception:  # noqa: best effort at exit
            pass


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _micropython(vm=None):
    try:
        return micropython_bin(vm)
    except RuntimeError as ex:
        raise SimError(str(ex))


class SimBench:
    def __init__(self, data_dir=None, config=None, heapsize=None, console=False,
                 extra_args=(), start=True, env=None, romfs=None, world=None, vm=None):
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="wallbox-sim-")
        self.config = dict(config or {})
        self.heapsize = heapsize
        self.console = console
        self.extra_args = list(extra_args)
        self.env = env
        # world: sim inputs as they are at power-on, e.g. {"button": True} to hold the
        # button from boot (boards/sim.py reads them before main() looks at the button)
        self.world = dict(world or {})
        # romfs: a ROMFS image of the device code (tools/romfs.py); the firmware then boots
        # through tools/romboot.py, which keeps the image outside the GC heap (like a board's
        # flash) and imports main from it, instead of running the source tree's main.py
        self.romfs = romfs
        # vm: which unix port runs the firmware (tests/mp.py micropython_bin): None/"pypi",
        # the 64-bit PyPI port; "mp32", the 32-bit one (tools/mp32/: the chip's word size)
        self.vm = vm
        self.proc = None
        self.sock = None
        self.port = None
        self.log_path = os.path.join(self.data_dir, "firmware.log")
        self._buf = b""
        self.console_path = None  # console=True: the serial port for mpremote/Terminal
        self._pty = None
        if start:
            self.start()

    # --- process ------------------------------------------------------------------
    def start(self, timeout=15):
        """Start the firmware (again, on the same data dir after kill())."""
        if self.alive():
            self.kill()  # never two firmware processes for one bench: the first would leak
        self.port = _free_port()
        cmd = [_micropython(self.vm)]
        if self.heapsize:
            cmd += ["-X", "heapsize=%s" % self.heapsize]
        boot = os.path.join(ROOT, "tools", "romboot.py") if self.romfs else "main.py"
        cmd += [boot, "--data", os.path.join(self.data_dir, "store"),
                "--sim-port", str(self.port)]
        if self.config:
            # in a file: the unix port dies ("FATAL: uncaught NLR") on an argument of 256+ bytes
            path = os.path.join(self.data_dir, "config.json")
            with open(path, "w") as f:
                json.dump(self.config, f)
            cmd += ["--config-file", path]
        if not self.console:
            cmd.append("--no-console")
        cmd += self.extra_args
        env = dict(os.environ)
        env["MICROPYPATH"] = ROOT + ":.frozen"
        if self.romfs:
            env["WALLBOX_ROMFS"] = os.path.abspath(self.romfs)
        if self.world:
            env["WALLBOX_SIM_WORLD"] = json.dumps(self.world)
        else:
            env.pop("WALLBOX_SIM_WORLD", None)
        if self.env:
            env.update(self.env)
        self._log = open(self.log_path, "ab")
        if self.console:
            # stdin/stdout on a pty, like the board's USB serial REPL (see ConsolePty)
            if self._pty is None:
                self._pty = ConsolePty()
                self.console_path = self._pty.path
            fw_tty = self._pty.attach(self._log)
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=fw_tty, stdout=fw_tty,
                                         stderr=self._log)
            os.close(fw_tty)
        else:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                         stdout=self._log, stderr=subprocess.STDOUT)
        _LIVE.add(self)
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SimError("firmware exited (%s) at start:\n%s" % (self.proc.returncode, self.log()))
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=1)
                break
            except OSError:
                if time.time() > deadline:
                    self.kill()
                    raise SimError("firmware did not open the sim port:\n" + self.log())
                time.sleep(0.05)
        self.sock.settimeout(10)
        self._buf = b""
        return self

    def log(self):
        """Everything the firmware printed (all runs on this data dir)."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def kill(self):
        """SIGKILL, like a power cut: nothing gets a chance to flush."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_sock()

    def restart(self):
        self.kill()
        return self.start()

    def stop(self):
        """Clean stop: the firmware makes its outputs safe and flushes."""
        if self.proc and self.proc.poll() is None:
            try:
                self._req(op="exit")
            except (SimError, OSError):
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_sock()

    def close(self):
        self.stop()
        _LIVE.discard(self)
        if self._pty is not None:
            self._pty.close()
            self._pty = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _close_sock(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        if self._pty is not None:
            self._pty.detach()
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # --- the serial console (console=True) ---------------------------------------------
    def terminal(self):
        """A Terminal on the console port (close it before mpremote uses the port)."""
        if self.console_path is None:
            raise SimError("start SimBench(console=True) for a console")
        return Terminal(self.console_path)

    def console_output(self):
        """Everything the firmware wrote to its serial port (this data dir, all runs)."""
        return self._pty.output() if self._pty is not None else b""

    # --- protocol -----------------------------------------------------------------
    def _req(self, **req):
        if self.sock is None:
            raise SimError("bench not running")
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SimError("firmware closed the sim channel:\n" + self.log()[-3000:])
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        rep = json.loads(line)
        if not rep.get("ok"):
            raise SimError(rep.get("err", "request failed"))
        return rep

    # --- the physical world -------------------------------------------------------------
    def set(self, **values):
        """Change the world now, e.g. set(plugged=True, want_ma=10000)."""
        for k, v in values.items():
            self._req(op="set", k=k, v=v)

    def at(self, t_us, **values):
        """Schedule a physical change at device time t_us (see now_us())."""
        for k, v in values.items():
            self._req(op="at", t_us=t_us, k=k, v=v)

    def now_us(self, ahead_us=0):
        """Device time (ticks_us), plus ahead_us as the device's ticks_add would: the
        ticks wrap every 2**30 us (~17.9 min) on the 32-bit VM, as on the chip."""
        return (self._req(op="now")["now_us"] + ahead_us) % self.ticks_period()

    def ticks_period(self):
        # 31-bit small ints: 2**30 on the 32-bit VM and the chips; 2**62 on the 64-bit port
        return 1 << 30 if _micropython(self.vm) == MP32 else 1 << 62

    def ticks_diff_us(self, a, b):
        """a - b for two device times, as the device's ticks_diff (wrap-aware)."""
        half = self.ticks_period() // 2
        return (a - b + half) % (2 * half) - half

    def plug(self, want_ma=None):
        if want_ma is not None:
            self.set(want_ma=want_ma)
        self.set(plugged=True, s2=True)

    def unplug(self):
        self.set(plugged=False)

    def set_ev_state(self, letter):
        """Force the CP state ("A".."E"), or "" to let the EV model decide."""
        self.set(ev_state=letter)

    def s2(self, closed):
        """The EV's own wish to charge (S2 closes when it sees PWM)."""
        self.set(s2=closed)

    def diode_fault(self, on=True):
        self.set(diode=not on)

    def cp_short(self, on=True):
        self.set(cp_short=on)

    def load(self, ma):
        """Force the EV's draw per phase (mA); -1 returns to the EV model."""
        self.set(load_ma=ma)

    def rcd_fault(self, on=True):
        self.set(rcd_fault=on)

    def weld(self, on=True):
        self.set(welded=on)

    def temperature(self, deg_c):
        self.set(temp_dc=int(round(deg_c * 10)))

    # --- reading --------------------------------------------------------------------
    def read(self):
        """{"world": ..., "status": ..., "stats": ...}"""
        return self._req(op="read")

    def status(self):
        return self.read()["status"]

    def state(self):
        return self.status()["state"]

    def contactor(self):
        return self.status()["contactor"]

    def faults(self):
        return self.status()["faults"]

    def events(self, n=0):
        return self._req(op="events", n=n)["events"]

    def sessions(self, n=0):
        """{"sessions": [...], "outbox": [sid...], "open": {...}|None, "energy_wh": int}"""
        return self._req(op="sessions", n=n)

    def changes(self, since=0):
        """Output changes [t_us, what, value, seq]: what = contactor|pilot|lock|rcd_test|phases."""
        return self._req(op="changes", since=since)["changes"]

    def applied(self):
        """Scheduled physical events as applied: [t_us, name, value]."""
        return self._req(op="applied")["applied"]

    def stats(self):
        return self._req(op="stats")["stats"]

    def reset_stats(self):
        self._req(op="reset_stats")

    def cmd(self, name, *args):
        """Firmware command (set_current, enable, authorize, set_phases, reset_faults,
        status): returns (ok, value_or_error)."""
        r = self._req(op="cmd", name=name, args=list(args))
        return r["cmd_ok"], r["value"]

    def config_set(self, key, value):
        """Set one config key (validated, persisted); raises SimError with the reason."""
        self._req(op="config", k=key, v=value)

    def config_get(self):
        """The whole config (secrets redacted)."""
        return self._req(op="config")["config"]

    def gc(self):
        """gc.collect() in the firmware, then {"mem_alloc": .., "mem_free": ..}."""
        r = self._req(op="gc")
        return {"mem_alloc": r["mem_alloc"], "mem_free": r["mem_free"]}

    def wait_for(self, pred, timeout=10.0, poll=0.02, what="condition"):
        """Poll read() until pred(read) is true; return that read."""
        deadline = time.time() + timeout
        while True:
            r = self.read()
            if pred(r):
                return r
            if time.time() > deadline:
                raise SimError("timeout waiting for %s; last: %s" % (what, json.dumps(r["status"])))
            time.sleep(poll)

    def wait_state(self, prefix, timeout=10.0):
        return self.wait_for(lambda r: r["status"]["state"].startswith(prefix), timeout,
                             what="state " + prefix)

    def latency_ms(self, t_us, what="contactor", value=0):
        """ms from device time t_us to the first change of `what` to `value` after it."""
        for c in self.changes():
            if c[1] == what and c[2] == value and self.ticks_diff_us(c[0], t_us) >= 0:
                return self.ticks_diff_us(c[0], t_us) / 1000.0
        return None


class ConsolePty:
    """The firmware's serial port on the unix port: its stdin/stdout are a pty (A) whose
    master is relayed to a second pty (B). B's slave path is the "serial port" that
    mpremote, pyserial or a Terminal opens, as often as they like. Output that nobody
    reads is dropped (as on a serial line), so the firmware never blocks on stdout."""

    def __init__(self):
        import tty
        self._mb, sb = os.openpty()
        self.path = os.ttyname(sb)
        tty.setraw(sb)  # no echo back into the firmware while no client has it open
        os.close(sb)
        os.set_blocking(self._mb, False)
        self._ma = None
        self._thread = None
        self._stop = False
        self._out = bytearray()
        self._lock = threading.Lock()

    def attach(self, log):
        """A new pty A for a firmware run: returns the slave fd to give the process."""
        self.detach()
        ma, sa = os.openpty()
        self._ma = ma
        self._stop = False
        self._thread = threading.Thread(target=self._relay, args=(ma, log), daemon=True)
        self._thread.start()
        return sa

    def _relay(self, ma, log):
        import select
        mb = self._mb
        while not self._stop:
            try:
                r, _, _ = select.select([ma, mb], [], [], 0.05)
            except (OSError, ValueError):
                return
            if ma in r:
                try:
                    data = os.read(ma, 4096)
                except OSError:  # the firmware exited (EIO)
                    data = b""
                if not data:
                    return
                with self._lock:
                    self._out += data
                    if len(self._out) > 1 << 20:
                        del self._out[:len(self._out) - (1 << 20)]
                try:
                    log.write(data)
                    log.flush()
                except (OSError, ValueError):
                    pass
                try:
                    os.write(mb, data)
                except OSError:  # nobody reading the port: dropped
                    pass
            if mb in r:
                try:
                    data = os.read(mb, 4096)
                except (BlockingIOError, OSError):  # EIO: no client has the port open
                    time.sleep(0.02)
                    continue
                if data:
                    os.write(ma, data)

    def output(self):
        with self._lock:
            return bytes(self._out)

    def detach(self):
        self._stop = True
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None
        if self._ma is not None:
            os.close(self._ma)
            self._ma = None

    def close(self):
        self.detach()
        if self._mb is not None:
            os.close(self._mb)
            self._mb = None


class Terminal:
    """A technician's terminal on a console port: raw mode, read with timeouts."""

    def __init__(self, path, prompt=b"wb> "):
        import termios
        import tty
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self.fd)
        termios.tcflush(self.fd, termios.TCIFLUSH)
        self.prompt = prompt
        self.buf = b""

    def write(self, data):
        if isinstance(data, str):
            data = data.encode()
        os.write(self.fd, data)

    def read_until(self, pattern, timeout=10.0):
        """Bytes up to and including `pattern` (bytes); SimError on timeout."""
        import select
        deadline = time.time() + timeout
        while pattern not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise SimError("console: no %r within %.1f s; got %r" % (
                    pattern, timeout, self.buf[-2000:]))
            r, _, _ = select.select([self.fd], [], [], min(left, 0.1))
            if r:
                self.buf += os.read(self.fd, 4096)
        i = self.buf.index(pattern) + len(pattern)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def drain(self, quiet=0.2, limit=2.0):
        """Discard what the console printed before now (e.g. a prompt re-shown after
        mpremote left the raw REPL), so the next read belongs to the next command."""
        import select
        end = time.time() + limit
        while time.time() < end:
            r, _, _ = select.select([self.fd], [], [], quiet)
            if not r:
                break
            os.read(self.fd, 4096)
        self.buf = b""

    def command(self, line, timeout=10.0):
        """Type a line and Enter; return the text printed before the next prompt."""
        self.drain()
        self.write(line + "\r")
        out = self.read_until(b"\n" + self.prompt, timeout)
        text = out[:-len(self.prompt)].decode(errors="replace").replace("\r\n", "\n")
        head, _, rest = text.partition("\n")  # the echoed line
        return rest

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


if __name__ == "__main__":  # a tiny smoke run: plug, charge, unplug
    with SimBench(config={"min_off_s": 5}) as b:
        b.plug()
        b.wait_for(lambda r: r["status"]["contactor"], what="charging")
        print(b.status())
        t = b.now_us(50000)
        b.at(t, plugged=False)
        b.wait_for(lambda r: not r["status"]["contactor"])
        print("unplug -> open: %.1f ms" % b.latency_ms(t))
        sys.exit(0)
