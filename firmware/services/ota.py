# Over-the-air updates: the one object other features call (docs/ota.md "API"). This
# module is what every box carries (it is imported at boot when config `ota` is on), so it
# is small: state, status, the API entry points and a worker task that exists only while
# there is something to do (an update waiting or running, a trial to judge, a switch).
# The work itself is in firmware/services/ota_ops.py (installing, health, rollback,
# switch) and ota_install.py (the bundle), imported on first use. The boot pointer belongs
# to the loader (loader.py). Nothing here runs in the control tick, and no flash write,
# download or slot switch starts while the contactor is closed.
import asyncio
import time

from firmware.services.runtime import VERSION

IDLE = "idle"
WAITING = "waiting"
DOWNLOADING = "downloading"
VERIFYING = "verifying"
INSTALLING = "installing"
SWITCHING = "switching"
TRIAL = "trial"
FAILED = "failed"
_RUNNING = (DOWNLOADING, VERIFYING, INSTALLING)


def _loader():
    try:
        import loader
        return loader
    except ImportError:
        return None


class Ota:
    def __init__(self, rt, board_name=None):
        self.rt = rt
        self.ld = _loader()
        ld = self.ld
        self.booted = ld is not None and ld.booted
        if self.booted:
            self.dir = ld.ota_dir
        elif ld is not None:
            self.dir = ld.dir_for(["--data", rt.store.path])
        else:
            self.dir = "/ota"
        self.boot = (ld.state if self.booted else None) or {}
        self.slot = ld.slot if self.booted else None
        self.board = board_name or getattr(rt, "board_name", "sim")
        self.installed = VERSION
        self.trial = bool(self.boot.get("trial")) and self.booted
        self.state = TRIAL if self.trial else IDLE
        self.error = None
        self.latest = None  # {"version", "summary", "url", "sha256"} offered, not installed
        self.progress_pct = None
        self.waiting = None
        self.job = None  # (kind, arg, sha256, progress, origin) waiting for an open contactor
        self.pending = None  # installed manifest waiting for the switch
        self.on_change = []  # callables(ota): status changed (MQTT publishes it)
        self.url_opener = None  # async f(url, rt) -> reader (firmware/links/ota_http.py)
        self.on_write = None  # tests: called with the write count after each flash change
        self.max_bytes = 1 << 20
        self.last = None  # the last install's figures (bench): ms, verify ms, gap, heap
        self._task = None  # the worker task while there is work
        self._healthy_since = None
        self._confirmed = False  # the MicroPython image confirmed this boot (ESP32)
        self._trial_start = time.ticks_ms()
        self._cancel = False
        note = ld.note if self.booted else None
        self.rollback_note = note or self.boot.get("rollback")
        if note:
            self._event("ota_rollback", note)

    # --- queries ---------------------------------------------------------------------

    def busy(self):
        """None, or why an update cannot start now."""
        if self.state in _RUNNING:
            return "an update is running (%s %s %%)" % (self.state, self.progress_pct or 0)
        if self.state == SWITCHING:
            return "an update is installed and waits to switch (%s)" % (
                self.pending or {}).get("version")
        if self.state == WAITING:
            return "an update waits for the session to end"
        if self.trial:
            return "the running version %s is on trial: wait until it is healthy" % self.installed
        if not self.booted:
            return "this box did not boot through the A/B loader (main.py): wbctl deploy first"
        return None

    def _charging(self):
        o = self.rt.evse.outputs
        return "the contactor is closed (charging)" if o.contactor else None

    def status(self):
        b = self.boot
        return {
            "state": self.state, "installed": self.installed, "slot": self.slot or "factory",
            "trial": self.trial, "tries": b.get("tries", 0) if self.trial else 0,
            "latest": (self.latest or {}).get("version") or self.installed,
            "summary": (self.latest or {}).get("summary", ""),
            "progress": self.progress_pct, "error": self.error,
            "failed": b.get("failed") or [], "rollback": self.rollback_note,
            "waiting": self.waiting, "floor": b.get("floor", 0), "dir": self.dir,
            "last": self.last,
        }

    # --- requests (docs/ota.md API) ---------------------------------------------------

    # --- the API (docs/ota.md): the work is in ota_ops, imported on first use ----------

    def start_url(self, url, sha256_hex=None, progress=None, origin="mqtt"):
        return _ops().start_url(self, url, sha256_hex, progress, origin)

    def start_file(self, path, sha256_hex=None, progress=None, origin="serial"):
        return _ops().start_file(self, path, sha256_hex, progress, origin)

    async def install(self, reader, size=None, sha256_hex=None, progress=None, origin="web"):
        return await _ops().install(self, reader, size, sha256_hex, progress, origin)

    def cancel(self):
        return _ops().cancel(self)

    def rollback(self):
        return _ops().rollback(self)

    def console(self, error):
        return _ops().console(self, error)

    def needs_worker(self):
        """A trial to judge, or a MicroPython image to confirm (ESP32): work from boot."""
        return self.trial or getattr(self.rt.hw, "image", None) is not None

    def wake(self):
        """Start the worker task unless it runs (called when work appears)."""
        if self._task is None:
            self._task = asyncio.create_task(self.worker())

    async def worker(self):
        self._task = self._task or True
        try:
            await _ops().run(self)
        except Exception as ex:  # noqa: an update bug must never take the box down
            self._event("ota_error", repr(ex)[:60])
            self.error = repr(ex)[:120]
            self._set(FAILED, None)
        finally:
            self._task = None

    def _set(self, state, waiting):
        self.state = state
        self.waiting = waiting
        for f in self.on_change:
            f(self)

    def _event(self, kind, detail):
        rt = self.rt
        rt.store.event(kind, detail, 0)
        if rt.link is not None:
            rt.link.on_event(kind, detail[:60])
        print("ota: %s %s" % (kind, detail))



def _ops():
    from firmware.services import ota_ops
    return ota_ops
