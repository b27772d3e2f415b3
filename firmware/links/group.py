# Load sharing between wallboxes on one supply, over MQTT (docs/load-management.md "Group").
# Every member publishes its demand each second on wallbox/group/<group_id>/member/<id>; the
# leader is the lowest id heard within mains_timeout_s (itself included), computes the shares
# and publishes them on wallbox/group/<group_id>/alloc; each member applies its share as the
# load manager's group cap (LoadManager.group_ma, part of CLAIM_LOAD). Fair shares: every
# active box >= 6 A (iec61851.md §2); when the supply cannot feed all, the boxes that waited
# longest get a slot and a box that held one for rotate_s gives it up, so none starves longer.
# No allocation from a live leader within mains_timeout_s -> the safe share
# group_max_a / group_size (below 6 A: pause). Runs in its own asyncio task, never in the tick.
import asyncio
import json
import time
from micropython import const

from firmware.core.consts import CLAIM_NONE_MA

_PERIOD_MS = const(1000)
_MIN_MA = const(6000)
# The ticks wrap every 2**30 ms and ticks_diff is valid below 2**29 ms (6.2 days): no rotation
# stamp is kept older than this (a day: longer than group_rotate_s, at most 2 h).
_AGE_MAX_MS = const(86400000)


def age(st, now):
    """Keep the rotation stamps of st (allocate's) at most _AGE_MAX_MS old: a slot held or
    a wait of a week must not look new or negative (called every second, as allocate)."""
    for s in st.values():
        if s[0] is not None and time.ticks_diff(now, s[0]) > _AGE_MAX_MS:
            s[0] = time.ticks_add(now, -_AGE_MAX_MS)
        if s[1] is not None and time.ticks_diff(now, s[1]) > _AGE_MAX_MS:
            s[1] = time.ticks_add(now, -_AGE_MAX_MS)


def allocate(members, budget_ma, now, st, rotate_ms):
    """members: [(id, want_ma)]; st: id -> [served_since or None, waiting_since or None]
    (the leader's rotation memory, updated here). Returns {id: share_ma}."""
    age(st, now)
    dem = [m for m in members if m[1] >= _MIN_MA]
    for i, _ in members:
        if i not in st:
            st[i] = [None, None]
    fit = budget_ma // _MIN_MA
    if len(dem) > fit:
        def prio(m):
            s = st[m[0]]
            if s[0] is not None and time.ticks_diff(now, s[0]) < rotate_ms:
                return (0, -time.ticks_diff(now, s[0]), m[0])  # holding a slot, not yet due
            if s[0] is None:
                w = time.ticks_diff(now, s[1]) if s[1] is not None else 0
                return (1, -w, m[0])  # waiting: the longest first
            return (2, -time.ticks_diff(now, s[0]), m[0])  # held it for rotate_s: gives way
        dem.sort(key=prio)
        chosen = dem[:fit]
    else:
        chosen = dem
    out = {}
    for i, _ in members:
        out[i] = 0
    chosen.sort(key=lambda m: m[1])  # water-filling: the small demands first
    left = budget_ma
    k = len(chosen)
    for n, m in enumerate(chosen):
        share = left // (k - n) // 1000 * 1000
        give = m[1] if m[1] < share else share
        out[m[0]] = give
        left -= give
    ids = [m[0] for m in chosen]
    for i, want in members:
        s = st[i]
        if i in ids:
            if s[0] is None:
                s[0] = now
            s[1] = None
        else:
            s[0] = None
            if want >= _MIN_MA and s[1] is None:
                s[1] = now
            elif want < _MIN_MA:
                s[1] = None
    return out


