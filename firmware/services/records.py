# The record format on flash and the bounded rings built from record files (the store's
# session and event logs; docs/persistence.md). A record file is one header line
# 'WBR1 <ver> <len> <crc32>' and a compact JSON body, written atomically by the store.
import json
from micropython import const

try:
    from binascii import crc32
except ImportError:  # port built without it: slow but small records only
    def crc32(data, crc=0):
        crc ^= 0xFFFFFFFF
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (0xEDB88320 & -(crc & 1))
        return crc ^ 0xFFFFFFFF

_MAGIC = "WBR1"
_SEP = (",", ":")  # compact: littlefs inlines small files (<= its cache size, 128 B
# by default) into the directory log, which saves a block erase per commit
_S_SID = const(1)  # session entry fields (firmware/services/store.py)
_S_ACK = const(10)

def encode(obj, ver):
    """Record bytes: header line 'WBR1 <ver> <len> <crc32>' + JSON body."""
    body = json.dumps(obj, separators=_SEP).encode()
    head = "%s %d %d %08x\n" % (_MAGIC, ver, len(body), crc32(body) & 0xFFFFFFFF)
    return head.encode() + body


def decode(data):
    """(obj, ver) from record bytes; ValueError names what is wrong."""
    nl = data.find(b"\n")
    if nl < 0:
        raise ValueError("truncated")
    head = data[:nl].split()
    if len(head) != 4 or head[0] != _MAGIC.encode():
        raise ValueError("bad header")
    try:
        ver, n, crc = int(head[1]), int(head[2]), int(head[3], 16)
    except ValueError:
        raise ValueError("bad header")
    body = data[nl + 1:]
    if len(body) != n:
        raise ValueError("truncated" if len(body) < n else "bad length")
    if crc32(body) & 0xFFFFFFFF != crc:
        raise ValueError("bad checksum")
    return json.loads(body), ver


class Ring:
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
            st._ver[name] = ver
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
