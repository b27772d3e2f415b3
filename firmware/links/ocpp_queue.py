# The persisted queue of OCPP transaction-related messages (StartTransaction, StopTransaction,
# MeterValues with a transactionId; OCPP 1.6 §3.7 / §4.x "transaction-related messages"):
# delivered in order, each with a message id fixed when it is queued, so a resend after a
# reboot or reconnect is a retry of the same message id, never a new message.
#
# On flash (the store's atomic, checksummed record files): chunk records "oq<k>" holding
# PER entries each (ring of NCH chunks), and one header record "oqh":
#   {"head": first seq not yet confirmed, "ids": {ref: transactionId}, "open": ref | None,
#    "wh": highest energy register value the CSMS has confirmed}
# An entry is [seq, action, payload as JSON text, ref] (text: a fraction of the heap a parsed
# MeterValues takes); ref is the local number of the transaction, and
# payload["transactionId"] is filled from ids[ref] when it is sent (an offline-started
# transaction gets its id from the StartTransaction.conf). Write order makes every cut safe:
#   queue:   chunk first (the message exists), then the header (it is the open transaction)
#   confirm: the header alone (head advances, the id is learnt) - one atomic commit
# A cut between the CSMS's receipt and the header commit resends the same message id.
# Only the chunk being appended to and the head chunk stay in RAM.
import json
from micropython import const

PER = const(8)  # entries per chunk: one commit rewrites at most ~2.5 KB
CAP = const(880)  # messages held: 100 transactions x (Start + 6 MeterValues + Stop) + reserve
_RESERVE = const(80)  # of CAP kept for Start/Stop: MeterValues are dropped first
NCH = CAP // PER + 1  # one spare chunk: the oldest may be reused while the last is kept
_VER = const(1)
_HDR = "oqh"

E_SEQ = const(0)
E_ACTION = const(1)
E_PAYLOAD = const(2)
E_REF = const(3)