class Group:
    def __init__(self, rt, lm):
        self.rt = rt
        self.lm = lm  # firmware.core.loadmgmt.LoadManager of this box
        cfg = rt.config
        self.id = cfg.get("id")
        self.prefix = "wallbox/group/%s/" % cfg.get("group_id")
        self.members = {}  # id -> [heard_ms, want_ma]
        self.alloc = None  # last allocation for us: [ms, leader, share_ma]
        self.leader = self.id
        self.share_ma = CLAIM_NONE_MA
        self.safe = False  # on the safe share (no leader heard)
        self._rot = {}
        self._seq = 0
        self._listen_since = None
        self._listening = False  # connected less than mains_timeout_s ago: not leading yet
        self.bad = 0
        self.link = None
        self._apply(self.safe_ma(), True)  # until a leader speaks

    def _cfg(self, k):
        return self.rt.config.get(k)

    def want_ma(self):
        """What this box would take: its limit while an EV is connected and enabled."""
        rt = self.rt
        e = rt.evse
        o = e.outputs
        if o.state == "A" or o.state == "E" or o.state == "F" or not e.enabled:
            return 0
        top = self._cfg("max_current_a") * 1000
        b = e.backend_ma
        return b if b < top else top

    def on_message(self, topic, payload):
        """member/<id> and alloc messages; anything malformed is dropped (and counted)."""
        try:
            d = json.loads(bytes(payload))
            now = time.ticks_ms()
            if topic == self.prefix + "alloc":
                a = d["a"]
                ma = a.get(self.id)
                if type(ma) is int and type(d["leader"]) is str:
                    self.alloc = [now, d["leader"], ma]
            elif topic.startswith(self.prefix + "member/"):
                i = topic[len(self.prefix) + 7:]
                w = d["want"]
                if i != self.id and type(w) is int and 0 <= w <= 80000 and 0 < len(i) <= 24:
                    self.members[i] = [now, w]
        except Exception:
            self.bad += 1

    def safe_ma(self):
        """The share that is safe without a leader: group_max_a / group_size (< 6 A: 0)."""
        safe = self._cfg("group_max_a") * 1000 // self._cfg("group_size")
        return safe if safe >= _MIN_MA else 0

    def step(self, now):
        timeout = self._cfg("mains_timeout_s") * 1000
        al = self.alloc
        if al is not None and time.ticks_diff(now, al[0]) > timeout:
            # dropped once stale: the ticks wrap every 2**30 ms, and an allocation kept
            # > 6.2 days would look fresh again (an old share instead of the safe one)
            self.alloc = al = None
        age(self._rot, now)  # also while not leading: kept, it must not age past 6.2 days
        c = self.link.client if self.link is not None else None
        if c is None or not c.connected:
            self._listen_since = None  # cut off: nobody can coordinate with us
            self.members.clear()
            self._apply(self.safe_ma(), True)
            return
        if self._listen_since is None:
            self._listen_since = now  # (re)connected: listen a timeout long before leading
            self._listening = True
        elif self._listening and time.ticks_diff(now, self._listen_since) >= timeout:
            self._listening = False  # done (once: after 6.2 days the ticks_diff would wrap)
        for i in list(self.members):
            if time.ticks_diff(now, self.members[i][0]) > timeout:
                del self.members[i]
        self.leader = min([self.id] + list(self.members))
        want = self.want_ma()
        c.publish(self.prefix + "member/" + self.id, '{"want":%d}' % want, 0)
        if self.leader == self.id:
            if self._listening:
                self._apply(self.safe_ma(), True)
                return
            # boxes of the group not heard may still draw their safe share: keep it free
            unheard = self._cfg("group_size") - 1 - len(self.members)
            budget = self._cfg("group_max_a") * 1000 - (unheard if unheard > 0 else 0) * self.safe_ma()
            members = [(self.id, want)] + [(i, m[1]) for i, m in self.members.items()]
            a = allocate(members, budget, now, self._rot, self._cfg("group_rotate_s") * 1000)
            self._seq += 1
            c.publish(self.prefix + "alloc", json.dumps(
                {"leader": self.id, "seq": self._seq, "a": a}), 0)
            self._apply(a[self.id], False)
            return
        if al is not None:
            self._apply(al[2], False)  # the leader's word (or the old leader's, until timeout)
        else:
            self._apply(self.safe_ma(), True)

    def _apply(self, ma, safe):
        if ma < _MIN_MA:
            ma = 0
        self.share_ma = ma
        self.safe = safe
        self.lm.group_ma = ma

    def status(self):
        return {"leader": self.leader, "members": sorted([self.id] + list(self.members)),
                "share_a": self.share_ma / 1000, "safe_share": self.safe, "bad": self.bad}

    async def run(self):
        rt = self.rt
        while rt.link is None:  # (the link is built after the feature tasks, or never)
            self.step(time.ticks_ms())
            await asyncio.sleep_ms(_PERIOD_MS)
        self.link = rt.link
        self.link.topic_hooks.append((self.prefix, self.on_message))
        self.link.client.subscribe(self.prefix + "#", 0)
        while True:
            self.step(time.ticks_ms())
            await asyncio.sleep_ms(_PERIOD_MS)
