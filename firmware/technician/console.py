# The technician's console: an asyncio task on the serial REPL port (in the manner of
# micropython-lib's aiorepl, written here: it is not installable). It runs
#   - a friendly line REPL: one line is evaluated in a namespace holding help(),
#     status(), selftest() ... (firmware/technician/service.py); results are printed, errors
#     shown without killing anything; Ctrl-C cancels the line, Ctrl-D leaves
#     (safe mode only), Ctrl-A enters
#   - the raw REPL that mpremote speaks: Ctrl-A, code, Ctrl-D -> "OK", output, \x04,
#     error, \x04, ">"; Ctrl-B back to friendly. Raw-paste is declined ("R\x00").
# The terminal is put in raw mode (unix port) and Ctrl-C is turned into a plain byte
# (micropython.kbd_intr(-1)), so nothing reaches the firmware as KeyboardInterrupt;
# restore() puts both back. A call that returns a coroutine (selftest) is awaited
# here, so the control loop keeps ticking while it runs.
import asyncio
import sys
from micropython import const

try:
    import micropython
except ImportError:  # pragma: no cover
    micropython = None

from firmware.technician import service
from firmware.technician.service import ConsoleError

PROMPT = "wb> "
_LINE_MAX = 240
_RAW_MAX = 16384  # raw REPL code bound: mpremote sends files in 256-byte pieces
_HEADING = "raw REPL; CTRL-B to exit\n"
_PASTE_WINDOW = const(256)  # raw-paste flow control window (bytes)
_CHUNK = const(256)  # bytes taken per wakeup: stdin.read(n) would wait for all n, so
# after one awaited byte the rest is read while select.poll says more is there
_HELP = """wallbox console: type a command and Enter; Ctrl-C cancels the line.
  status()               state, currents, voltages, contactor, RCD, network...
  faults()               active faults and recent fault events
  log(n=20)              last n events
  sessions(n=10)         last n charging sessions
  config()               every setting: value, allowed, meaning; config('key')
  set('key', value)      change a setting, e.g. set('max_current_a', 20)
  selftest()             RCD, contactor, CP levels, lock, meter (no EV only)
  calibrate('ct', phase, amps)      CT gain from a clamp meter reading
  calibrate('cp', plus_v, minus_v)  CP scaling from multimeter readings (no EV)
  reset_faults()         clear faults whose cause is gone
  factory_reset()        settings back to defaults (asks for a code)
  current(amps)          charging limit now (0 pauses); enable(True/False)
  update(file_or_url, sha256=None)  signed firmware update; ota() its state; rollback()
Safe to use while charging: unsafe calls are refused with the reason.%s"""

_saved = None  # terminal attributes to restore


def _raw_terminal():
    """Unix port: no line buffering, no echo, no signals on stdin; boards: no-op."""
    global _saved
    if micropython is not None:
        micropython.kbd_intr(-1)
    try:
        import termios
    except ImportError:
        return
    try:
        attr = termios.tcgetattr(0)
    except (OSError, Exception):  # stdin is not a terminal
        return
    if _saved is None:
        _saved = [list(a) if type(a) is list else a for a in attr]
    # Linux values (the module has no names): lflag ICANON|ECHO|ISIG, iflag ICRNL|IXON
    attr[3] &= ~(0o2 | 0o10 | 0o1)
    attr[0] &= ~(0o400 | 0o2000)
    termios.tcsetattr(0, 0, attr)


def restore():
    """Terminal and Ctrl-C back as they were (idempotent; app.main calls it too)."""
    global _saved
    if micropython is not None:
        micropython.kbd_intr(3)
    if _saved is not None:
        try:
            import termios
            termios.tcsetattr(0, 0, _saved)
        except Exception:
            pass
        _saved = None


def _out(s):
    sys.stdout.write(s)