class TxQueue:
    def __init__(self, store):
        self.st = store
        self.dropped = 0  # MeterValues not queued because the queue was full
        self._ch = {}  # k -> entries of chunk k held in RAM (tail and head only)
        h = store._load(_HDR, _VER)
        if type(h) is not dict:
            h = {}
        self.head = h.get("head", 0) if type(h.get("head")) is int else 0
        ids = h.get("ids")
        self.ids = {}
        if type(ids) is dict:
            for k in ids:  # JSON keys are strings
                try:
                    self.ids[int(k)] = ids[k]
                except ValueError:
                    pass
        self.open = h.get("open") if type(h.get("open")) is int else None
        self.wh = h.get("wh") if type(h.get("wh")) is int else 0
        self.next = self.head
        self.max_ref = max([0] + list(self.ids)) if self.ids else 0
        if self.open is not None and self.open > self.max_ref:
            self.max_ref = self.open
        for k in range(NCH):  # boot: find the newest entry (each chunk read once, dropped)
            for e in self._chunk_entries(k):
                if e[E_SEQ] >= self.next:
                    self.next = e[E_SEQ] + 1
                if type(e[E_REF]) is int and e[E_REF] > self.max_ref:
                    self.max_ref = e[E_REF]
        if self.next - self.head > CAP:  # cannot happen unless files were mixed: keep newest
            self.head = self.next - CAP

    # ---- files ----

    def _name(self, k):
        return "oq%d" % k

    def _chunk_entries(self, k):
        obj = self.st._load(self._name(k), _VER)
        out = []
        if type(obj) is list:
            for e in obj:
                if (type(e) is list and len(e) == 4 and type(e[0]) is int
                        and (e[0] // PER) % NCH == k):
                    out.append(e)
        if out:  # only the newest lap of this chunk counts
            lap = max(e[0] // PER for e in out)
            out = [e for e in out if e[0] // PER == lap]
            out.sort(key=lambda e: e[0])
        return out

    def _chunk(self, seq):
        """Entries of the chunk that holds seq (loaded once, kept while used)."""
        k = (seq // PER) % NCH
        ch = self._ch.get(k)
        if ch is None:
            ch = [e for e in self._chunk_entries(k) if e[0] // PER == seq // PER]
            self._ch[k] = ch
        return ch

    def _keep_only(self, *seqs):
        keep = set((s // PER) % NCH for s in seqs)
        for k in list(self._ch):
            if k not in keep:
                del self._ch[k]

    def _save_header(self):
        self.st._commit(_HDR, {"head": self.head, "ids": self.ids, "open": self.open,
                               "wh": self.wh}, _VER)

    # ---- API ----

    def __len__(self):
        return self.next - self.head

    def new_ref(self):
        """A local number for a new transaction (unique across reboots)."""
        self.max_ref += 1
        return self.max_ref

    def put(self, action, payload, ref, opens=False, closes=False):
        """Queue a message and commit it to flash now; False if it had to be dropped.
        opens/closes: this Start/Stop makes `ref` the open transaction / ends it."""
        if len(self) >= CAP - (_RESERVE if action == "MeterValues" else 0):
            self.dropped += 1
            return False
        seq = self.next
        ch = self._chunk(seq)
        if seq % PER == 0:
            ch.clear()
        ch.append([seq, action, json.dumps(payload), ref])
        self.st._commit(self._name((seq // PER) % NCH), ch, _VER)
        self.next = seq + 1
        if opens or (closes and self.open == ref):
            self.open = ref if opens else None
            self._save_header()
        self._keep_only(seq, self.head, self.next)
        return True

    def peek(self):
        """(msg_id, action, payload with its transactionId, ref) of the head, or None.
        A message of a transaction whose id is not known yet waits (its Start is first)."""
        if self.head >= self.next:
            return None
        seq = self.head
        e = None
        for x in self._chunk(seq):
            if x[0] == seq:
                e = x
                break
        if e is None:  # lost chunk (corrupt file): skip it rather than block the queue
            self.head += 1
            self._save_header()
            return self.peek()
        p = _obj(e[E_PAYLOAD])
        ref = e[E_REF]
        if e[E_ACTION] != "StartTransaction" and "transactionId" in p:
            txid = self.ids.get(ref)
            if txid is None:  # its Start was given up: the CSMS cannot use this one
                self.head += 1
                self._save_header()
                return self.peek()
            p["transactionId"] = txid
        return "q%d" % seq, e[E_ACTION], p, ref

    def confirm(self, txid=None, ref=None, ends=False):
        """The head was answered (or given up): advance, learn a transactionId, or forget
        a finished transaction's id. One header commit."""
        for e in self._chunk(self.head):
            if e[0] == self.head:
                r = register(e[E_ACTION], e[E_PAYLOAD])
                if r > self.wh:
                    self.wh = r
        self.head += 1
        if txid is not None and ref is not None:
            self.ids[ref] = txid
        if ends and ref is not None:
            self.ids.pop(ref, None)
        self._save_header()
        self._keep_only(self.head, self.next - 1)

    def close_open(self):
        """The open transaction is over without a queued Stop (e.g. never confirmed)."""
        if self.open is not None:
            self.open = None
            self._save_header()

    def _each(self):
        """Queued entries, oldest first, one chunk in RAM at a time (a generator)."""
        s = self.head
        while s < self.next:
            for e in self._chunk(s):
                if e[0] == s:
                    yield e
            s += 1
            self._keep_only(s, self.head, self.next - 1)

    def pending(self, n=0):
        """The first n queued entries (tests, console): [seq, action, payload, ref]."""
        out = []
        for e in self._each():
            out.append(e)
            if n and len(out) >= n:
                break
        return out

    def max_wh(self):
        """The highest energy register value queued or confirmed (boot: the register the
        CSMS may have seen, which a power cut must not take back)."""
        m = self.wh
        for e in self._each():
            r = register(e[E_ACTION], e[E_PAYLOAD])
            if r > m:
                m = r
        return m

    def unstopped(self):
        """refs with a queued Start and no queued Stop, plus the open one: transactions a
        power cut interrupted (boot closes them with reason PowerLoss)."""
        started = []
        stopped = set()
        for e in self._each():
            if e[E_ACTION] == "StartTransaction":
                started.append(e[E_REF])
            elif e[E_ACTION] == "StopTransaction":
                stopped.add(e[E_REF])
        if self.open is not None and self.open not in started:
            started.append(self.open)
        return [r for r in started if r not in stopped]

def _obj(p):
    return json.loads(p) if type(p) is str else dict(p)


def register(action, p):
    """Energy register (Wh) a queued message reports, or -1."""
    try:
        if type(p) is str:
            p = json.loads(p)
        if action == "StartTransaction":
            return p["meterStart"]
        if action == "StopTransaction":
            return p["meterStop"]
        best = -1
        for mv in p["meterValue"]:
            for sv in mv["sampledValue"]:
                if sv.get("measurand", "Energy.Active.Import.Register") == \
                        "Energy.Active.Import.Register" and sv.get("unit", "Wh") == "Wh":
                    v = int(sv["value"])
                    if v > best:
                        best = v
        return best
    except (KeyError, TypeError, ValueError):
        return -1
