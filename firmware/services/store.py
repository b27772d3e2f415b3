# Persistence: atomic, checksummed record files on flash, and on top of them
# the lifetime energy counter, session records (+ outbox), event log, boot
# counter and persisted setpoints. See docs/persistence.md.
#
# Flash writes block inside C (DESIGN.md), so nothing here writes by itself
# except boot(): mutators change RAM and mark a record dirty with a due time;
# the runtime's flush task calls flush() when flush_due() and the moment suits.
import json
import os
import time
from micropython import const

from firmware.services.records import encode, decode, crc32  # noqa: F401 (re-exported)

_EEXIST = const(17)
_EPOCH_2000 = const(946684800)
_EPOCH_MIN = const(1704067200)  # 2024-01-01: below this the clock is not set

# How long a dirty record may wait in RAM (ms) before flush_due() says so.
HOLD_NOW = const(0)  # boot, session end, config, energy step crossed
HOLD_ACK = const(2000)  # coalesce the PUBACKs of an outbox burst
HOLD_LAZY = const(60000)  # events, setpoints, session start
_HOLD_RETRY = const(10000)  # after a failed write: don't spin on a bad flash

SESSIONS_MAX = const(100)
EVENTS_MAX = const(200)
_SESS_PER = const(10)  # entries per chunk file: a commit rewrites one chunk
_EV_PER = const(20)
_TEXT_MAX = const(80)  # event detail / stop reason bound keeps chunks small

_V_STATE = const(1)
_V_SESS = const(1)
_V_EV = const(1)

# session entry fields (stored as a list: ~half the bytes of a dict)
_S_SEQ = const(0)
_S_SID = const(1)
_S_ACK = const(10)
_SESS_KEYS = ("sid", "start_s", "start_up_s", "stop_s", "stop_up_s", "wh", "dur_s",
              "max_ma", "reason")
# open session in RAM: [sid, start_s, start_up_s, wh, max_ma]
_O_WH = const(3)
_O_MA = const(4)


def _epoch_now():
    t = int(time.time())
    if time.gmtime(0)[0] == 2000:  # older ports count from 2000
        t += _EPOCH_2000
    return t if t >= _EPOCH_MIN else 0


def _text(s):
    s = str(s)
    return s if len(s) <= _TEXT_MAX else s[:_TEXT_MAX]


