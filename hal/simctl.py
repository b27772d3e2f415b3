# The sim bench's control channel (unix port only): JSON lines over TCP on loopback,
# so the host-side harness (tools/simbench.py) can change the physical world and read
# the firmware's outputs while the firmware runs exactly as on a board.
#
# Requests (one JSON object per line), replies {"ok": true, ...} or {"ok": false, "err": ...}:
#   {"op": "now"}                                 device clock: now_us, now_ms
#   {"op": "set", "k": name, "v": value}          change the world now (hal/sim.py SETTABLE)
#   {"op": "at", "t_us": T, "k": name, "v": value} change it at device time T (µs)
#   {"op": "read"}                                world + outputs + runtime status
#   {"op": "changes", "since": seq}               output changes with µs timestamps
#   {"op": "applied"}                             scheduled events applied, with their time
#   {"op": "cmd", "name": n, "args": [...]}       firmware command (firmware/links/commands.py)
#   {"op": "events", "n": N} / {"op": "sessions", "n": N} / {"op": "stats"} / {"op": "reset_stats"}
#   {"op": "gc"}                                  gc.collect(), then mem_alloc / mem_free
#   {"op": "heapmap"}                             gc.collect(), then the qstr pool and the GC
#                                                 block map printed to stdout (the bench's
#                                                 heap breakdown reads them from the log)
#   {"op": "config"} / {"op": "config", "k": key, "v": value}   read all / set one config key
#   {"op": "exit"}                                stop the firmware (outputs safe)
import asyncio
import gc
import io
import json
import socket
import time

from asyncio import core

import micropython
from micropython import const

_OUT_BYTES = const(256)  # a reply's piece (_Out)
_IN_BYTES = const(256)  # a request's piece
_IPPROTO_TCP = const(6)  # Linux
_TCP_NODELAY = const(1)
_EAGAIN = const(11)


class _LazyCommands:
    """firmware/links/commands.py, imported at the first "cmd" request: a bench run that
    never sends one (the 96 KB heap session) does not carry it."""

    def __init__(self, rt):
        self.rt = rt
        self.cmds = None

    def __getattr__(self, name):
        if self.cmds is None:
            from firmware.links.commands import Commands
            self.cmds = Commands(self.rt)
        return getattr(self.cmds, name)

_CMDS = ("set_current", "enable", "authorize", "set_phases", "reset_faults", "status")


def _world_dict(w):
    d = _world_base(w)
    if w.house is not None:  # the house around the wallbox (load management)
        d.update(w.house.as_dict())
    return d


def _world_base(w):
    return {
        "plugged": w.plugged, "s2": w.s2, "s2_closed": w.s2_closed, "cp_state": w.cp_state(),
        "diode": w.diode, "cp_short": w.cp_short, "ev_state": w.ev_state, "want_ma": w.want_ma,
        "draw_ma": w.draw_ma, "live_phases": w.live_phases() if w.draw_ma else 0,
        "rcd_fault": w.rcd_fault, "welded": w.welded, "temp_dc": w.temp_dc,
        "pilot": w.pilot, "duty_pm": w.duty_pm, "contactor": w.contactor, "phases": w.phases,
        "lock": w.lock, "rcd_test": w.rcd_test, "energy_wh": w.energy_mwh // 1000,
        "button": w.button,
        "wdt_feeds": w.wdt_feeds, "wdt_max_gap_us": w.wdt_max_gap_us,
        "wdt_age_us": time.ticks_diff(time.ticks_us(), w.wdt_last_us) if w.wdt_feeds else -1,
    }


def _stats(rt):
    st = rt.stats
    d = {"ticks": st.ticks, "max_gap_ms": st.max_gap_ms, "late": st.late,
         "max_tick_us": st.max_tick_us, "control_fails": st.control_fails,
         "task_errors": st.task_errors, "last_error": st.last_error,
         "mem_alloc": gc.mem_alloc(), "mem_free": gc.mem_free(),
         "store_writes": rt.store.writes, "gap_hist": st.gap_hist}
    if hasattr(micropython, "mem_peak"):
        d["mem_peak"] = micropython.mem_peak()
    return d


_WORLD_OPS = ("set", "at", "changes", "applied", "reset_stats")


def handle(rt, cmds, req):
    """One request. The world is shared with the control thread (thread mode): the ops that
    touch it hold its lock, briefly and never across an await. "read" holds it only while
    it copies the world: status() allocates (a collection may run) and must not hold the
    tick meanwhile."""
    lk = rt.hw.world.mutex
    op = req.get("op")
    if op == "read":
        if lk is not None:
            lk.acquire()
        try:
            world = _world_dict(rt.hw.world)
        finally:
            if lk is not None:
                lk.release()
        return {"world": world, "status": rt.status(), "stats": _stats(rt)}
    if lk is None or op not in _WORLD_OPS:
        return _handle(rt, cmds, req)
    lk.acquire()
    try:
        return _handle(rt, cmds, req)
    finally:
        lk.release()


