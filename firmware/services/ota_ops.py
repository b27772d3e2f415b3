# The work behind firmware/services/ota.py (docs/ota.md), imported on first use: queueing
# an update until the contactor is open, running the install (ota_install.py) into the
# inactive slot, the switch and reboot, the trial's health check and the healthy mark,
# rollback, trusted keys, the console calls. Functions take the Ota object first.
import asyncio
import binascii
import gc
import json
import os
import sys
import time
from micropython import const

from firmware.services.ota import (DOWNLOADING, FAILED, IDLE, INSTALLING, SWITCHING, TRIAL,
                                   WAITING, _RUNNING)

_POLL_MS = const(200)
_STALL_TICKS = const(5)  # the control loop is alive if its last tick is this many periods old
_ERR_LEN = const(120)
# Ed25519 work per step between two awaits: ~1 ms on the unix port at 16 bits; a board's
# MicroPython is tens of times slower at big ints, so it does less per step.
_BITS_PER_STEP = 16 if sys.platform == "linux" else 2


def start_url(self, url, sha256_hex=None, progress=None, origin="mqtt"):
    if type(url) is not str or not (url.startswith("http://") or url.startswith("https://")):
        return False, "url must start with http:// or https://"
    if self.url_opener is None:
        return False, "no HTTP client in this build"
    return _queue(self, ("url", url, sha256_hex, progress, origin))


def start_file(self, path, sha256_hex=None, progress=None, origin="serial"):
    try:
        os.stat(path)
    except (OSError, TypeError):
        return False, "no bundle file %r on the box" % (path,)
    return _queue(self, ("file", path, sha256_hex, progress, origin))


def _queue(self, job):
    err = _check_sha(job[2])
    if err:
        return False, err
    why = self.busy()
    if why:
        return False, why
    self.job = job
    self.error = None
    self._cancel = False
    self._event("ota_request", "%s %s" % (job[4], job[1]))
    why = self._charging()
    if why:
        self._event("ota_wait", why)
        self._set(WAITING, why)
        self.wake()
        return True, "waiting for the session to end (%s)" % why
    self._set(WAITING, None)  # the worker starts it within one poll
    self.wake()
    return True, "started"


async def install(self, reader, size=None, sha256_hex=None, progress=None, origin="web"):
    """Install from a stream the caller owns; (ok, message). Refused while charging."""
    err = _check_sha(sha256_hex) or self.busy() or self._charging()
    if err:
        return False, err
    self.job = None
    return await _run(self, reader, sha256_hex, progress, origin)


def cancel(self):
    if self.state == WAITING:
        self.job = None
        self._set(IDLE, None)
        self._event("ota_cancel", "")
        return True, "cancelled"
    if self.state in _RUNNING:
        self._cancel = True
        return True, "cancelling"
    if self.state == SWITCHING:
        self.pending = None
        self._set(IDLE, None)
        return True, "switch cancelled: the installed slot stays unused"
    return False, "no update to cancel"


def rollback(self):
    """Back to the previous slot (a manual rollback; the reboot waits for idle)."""
    if not self.booted:
        return False, "this box did not boot through the A/B loader"
    b = self.boot
    prev = b.get("prev")
    if not prev:
        return False, "no previous version to go back to"
    if self.state in _RUNNING or self.state == SWITCHING:
        return False, self.busy()
    st = self.ld.rolled_back(b, "manual rollback") if self.trial else {
        "slot": prev.get("slot"), "version": prev.get("version"), "trial": False,
        "tries": 0, "prev": None, "failed": b.get("failed") or [],
        "floor": b.get("floor", 0), "rollback": "%s: manual rollback" % self.installed}
    if prev.get("arb", 0) < b.get("floor", 0):
        return False, "rollback refused: %s is below the anti-rollback level %d" % (
            prev.get("version"), b.get("floor", 0))
    self.pending = {"version": prev.get("version") or "factory", "boot": st}
    self._event("ota_rollback", "manual, to %s" % self.pending["version"])
    self._set(SWITCHING, self._charging())
    self.wake()
    return True, "rolling back to %s (reboot when the contactor is open)" % (
        self.pending["version"])


def console(self, error):
    """The technician console's calls (firmware/technician/console.py)."""
    def update_(src, sha256=None):
        if type(src) is str and (src.startswith("http://") or src.startswith("https://")):
            ok, msg = start_url(self, src, sha256, origin="console")
        else:
            ok, msg = start_file(self, src, sha256, origin="console")
        if not ok:
            raise error(msg)
        print("update: %s" % msg)

    def rollback_():
        ok, msg = rollback(self)
        if not ok:
            raise error(msg)
        print("rollback: %s" % msg)

    def ota_():
        for k, v in self.status().items():
            print("%-10s %s" % (k, v))

    return {"update": update_, "rollback": rollback_, "ota": ota_}


# --- the task --------------------------------------------------------------------