class Console:
    def __init__(self, rt, safe_mode=False):
        self.rt = rt
        self.safe_mode = safe_mode
        self.svc = service.Service(rt, safe_mode)
        self.done = False
        self.ns = self._namespace()
        self._rb = bytearray(_CHUNK)
        self._rn = 0
        self._ri = 0
        self._poll = None

    def _namespace(self):
        svc = self.svc
        cmds = svc.cmds
        from firmware.services import selftest as st

        def current(amps):
            ok, v = cmds.set_current(amps)
            if not ok:
                raise ConsoleError(v)
            print("current limit %s A" % v)

        def enable(on):
            ok, v = cmds.enable(on)
            if not ok:
                raise ConsoleError(v)
            print("charging %s" % ("enabled" if v else "disabled"))

        def exit_():
            if not self.safe_mode:
                raise ConsoleError("the firmware keeps running; close the terminal instead")
            self.done = True

        ns = {
            "help": lambda: print(_HELP % (
                "\nSAFE MODE: application stopped, outputs off. exit() leaves the console."
                if self.safe_mode else "")),
            "status": svc.status, "faults": svc.faults, "log": svc.log,
            "sessions": svc.sessions, "config": svc.config, "set": svc.set,
            "reset_faults": svc.reset_faults, "factory_reset": svc.factory_reset,
            "selftest": lambda: st.selftest(svc),
            "calibrate": lambda what=None, a=None, b=None: st.calibrate(svc, what, a, b),
            "current": current, "enable": enable, "data": svc.data, "exit": exit_,
            "rt": self.rt, "ConsoleError": ConsoleError, "asyncio": asyncio,
        }
        for f in self.rt.features.values():  # a feature's console calls (ota: update, rollback)
            fn = getattr(f, "console", None)
            if fn is not None:
                ns.update(fn(ConsoleError))
        return ns

    # --- evaluation -----------------------------------------------------------------
    async def _eval(self, code, show):
        """Evaluate (expression) or execute (statements); await a coroutine result."""
        ns = self.ns
        try:
            try:
                fn = compile(code, "<console>", "eval")
                r = eval(fn, ns)
            except SyntaxError:
                exec(code, ns)
                r = None
            if type(r).__name__ in ("generator", "coroutine"):
                r = await r  # selftest(): the loop keeps ticking meanwhile
            if show and r is not None:
                ns["_"] = r
                print(repr(r))
            return None
        except ConsoleError as ex:
            if show:
                print("error:", ex.args[0] if ex.args else "")
                return None
            return ex
        except asyncio.CancelledError:
            raise
        except Exception as ex:  # noqa: any mistake at the console is reported, never fatal
            if show:
                sys.print_exception(ex, sys.stdout)
                return None
            return ex

    # --- the task ---------------------------------------------------------------------
    async def run(self):
        _raw_terminal()
        try:
            self._stdin = getattr(sys.stdin, "buffer", sys.stdin)
            s = asyncio.StreamReader(self._stdin)
            try:
                import select
                self._poll = select.poll()
                self._poll.register(self._stdin, select.POLLIN)
            except Exception:  # a port without poll on stdin: one byte per await
                self._poll = None
            print("\nwallbox console: help() lists the commands")
            _out(PROMPT)
            await self._friendly(s)
        finally:
            restore()

    async def _read(self, s):
        if self._ri >= self._rn:
            b = await s.read(1)
            if not b:
                raise EOFError
            rb = self._rb
            rb[0] = ord(b)
            n = 1
            p = self._poll
            while p is not None and n < _CHUNK and p.poll(0):
                b = self._stdin.read(1)
                if not b:
                    break
                rb[n] = ord(b)
                n += 1
            self._rn = n
            self._ri = 0
        c = self._rb[self._ri]
        self._ri += 1
        return c

    async def _friendly(self, s):
        line = ""
        esc = 0
        while not self.done and not self.rt.stopped:
            try:
                c = await self._read(s)
            except EOFError:
                return  # no terminal (stdin closed): nothing to serve
            if esc == 1:  # ESC [ ... / ESC O x (arrow keys): skipped, no history here
                esc = 2 if c in (0x5B, 0x4F) else 0
                continue
            if esc == 2:
                if not 0x30 <= c <= 0x3F:
                    esc = 0  # the final byte ends the sequence
                continue
            if c == 0x1B:
                esc = 1
            elif c == 0x01:  # Ctrl-A: raw REPL for mpremote
                line = ""
                if not await self._raw(s):
                    return
                _out(PROMPT)
            elif c == 0x03:  # Ctrl-C cancels the line; the firmware keeps running
                line = ""
                _out("^C\n" + PROMPT)
            elif c == 0x04:
                if self.safe_mode and not line:
                    _out("\n")
                    return
                _out("\n(the firmware keeps running)\n" + PROMPT if not line else "")
            elif c == 0x02:
                _out("\nwallbox console: help() lists the commands\n" + PROMPT)
            elif c in (0x0D, 0x0A):
                _out("\n")
                if line.strip():
                    if line.rstrip().endswith(":"):
                        print("error: one line at a time here (use ';' or mpremote)")
                    else:
                        await self._eval(line, True)
                line = ""
                if self.done:
                    return
                _out(PROMPT)
            elif c in (0x08, 0x7F):
                if line:
                    line = line[:-1]
                    _out("\b \b")
            elif 0x20 <= c < 0x7F and len(line) < _LINE_MAX:
                line += chr(c)
                _out(chr(c))

    async def _raw(self, s):
        """Raw REPL until Ctrl-B (True) or end of input (False)."""
        _out(_HEADING + ">")
        buf = bytearray()
        while not self.rt.stopped:
            try:
                c = await self._read(s)
            except EOFError:
                return False
            if c == 0x01:  # Ctrl-A: raw-paste request "\x05A\x01", or restart
                if buf == b"\x05A":
                    buf = bytearray()
                    if not await self._paste(s):
                        return False
                else:
                    _out(_HEADING + ">")
                    buf = bytearray()
            elif c == 0x02:
                _out("\n")
                return True
            elif c == 0x03:
                buf = bytearray()
            elif c == 0x04:
                if not buf:
                    continue  # soft reset: not here, the firmware keeps running
                _out("OK")
                code = bytes(buf).decode()
                buf = bytearray()
                await self._exec_raw(code)
            elif len(buf) < _RAW_MAX:
                buf.append(c)
        return False

    async def _exec_raw(self, code):
        err = await self._eval(code, False)
        _out("\x04")
        if err is not None:
            sys.print_exception(err, sys.stdout)
        _out("\x04>")

    async def _paste(self, s):
        """Raw-paste mode: "R\x01" + window (u16 LE); a \x01 grants each further
        window; \x04 ends the code (acknowledged with \x04), then run as raw."""
        _out("R\x01" + chr(_PASTE_WINDOW & 0xFF) + chr(_PASTE_WINDOW >> 8))
        buf = bytearray()
        n = 0
        while True:
            try:
                c = await self._read(s)
            except EOFError:
                return False
            if c == 0x04:
                _out("\x04")
                break
            if len(buf) < _RAW_MAX:
                buf.append(c)
            n += 1
            if n == _PASTE_WINDOW:
                n = 0
                _out("\x01")
        await self._exec_raw(bytes(buf).decode())
        return True


async def run(rt, safe_mode=False):
    """The supervised console task (firmware/app.py)."""
    await Console(rt, safe_mode).run()
