"""Tick wrap in the links (MQTT command bucket and fallback, group sharing, web sessions and
failed logins, console factory_reset, uptime_s): the chips' ticks_ms has a period of 2**30
and ticks_diff is only valid below 2**29 ms (~6.2 days), so a stamp kept longer turns
negative. Every test runs the device code with a fake `time` whose ticks wrap at 2**30 as
on the chips (on both VMs: the 64-bit port's own ticks would take 2**62 ms to wrap) and
moves it on by days, calling store.uptime_s() every hour as the flush task does (every
200 ms). Each VM process runs one test: the fake is in sys.modules before any import."""
import json

import pytest

from mp import MicroPython

PRELUDE = """
import sys
import asyncio  # first: its scheduler keeps the real clock (sleep_ms(0) in hash_password)
import time as _rt
_M = 0x3FFFFFFF
_H = 0x20000000
class FakeTime:
    def __init__(self):
        self.t = 0
    def ticks_ms(self):
        return self.t & _M
    def ticks_diff(self, a, b):
        return ((a - b + _H) & _M) - _H
    def ticks_add(self, a, d):
        if not -_H < d < _H:
            raise OverflowError('ticks interval overflow')
        return (a + d) & _M
    def __getattr__(self, k):
        return getattr(_rt, k)
T = FakeTime()
T.t = 12345
sys.modules['time'] = T
import json
from firmware.startup import build
H = 3600000
DAY = 24 * H
def make(config=None):
    return build({"data": data["dir"], "board": "sim",
                  "config": json.dumps(config) if config else None})
rt = None
def advance(ms, step=H):
    while ms > 0:
        d = step if ms > step else ms
        T.t += d
        ms -= d
        if rt is not None:
            rt.store.uptime_s()
"""


@pytest.fixture(params=["pypi", "mp32"])
def dev(request, tmp_path):
    vm = MicroPython(vm=request.param)
    d = str(tmp_path / "data")

    def run(code):
        return vm.run(PRELUDE + code, {"dir": d})
    run.vm = vm
    yield run
    vm.close()


# ---- mqtt_link ----------------------------------------------------------------

def test_command_bucket_full_after_a_week_without_commands(dev):
    """Item 13: 6.2-12.4 days after the last command every live command was 'busy'."""
    r = dev("""
rt = make()
from firmware.links.mqtt_link import Link
ln = Link(rt)
first = ln._take_token()
out = []
for days in (7, 9, 12, 14, 20):
    advance(days * DAY)
    burst = [ln._take_token() for _ in range(31)]  # the bucket: 30, refilled at 10/s
    out.append(burst.count(True))
result = [first, out]
""")
    assert r == [True, [30] * 5]


def test_fallback_after_a_week_without_commands_when_switched_on(dev):
    """Low (mqtt_link.py:472): fallback_timeout_s set after > 6.2 days without a command."""
    r = dev("""
rt = make({"fallback_timeout_s": 0})
from firmware.links.mqtt_link import Link
ln = Link(rt)
advance(7 * DAY)
ln._check_fallback(T.ticks_ms())
before = ln._fallback
rt.config.set("fallback_timeout_s", 60)
ln._check_fallback(T.ticks_ms())
result = [before, ln._fallback]
""")
    assert r == [False, True]


def test_uptime_after_a_week(dev):
    """Low (runtime.py:647, mqtt_link.py:377): status uptime_s went negative after 6.2 days."""
    r = dev("""
rt = make()
from firmware.links.mqtt_link import Link
ln = Link(rt)
advance(7 * DAY)
result = [rt.status()["uptime_s"], json.loads(ln.status_json())["uptime_s"]]
""")
    assert r == [7 * 86400] * 2


# ---- group --------------------------------------------------------------------

GROUP = """
rt = make({"group_max_a": 32, "group_size": 2, "mains_timeout_s": 11})
from firmware.links.group import Group, allocate
class Lm:
    group_ma = -1
class Client:
    connected = True
    def __init__(self):
        self.pubs = []
    def publish(self, topic, payload, qos):
        self.pubs.append(topic)
        return 1
class L:
    pass
def group(id_):
    rt.config.set("id", id_)
    g = Group(rt, Lm())
    g.link = L()
    g.link.client = Client()
    return g
"""


def test_group_leader_still_leads_after_a_week_connected(dev):
    """Item 14: after 6.2 days connected the leader took the safe share, sent no allocation."""
    r = dev(GROUP + """
g = group("wb1")
out = []
for h in range(24 * 9):
    g.step(T.ticks_ms())
    if h % 24 == 0:
        n = len(g.link.client.pubs)
        g.step(T.ticks_ms())
        out.append([g.safe, g.link.client.pubs[n:].count(g.prefix + "alloc")])
    advance(H)
result = out
""")
    assert r == [[True, 0]] + [[False, 1]] * 8