async def run(self):
    rt = self.rt
    while not rt.stopped:
        await asyncio.sleep_ms(_POLL_MS)
        if self.trial:
            _check_trial(self)
        elif not self._confirmed:
            _check_image(self)
        if self.state == WAITING and self.job is not None:
            why = self._charging()
            if why:
                if self.waiting != why:
                    self._set(WAITING, why)
                continue
            job = self.job
            kind, arg, sha, progress, origin = job
            reader = None
            try:
                reader = (await self.url_opener(arg, rt)) if kind == "url" else \
                    _FileReader(arg)
            except Exception as ex:  # noqa: any transport error is reported
                self.job = None
                _fail(self, "download failed: %s" % _text(ex), progress)
                continue
            try:
                ok, msg = await _run(self, reader, sha, progress, origin)
            finally:
                _close(reader)
            if kind == "file" and arg.startswith(self.dir + "/incoming") and \
                    self.state != WAITING:
                try:
                    os.remove(arg)  # wbctl update's copy: the slot has it now
                except OSError:
                    pass
            if not ok and self.state == WAITING:
                continue  # interrupted by a session: retried when it ends
            self.job = None
        elif self.state == SWITCHING:
            why = self._charging()
            if why != self.waiting:
                self._set(SWITCHING, why)
            if why is None:
                switch(self)
                return
        if self.state not in (WAITING, SWITCHING) and not self.trial and (
                self._confirmed or getattr(rt.hw, "image", None) is None):
            return  # nothing left to do: the task ends (no heap, no wakeups while idle)


async def _run(self, reader, sha, progress, origin):
    from firmware.services import ota_install as oi
    keys = trusted_keys(self)
    if not keys:
        return _fail(self, "no update keys on this box: provision %s/keys.json "
                          "(docs/ota.md)" % self.dir, progress)
    target = "b" if self.slot == "a" else "a"
    b = self.boot
    self.progress_pct = 0
    self._set(DOWNLOADING, None)

    def guard():
        if self._cancel:
            return "cancelled"
        return self._charging()

    gc.collect()
    heap0 = gc.mem_alloc()
    hist0 = list(self.rt.stats.gap_hist)

    def prog(state, done, total):
        pct = done * 100 // total if total else 0
        if state != self.state or pct != self.progress_pct:
            self.progress_pct = pct
            self._set(state, None)
        if progress is not None:
            progress(state, done, total, None)

    inst = oi.Installer(
        self.dir, target, keys, self.board, self.ld.VERSION, b.get("floor", 0),
        b.get("failed") or [], self.max_bytes, sha, on_write=self.on_write, guard=guard,
        progress=prog, bits_per_step=_BITS_PER_STEP)
    t0 = time.ticks_ms()
    try:
        m = await inst.run(reader)
    except oi.Rejected as ex:
        return _fail(self, "rejected: %s" % ex.args[0], progress)
    except oi.Interrupted as ex:
        why = ex.args[0]
        self.progress_pct = None
        if why != "cancelled" and self.job is not None:
            self._event("ota_wait", why)
            self._set(WAITING, why)  # retried from the start once the session ends
            return False, "interrupted: %s" % why
        self.job = None
        return _fail(self, "interrupted: %s" % why, progress)
    except Exception as ex:  # noqa: a flash or transport error mid-way
        return _fail(self, "install failed: %s" % _text(ex), progress)
    v = m["version"]
    self.latest = {"version": v, "summary": m.get("summary", "")}
    self.pending = {"version": v, "boot": trial_pointer(target, m, b, self.slot,
                                                        self.installed)}
    self.progress_pct = None
    gap = 0  # the control loop's longest gap meanwhile (its histogram, 1 ms buckets)
    h = self.rt.stats.gap_hist
    for i in range(len(h)):
        if h[i] != hist0[i]:
            gap = i
    self.last = {"install_ms": time.ticks_diff(time.ticks_ms(), t0),
                 "verify_ms": inst.verify_ms, "max_gap_ms": gap,
                 "heap_before": heap0, "heap_peak": inst.heap_peak,
                 "bytes": inst.total, "writes": inst.writes}
    self._event("ota_installed", "%s into %s from %s: %d ms, verify %d ms, gap %d ms, "
                "heap +%d" % (v, target, origin, self.last["install_ms"],
                             inst.verify_ms, gap, inst.heap_peak - heap0))
    self._set(SWITCHING, self._charging())
    self.wake()  # install() runs in its caller's task: the worker does the switch
    if progress is not None:
        progress(SWITCHING, inst.total, inst.total, None)
    return True, "installed %s: reboot into it when the contactor is open" % v


def switch(self):
    """Write the new boot pointer (atomic rename) and reboot. Contactor open only."""
    p = self.pending
    self.ld.write_state(self.dir, p["boot"])
    if self.on_write is not None:
        self.on_write(-1)
    self._event("ota_switch", "reboot into %s" % p["version"])
    self.rt.store.flush()
    self.rt.reboot = "update to %s" % p["version"]
    self.rt.stopped = True


# --- trial ------------------------------------------------------------------------