class _Ring:
    """Bounded log as chunk files: entry [seq, ...]; chunk k holds seqs with
    (seq // per) % nch == k. One spare chunk keeps the last `cap` readable
    while the oldest chunk is being reused.

    Only the chunk being appended to and dirty chunks stay in RAM (chunks[k]
    is None otherwise); older chunks are read from flash when asked for."""

    def __init__(self, st, prefix, cap, per, ver, pend=None):
        self.st = st
        self.prefix = prefix
        self.cap = cap
        self.per = per
        self.ver = ver
        self.nch = cap // per + 1
        self.chunks = []
        self.pend = pend  # sessions: [seq, sid] of entries not acked, seq order
        top = -1
        for k in range(self.nch):
            name = prefix + str(k)
            np = len(st.problems)
            ok = self._clean(st._load(name, ver), k)
            if ok:
                top = max(top, ok[-1][0])
                if pend is not None:
                    for e in ok:
                        if not e[_S_ACK]:
                            pend.append([e[0], e[_S_SID]])
            # (no Store._ver entry per chunk: flush() asks the ring, 22 names less in RAM)
            if len(st.problems) > np:  # what flash holds differs from what was kept
                self._cache(k, ok)
            else:
                self.chunks.append(None)
        self.next = top + 1
        if pend is not None:
            pend.sort(key=lambda p: p[0])
        if top >= 0:
            k = self._k(top)
            if self.chunks[k] is None:
                self._cache(k, self._read(k))

    def _k(self, seq):
        return (seq // self.per) % self.nch

    def _cache(self, k, ch):
        if len(self.chunks) <= k:
            self.chunks.append(ch)
        else:
            self.chunks[k] = ch
        if ch is None:
            self.st._recs.pop(self.prefix + str(k), None)
        else:
            self.st._recs[self.prefix + str(k)] = ch

    def _clean(self, ch, k):
        """Valid entries of chunk k's newest lap, seq order."""
        ok = []
        if isinstance(ch, list):
            per = self.per
            for e in ch:
                if isinstance(e, list) and e and type(e[0]) is int and e[0] >= 0 \
                        and (e[0] // per) % self.nch == k:
                    ok.append(e)
        if ok:  # a reuse of this chunk that never got written leaves an older lap
            lap = max(e[0] // self.per for e in ok)
            ok = [e for e in ok if e[0] // self.per == lap]
            ok.sort(key=lambda e: e[0])
        return ok

    def _read(self, k):
        """Chunk k from flash (no reporting: boot did that)."""
        obj, v, err = self.st._read(self.st._file(self.prefix + str(k)))
        return self._clean(obj if err is None and v == self.ver else None, k)

    def chunk(self, k):
        ch = self.chunks[k]
        return ch if ch is not None else self._read(k)

    def evict(self, name):
        """After a commit: drop chunk `name` from RAM unless it is appended to."""
        k = int(name[len(self.prefix):])
        if self.next and k != self._k(self.next - 1) and (self.prefix + str(k)) not in self.st._dirty:
            self._cache(k, None)

    def append(self, entry, hold_ms):
        """Store entry (its [0] is set to the next seq); return how many
        unacked entries it evicted."""
        seq = self.next
        self.next = seq + 1
        entry[0] = seq
        k = self._k(seq)
        lap = seq // self.per
        ch = self.chunks[k]
        if ch is None:
            ch = [] if seq % self.per == 0 else self._read(k)
        if ch and ch[0][0] // self.per != lap:
            ch = []
        self._cache(k, ch)
        ch.append(entry)
        lost = 0
        pend = self.pend
        if pend is not None:
            i = 0
            while i < len(pend):
                s = pend[i][0]
                if self._k(s) == k and s // self.per != lap:
                    pend.pop(i)
                    lost += 1
                else:
                    i += 1
        self.st._mark(self.prefix + str(k), hold_ms)
        if seq and self._k(seq - 1) != k:  # previous chunk: leave once written
            self.evict(self.prefix + str(self._k(seq - 1)))
        return lost

    def items(self, n=0, seqs=None):
        """Live entries, oldest first (at most cap; the last n if n; only
        those with a seq in `seqs` if given)."""
        lo = max(0, self.next - self.cap)
        out = []
        per = self.per
        b = (self.next - 1) // per
        while self.next and b >= lo // per:
            if seqs is None or any(s // per == b for s in seqs):
                part = [e for e in self.chunk(b % self.nch)
                        if e[0] >= lo and e[0] // per == b and (seqs is None or e[0] in seqs)]
                out = part + out
                if n and len(out) >= n:
                    return out[-n:]
            b -= 1
        return out


class Store:
    """All persisted state of the wallbox, kept in RAM and written on flush()."""

    def __init__(self, path, dev_id="wb1", clock_ms=None, epoch_s=None, energy_step_wh=100):
        self.path = path.rstrip("/") or "/"
        self.dev_id = dev_id
        self.energy_step_wh = energy_step_wh  # 0: no checkpoint while charging
        self._ms = clock_ms or time.ticks_ms
        self._epoch = epoch_s or _epoch_now
        self._up_ms = 0
        self._up_last = self._ms()
        self._recs = {}  # record name -> payload held in RAM
        self._ver = {}
        self._dirty = {}  # record name -> due (ticks ms)
        self.problems = []  # (name, reason) found while loading
        self.completed = []  # names whose cut commit was finished from a whole .tmp
        self.writes = 0  # record commits since start
        self.bytes_written = 0
        self.errors = 0
        self.last_error = None
        try:
            os.mkdir(self.path)
        except OSError:
            pass  # exists
        self._load_all()

    # ---- record files -------------------------------------------------
    def _file(self, name):
        return self.path + "/" + name

    def _read(self, p):
        """(obj, ver, err): err None, 'missing' or what is wrong."""
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError:
            return None, 0, "missing"
        try:
            obj, ver = decode(data)
        except ValueError as e:
            return None, 0, str(e)
        return obj, ver, None

    def _load(self, name, ver):
        """Payload of record `name`, or None (missing or bad: reported)."""
        p = self._file(name)
        obj, v, err = self._read(p)
        tobj, tv, terr = self._read(p + ".tmp")
        if terr != "missing":  # a commit was cut before its rename
            if err is not None and terr is None:
                try:  # the old copy is gone or bad: the new one is whole, finish it
                    os.rename(p + ".tmp", p)
                except OSError:
                    pass
                obj, v, err = tobj, tv, None
                # a power cut between the write and the rename: the new copy is whole,
                # nothing is lost or corrupt (an event says so, not store_corrupt)
                self.completed.append(name)
            else:
                try:
                    os.remove(p + ".tmp")
                except OSError:
                    pass
        if err is None and v != ver:
            err = "version %d" % v
        if err is not None:
            if err != "missing":
                self.problems.append((name, err))
            return None
        return obj

    def _commit(self, name, obj, ver):
        p = self._file(name)
        t = p + ".tmp"
        data = encode(obj, ver)
        with open(t, "wb") as f:
            if f.write(data) != len(data):
                raise OSError(28)  # ENOSPC
            f.flush()  # VfsPosix: fsync(); littlefs: lfs_file_sync (close syncs too)
        try:
            os.rename(t, p)  # atomic on littlefs and POSIX
        except OSError as e:
            if e.args[0] != _EEXIST:
                raise
            os.remove(p)  # FAT cannot rename over a file: not atomic there
            os.rename(t, p)
        self.writes += 1
        self.bytes_written += len(data)
        return len(data)

    def _mark(self, name, hold_ms):
        due = time.ticks_add(self._ms(), hold_ms)
        old = self._dirty.get(name)
        if old is None or time.ticks_diff(due, old) < 0:
            self._dirty[name] = due

    # ---- generic records (config uses these) ---------------------------
    def get(self, name, ver=1):
        """Payload of a named record (loaded once), or None."""
        if name not in self._recs:
            self._ver[name] = ver
            self._recs[name] = self._load(name, ver)
        return self._recs[name]

    def put(self, name, obj, hold_ms=HOLD_NOW, ver=1):
        self._recs[name] = obj
        self._ver[name] = ver
        self._mark(name, hold_ms)

    # ---- flushing ------------------------------------------------------
    def uptime_s(self):
        """Uptime that survives ticks wrap-around (call at least daily)."""
        now = self._ms()
        self._up_ms += time.ticks_diff(now, self._up_last)
        self._up_last = now
        return self._up_ms // 1000

    def dirty(self):
        return sorted(self._dirty)

    def flush_due(self):
        """True if a dirty record has waited its hold time."""
        self.uptime_s()
        now = self._ms()
        for due in self._dirty.values():
            if time.ticks_diff(now, due) >= 0:
                return True
        return False

    def checkpoint_due(self):
        """True if the lifetime energy crossed its step since the last write."""
        return self.energy_step_wh > 0 and \
            self.energy_wh - self._energy_saved >= self.energy_step_wh

    def flush(self, limit=0):
        """Write dirty records (all, or at most `limit`); return how many.
        Session chunks go before 'state', so a cut between them leaves the
        open session in 'state' and its record in the ring (dropped on load)."""
        n = 0
        for name in sorted(self._dirty, key=lambda s: (s == "state", s)):
            obj = self._state_obj() if name == "state" else self._recs[name]
            r = self._ring_of(name)
            try:
                self._commit(name, obj, r.ver if r is not None else self._ver.get(name, 1))
            except OSError as e:  # keep it dirty; retry later, don't spin
                self.errors += 1
                self.last_error = "%s: %r" % (name, e)
                self._dirty[name] = time.ticks_add(self._ms(), _HOLD_RETRY)
                break
            del self._dirty[name]
            if name == "state":
                self._energy_saved = obj["wh"]
            elif r is not None:
                r.evict(name)  # on flash now: read it from there when asked
            n += 1
            if limit and n >= limit:
                break
        return n

    def _ring_of(self, name):
        """The ring whose chunk record `name` is ('e3', 's10'), or None."""
        r = self._rings.get(name[0])
        if r is not None and name[1:].isdigit() and int(name[1:]) < r.nch:
            return r
        return None

    # ---- state record: boots, lifetime energy, setpoints, open session --
    def _state_obj(self):
        o = self._open
        if o is not None:
            o = o + [self._epoch(), self.uptime_s()]  # checkpoint time
        return {"boots": self.boots, "wh": self.energy_wh,
                "sp": [self.sp_current_ma, self.sp_enabled, self.sp_phases], "open": o}

    def _load_all(self):
        self._ver["state"] = _V_STATE
        s = self._load("state", _V_STATE)
        self._events = _Ring(self, "e", EVENTS_MAX, _EV_PER, _V_EV)
        self._pend = []  # [seq, sid] of session records not acked, oldest first
        self._sessions = _Ring(self, "s", SESSIONS_MAX, _SESS_PER, _V_SESS, self._pend)
        self._rings = {"e": self._events, "s": self._sessions}
        self.boots = 0
        self.energy_wh = 0
        self.sp_current_ma = None  # None: never commanded
        self.sp_enabled = True
        self.sp_phases = None
        self._open = None
        self._boot_sessions = 0
        recovered = None
        try:
            if s is not None:
                self.boots = int(s["boots"])
                self.energy_wh = int(s["wh"])
                sp = s["sp"]
                self.sp_current_ma, self.sp_enabled, self.sp_phases = sp[0], bool(sp[1]), sp[2]
                recovered = s.get("open")
        except (KeyError, TypeError, ValueError, IndexError):
            self.problems.append(("state", "bad content"))
        self._energy_saved = self.energy_wh
        for name, why in self.problems:
            self.event("store_corrupt", "%s: %s" % (name, why), HOLD_NOW)
        for name in self.completed:
            self.event("store_completed", name, HOLD_NOW)
        if recovered:  # power was lost during a session: close it at its last checkpoint
            try:
                sid = recovered[0]
                if not any(e[_S_SID] == sid for e in self._sessions.items()):
                    st_s, st_up, wh, ma, t_s, t_up = recovered[1:7]
                    self._append_session([0, sid, st_s, st_up, t_s, t_up, wh,
                                          max(0, t_up - st_up), ma, "power_loss", 0])
                    self.event("session_recovered", sid, HOLD_NOW)
            except (TypeError, ValueError, IndexError):
                self.event("store_corrupt", "state: bad open session", HOLD_NOW)
            self._mark("state", HOLD_NOW)

    def boot(self, detail=""):
        """Count this boot and write everything dirty now (call before the
        control loop starts: a boot count must never repeat, sids use it)."""
        self.boots += 1
        self.event("boot", detail, HOLD_NOW)
        self._mark("state", HOLD_NOW)
        self.flush()
        return self.boots

    def set_setpoints(self, current_ma=None, enabled=None, phases=None):
        """Persist the last commanded values (None: keep that one)."""
        changed = False
        if current_ma is not None and current_ma != self.sp_current_ma:
            self.sp_current_ma = current_ma
            changed = True
        if enabled is not None and bool(enabled) != self.sp_enabled:
            self.sp_enabled = bool(enabled)
            changed = True
        if phases is not None and phases != self.sp_phases:
            self.sp_phases = phases
            changed = True
        if changed:
            self._mark("state", HOLD_LAZY)

    def setpoints(self):
        return {"current_ma": self.sp_current_ma, "enabled": self.sp_enabled,
                "phases": self.sp_phases}

    # ---- energy and sessions --------------------------------------------
    def add_energy(self, wh, current_ma=0):
        """Metering task, ~1 s: add Wh to the lifetime counter and the open session."""
        self.energy_wh += wh
        o = self._open
        if o is not None:
            o[_O_WH] += wh
            if current_ma > o[_O_MA]:
                o[_O_MA] = current_ma
        if self.checkpoint_due():
            self._mark("state", HOLD_NOW)
        elif wh:
            self._mark("state", HOLD_LAZY)  # small remainders reach flash too

    def session_start(self, current_ma=0):
        """Open a session; return its sid ('<id>-<boots>-<n>', unique while
        boot() has been written). Returns the open one's sid if already open."""
        if self._open is not None:
            return self._open[0]
        self._boot_sessions += 1
        sid = "%s-%d-%d" % (self.dev_id, self.boots, self._boot_sessions)
        self._open = [sid, self._epoch(), self.uptime_s(), 0, current_ma]
        self._mark("state", HOLD_LAZY)
        return sid

    def session_open(self):
        """Open session as a dict (sid, start_s, start_up_s, wh, max_ma), or None."""
        o = self._open
        if o is None:
            return None
        return {"sid": o[0], "start_s": o[1], "start_up_s": o[2], "wh": o[3], "max_ma": o[4]}

    def session_stop(self, reason):
        """Close the open session; its record goes to the ring and the outbox."""
        o = self._open
        if o is None:
            return None
        up = self.uptime_s()
        e = [0, o[0], o[1], o[2], self._epoch(), up, o[_O_WH], up - o[2], o[_O_MA],
             _text(reason), 0]
        self._open = None
        self._append_session(e)
        self._mark("state", HOLD_NOW)
        return self._sess_dict(e)

    def _append_session(self, e):
        lost = self._sessions.append(e, HOLD_NOW)
        if not e[_S_ACK]:
            self._pend.append([e[_S_SEQ], e[_S_SID]])
        if lost:
            self.event("outbox_drop", "%d unsent" % lost)

    @staticmethod
    def _sess_dict(e):
        d = {}
        for i in range(len(_SESS_KEYS)):
            d[_SESS_KEYS[i]] = e[i + 1]
        return d

    def sessions(self, n=0):
        """Last session records (at most 100), oldest first."""
        return [self._sess_dict(e) for e in self._sessions.items(n)]

    def outbox_pending(self, n=0):
        """Session records not yet acknowledged by the backend, oldest first."""
        lo = self._sessions.next - SESSIONS_MAX
        seqs = set()
        for p in self._pend:
            if p[0] >= lo:
                seqs.add(p[0])
                if n and len(seqs) >= n:
                    break
        if not seqs:
            return []
        return [self._sess_dict(e) for e in self._sessions.items(0, seqs)]

    def outbox_ack(self, sid):
        """Backend has it (PUBACK): True if sid was pending."""
        r = self._sessions
        lo = r.next - SESSIONS_MAX
        for i in range(len(self._pend)):
            seq = self._pend[i][0]
            if seq >= lo and self._pend[i][1] == sid:
                k = r._k(seq)
                ch = r.chunk(k)  # an older chunk is read, flagged and kept until flush
                for e in ch:
                    if e[_S_SEQ] == seq:
                        e[_S_ACK] = 1
                        r._cache(k, ch)
                        self._mark(r.prefix + str(k), HOLD_ACK)
                        self._pend.pop(i)
                        return True
                return False
        return False

    # ---- event log ------------------------------------------------------
    def event(self, kind, detail="", hold_ms=HOLD_LAZY):
        """Log an event (boot, fault, config, error...); return its seq."""
        e = [0, self._epoch(), self.uptime_s(), _text(kind), _text(detail)]
        self._events.append(e, hold_ms)
        return e[0]

    def events(self, n=0):
        return [{"seq": e[0], "t": e[1], "up": e[2], "type": e[3], "detail": e[4]} for e in self._events.items(n)]