def test_group_old_allocation_is_not_applied_again(dev):
    """Item 15: a member without an allocation for 6.2-12.4 days applied the old share again
    (here: cut off a week, back, the leader still in its listen period)."""
    r = dev(GROUP + """
g = group("wb2")
g.on_message(g.prefix + "member/wb1", b'{"want": 32000}')
g.on_message(g.prefix + "alloc", b'{"leader": "wb1", "seq": 1, "a": {"wb1": 6000, "wb2": 26000}}')
g.step(T.ticks_ms())
fresh = [g.leader, g.share_ma, g.safe]
g.link.client.connected = False
for h in range(24 * 7):
    advance(H)
    g.step(T.ticks_ms())
g.link.client.connected = True
advance(1000)
g.on_message(g.prefix + "member/wb1", b'{"want": 32000}')  # back, no allocation yet
g.step(T.ticks_ms())
result = [fresh, [g.leader, g.share_ma, g.safe]]
""")
    assert r == [["wb1", 26000, False], ["wb1", 16000, True]]  # safe share 32 A / 2


def test_group_slot_held_a_week_rotates(dev):
    """Item 16: a slot held > 6.2 days without contention never rotated when a third box came."""
    r = dev("""
from firmware.links.group import allocate
st = {}
for h in range(24 * 7):  # a and b alone, both served, for 7 days
    a = allocate([('a', 16000), ('b', 16000)], 12000, T.ticks_ms(), st, 300000)
    advance(H)
waited = None
for s in range(700):  # c comes: two slots for three boxes
    a = allocate([('a', 16000), ('b', 16000), ('c', 16000)], 12000, T.ticks_ms(), st, 300000)
    if a['c'] >= 6000:
        waited = s
        break
    advance(1000)
result = waited
""")
    assert r is not None and r <= 1  # both held theirs for rotate_s long ago: c at once


# ---- web_auth -------------------------------------------------------------------

AUTH = """
rt = make()
from firmware.links.web_auth import Auth
def auth(session_h):
    a = Auth(rt.config, rt.store, session_h * 3600)
    if a.code_for() is not None:
        tok, err = asyncio.run(a.setup(a.setup_code, "correct horse"))
        assert err is None, err
    return a
def login(a, pw):
    return asyncio.run(a.login(pw))
"""


def test_web_session_of_168_h_expires(dev):
    """Item 11: web_session_h 150..168 (> 2**29 ms): sessions never expired."""
    r = dev(AUTH + """
a = auth(168)
tok, _ = login(a, "correct horse")
advance(167 * H)
at167 = a.session(tok) is not None
advance(2 * H)
result = [at167, a.session(tok) is not None]
""")
    assert r == [True, False]


def test_web_session_not_looked_at_stays_expired(dev):
    """Item 11: a 12 h session not looked at until day 6.2..12.4 became valid again."""
    r = dev(AUTH + """
a = auth(12)
t1, _ = login(a, "correct horse")
advance(11 * H)
at11 = a.session(t1) is not None
t2, _ = login(a, "correct horse")
advance(189 * H)  # at 200 h, nobody asked since 11 h
result = [at11, a.session(t2) is not None, a.session(t1) is not None]
""")
    assert r == [True, False, False]


def test_week_old_failed_logins_do_not_count(dev):
    """Item 12: 4 failures a week ago and 1 now locked the login for ~4 days."""
    r = dev(AUTH + """
a = auth(12)
for i in range(4):
    login(a, "wrong %d" % i)
advance(7 * DAY)
login(a, "wrong again")
tok, err = login(a, "correct horse")
# the rate limit itself: 5 failures lock the login for the window (60 s), then not
for i in range(5):
    login(a, "wrong %d" % i)
locked = a.locked_s()
advance(30000)
half = a.locked_s()
advance(31000)
result = [tok is not None, err, locked, half, a.locked_s()]
""")
    ok, err, locked, half, after = r
    assert ok and err is None, err
    assert 59 <= locked <= 61 and 29 <= half <= 31 and after == 0, r


# ---- console ----------------------------------------------------------------------

def test_factory_reset_code_from_last_week_is_refused(dev):
    """Low (technician/service.py:200): a confirmation code older than 6.2 days was accepted."""
    r = dev("""
rt = make()
from firmware.technician.service import Service
svc = Service(rt)
rt.config.set("max_current_a", 10)
svc.factory_reset()
code = svc._confirm[0]
advance(7 * DAY)
svc.factory_reset(code)
stale = rt.config.get("max_current_a")
svc.factory_reset()
advance(59000)
svc.factory_reset(svc._confirm[0])
result = [stale, rt.config.get("max_current_a")]
""")
    assert r[0] == 10 and r[1] != 10  # refused a week later; taken within 60 s