def _handle(rt, cmds, req):
    w = rt.hw.world
    op = req.get("op")
    if op == "now":
        return {"now_us": time.ticks_us(), "now_ms": time.ticks_ms()}
    if op == "set":
        err = w.set(req.get("k"), req.get("v"))
        return {"err": err} if err else {}
    if op == "at":
        err = w.at(req.get("t_us"), req.get("k"), req.get("v"))
        return {"err": err} if err else {}
    if op == "changes":
        since = req.get("since", 0)
        return {"changes": w.changes(since)}
    if op == "applied":
        return {"applied": list(w.applied)}
    if op == "cmd":
        name = req.get("name")
        if name not in _CMDS:
            return {"err": "unknown command %r; one of %s" % (name, ", ".join(_CMDS))}
        ok, val = getattr(cmds, name)(*req.get("args", []))
        return {"cmd_ok": ok, "value": val}
    if op == "events":
        return {"events": rt.store.events(req.get("n", 0))}
    if op == "sessions":
        return {"sessions": rt.store.sessions(req.get("n", 0)),
                "outbox": [s["sid"] for s in rt.store.outbox_pending()],
                "open": rt.store.session_open(), "energy_wh": rt.store.energy_wh}
    if op == "stats":
        return {"stats": _stats(rt)}
    if op == "gc":
        gc.collect()
        return {"mem_alloc": gc.mem_alloc(), "mem_free": gc.mem_free()}
    if op == "heapmap":
        gc.collect()
        print("heap-map-begin")
        micropython.qstr_info()
        micropython.mem_info(1)
        print("heap-map-end")
        return {"mem_alloc": gc.mem_alloc()}
    if op == "reset_stats":
        rt.stats.reset_gaps()
        w.wdt_max_gap_us = 0
        return {}
    if op == "config":
        k = req.get("k")
        if k is None:
            return {"config": rt.config.as_dict()}
        err = rt.config.set(k, req.get("v"))
        return {"err": err} if err else {}
    if op == "exit":
        rt.stopped = True
        return {}
    return {"err": "unknown op %r" % op}


def _wait(q, s):
    # await _wait(core._io_queue.queue_read, sock): the task sleeps until the socket is
    # ready, as asyncio's own streams do (no asyncio.stream: its module, Server and Stream
    # objects were ~2.2 KB of a 96 KB heap for one loopback connection)
    yield q(s)


class _Out(io.IOBase):
    """json.dump's sink: a reply leaves in pieces through one small buffer made when the
    client connects, so no reply needs a contiguous block of its size (a "read" reply is
    ~1.2 KB: in a small, fragmented heap json.dumps found no block for it)."""

    def __init__(self, sock):
        self.s = sock
        self.buf = bytearray(_OUT_BYTES)
        self.mv = memoryview(self.buf)
        self.n = 0
        self.rest = None  # what the socket did not take yet (loopback: rare)

    def write(self, b):
        n, i = len(b), 0
        while i < n:
            k = min(n - i, _OUT_BYTES - self.n)
            self.mv[self.n:self.n + k] = b if k == n else memoryview(b)[i:i + k]
            self.n += k
            i += k
            if self.n == _OUT_BYTES:
                self.flush()
        return n

    def flush(self):
        n = self.n
        if not n:
            return
        self.n = 0
        if self.rest is None:
            k = self.s.write(self.mv[:n]) or 0
            if k < n:
                self.rest = bytes(self.mv[k:n])
        else:
            self.rest += self.mv[:n]


async def _client(rt, cmds, sock):
    # Several writes per reply: without TCP_NODELAY they would meet Nagle's algorithm and
    # the host's delayed ACK, ~40 ms per request, which skewed every device-clock schedule
    # the harness made.
    sock.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
    out = _Out(sock)
    q = core._io_queue
    pend = b""
    try:
        while True:
            i = pend.find(b"\n")
            if i < 0:
                await _wait(q.queue_read, sock)
                try:
                    data = sock.recv(_IN_BYTES)
                except OSError as ex:
                    if ex.errno == _EAGAIN:  # woken with nothing to read: wait again
                        continue
                    raise
                if not data:
                    break
                pend += data
                data = None
                continue
            line, pend = pend[:i], pend[i + 1:]
            try:
                req = json.loads(line)
                rep = handle(rt, cmds, req)
                if "err" in rep and rep["err"]:
                    rep["ok"] = False
                else:
                    rep.pop("err", None)
                    rep["ok"] = True
            except Exception as ex:  # a bad request never stops the bench
                rep = {"ok": False, "err": "%s: %s" % (type(ex).__name__, ex)}
            line = req = None
            json.dump(rep, out)
            rep = None
            out.write(b"\n")
            out.flush()
            while out.rest:
                await _wait(q.queue_write, sock)
                k = sock.write(out.rest) or 0
                out.rest = out.rest[k:] if k < len(out.rest) else None
    except OSError:
        pass  # the harness went away
    finally:
        sock.close()


async def serve(rt, port):
    cmds = _LazyCommands(rt)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    srv.listen(2)
    srv.setblocking(False)
    print("simctl: listening on 127.0.0.1:%d" % port)
    q = core._io_queue
    try:
        while not rt.stopped:
            await _wait(q.queue_read, srv)
            try:
                c = srv.accept()[0]
            except OSError:
                continue
            c.setblocking(False)
            asyncio.create_task(_client(rt, cmds, c))
            c = None
    finally:
        srv.close()