def _check_trial(self):
    rt = self.rt
    now = time.ticks_ms()
    st = rt.stats
    if st.task_errors:
        _trial_failed(self, "a task raised: %s" % st.last_error)
        return
    ok = _healthy_now(self, now)
    if not ok:
        self._healthy_since = None
    elif self._healthy_since is None:
        self._healthy_since = now
    need = rt.config.get("ota_healthy_s") * 1000
    if self._healthy_since is not None and time.ticks_diff(now, self._healthy_since) >= need:
        _mark_healthy(self)
    elif time.ticks_diff(now, self._trial_start) >= 2 * need + 3000 and \
            not self._charging():
        # Not healthy in time: reboot; the loader counts the boot and rolls back after
        # loader.MAX_TRIAL_BOOTS of them.
        self._event("ota_unhealthy", "not healthy within %d s: reboot" % (need // 1000))
        rt.store.flush()
        rt.reboot = "trial not healthy"
        rt.stopped = True


def _check_image(self):
    """A board that updates its MicroPython image too (ESP32, hal/esp32_image.py):
    confirm the running image once the app has been healthy for ota_healthy_s."""
    now = time.ticks_ms()
    if not _healthy_now(self, now):
        self._healthy_since = None
        return
    if self._healthy_since is None:
        self._healthy_since = now
    if time.ticks_diff(now, self._healthy_since) >= self.rt.config.get("ota_healthy_s") * 1000:
        self._confirmed = True
        _confirm_image(self)


def _confirm_image(self):
    img = getattr(self.rt.hw, "image", None)
    if img is not None and img.mark_valid():
        self._event("ota_image_valid", "MicroPython image confirmed")


def _healthy_now(self, now):
    rt = self.rt
    if rt.stats.ticks == 0 or time.ticks_diff(now, rt.last_tick_ms) > _STALL_TICKS * rt.period_ms + 50:
        return False
    if rt.store.errors:
        return False
    hw = rt.hw
    if not rt.evse.outputs.contactor and hw.contactor.feedback() == 1:
        return False  # open but its mirror contact says closed: welded
    return True


def _mark_healthy(self):
    b = dict(self.boot)
    keys = b.pop("keys", None)
    if keys:
        _write_keys(self, keys)
    b["trial"] = False
    b["tries"] = 0
    b["floor"] = max(b.get("floor", 0), b.get("arb", 0))
    b["rollback"] = None
    self.ld.write_state(self.dir, b)
    self.boot = b
    self.trial = False
    self.rollback_note = None
    self._confirmed = True
    _confirm_image(self)
    self._event("ota_healthy", "%s kept (anti-rollback level %d)" % (
        self.installed, b["floor"]))
    self._set(IDLE, None)


def _trial_failed(self, why):
    if self.state == SWITCHING:
        return
    st = self.ld.rolled_back(self.boot, why)
    self.trial = False
    self.pending = {"version": st.get("version") or "factory", "boot": st}
    self.rollback_note = st["rollback"]
    self._event("ota_rollback", st["rollback"])
    self.ld.write_state(self.dir, st)  # at once: a crash before the reboot rolls back too
    self.boot = st
    self._set(SWITCHING, self._charging())


# --- keys -------------------------------------------------------------------------


def trusted_keys(self):
    """Public keys (bytes) in <ota>/keys.json: {"keys": ["<64 hex>", ...]} (1 or 2)."""
    try:
        with open(self.dir + "/keys.json") as f:
            ks = json.loads(f.read()).get("keys")
        return [binascii.unhexlify(k) for k in ks[:2] if type(k) is str and len(k) == 64]
    except (OSError, ValueError, AttributeError, TypeError):
        return []


def _write_keys(self, keys):
    p = self.dir + "/keys.json"
    with open(p + ".tmp", "w") as f:
        f.write(json.dumps({"keys": keys}))
    os.rename(p + ".tmp", p)
    self._event("ota_keys", "trusted keys replaced (%d)" % len(keys))


# --- reporting --------------------------------------------------------------------


def _fail(self, why, progress=None):
    self.error = why[:_ERR_LEN]
    self.progress_pct = None
    self._event("ota_failed", self.error)
    self._set(FAILED if not self.trial else TRIAL, None)
    if progress is not None:
        progress(FAILED, 0, 0, self.error)
    return False, self.error


def trial_pointer(target, m, boot, slot, installed):
    """The boot pointer that starts manifest m's version in slot `target` on trial."""
    return {"slot": target, "version": m["version"], "trial": True, "tries": 0,
            "arb": m["arb"], "prev": {"slot": slot, "version": installed,
                                      "arb": boot.get("arb", 0)},
            "failed": boot.get("failed") or [], "floor": boot.get("floor", 0),
            "keys": m.get("keys")}


class _FileReader:
    def __init__(self, path):
        self.f = open(path, "rb")

    async def read(self, n):
        return self.f.read(n)

    def close(self):
        self.f.close()


def _close(r):
    c = getattr(r, "close", None)
    if c is not None:
        try:
            c()
        except Exception:  # noqa
            pass


def _check_sha(h):
    if h is None:
        return None
    if type(h) is not str or len(h) != 64:
        return "sha256 must be 64 hex digits"
    for c in h.lower():
        if c not in "0123456789abcdef":
            return "sha256 must be 64 hex digits"
    return None


def _text(ex):
    return ("%s: %s" % (type(ex).__name__, ex))[:_ERR_LEN]
