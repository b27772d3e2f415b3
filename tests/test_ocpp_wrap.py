"""The OCPP client across the ticks wrap, on the 32-bit VM (tick period 2**30 ms as on the
chips; time.ticks_diff is valid for |interval| < 2**29 ms, ~6.2 days, and ticks_add raises
OverflowError for |delta| >= 2**29). The client object (firmware/links/ocpp.py) runs on a
fake runtime with its module's `time` replaced by a clock the test moves across days; the
clock's ticks_diff/ticks_add are the VM's own. No CSMS: _call is replaced by a recorder."""
import shutil
import tempfile

import pytest

from mp import MicroPython

DAY = 86400 * 1000


@pytest.fixture(scope="module")
def mp():
    vm = MicroPython(vm="mp32")
    yield vm
    vm.close()


@pytest.fixture
def data_dir():
    d = tempfile.mkdtemp(prefix="ocppwrap-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# Device side: the client `o` on the fake runtime `rt`, its clock `clk`; adv(ms) moves the
# clock in steps the store's wrap-safe uptime can follow, polling after each if asked; send()
# runs one round of the sender; `sent` records the CALLs, `reply` is what the CSMS answers.
PRELUDE = r"""
import asyncio, time
assert time.ticks_add(0, -1) == (1 << 30) - 1, "not the 32-bit VM"
import firmware.links.ocpp as O
from firmware.services.store import Store
from firmware.services.config import Config

class Clock:
    def __init__(self):
        self.t = 0
    def ticks_ms(self):
        return self.t
    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)
    def ticks_add(self, a, d):
        return time.ticks_add(a, d)

class Out:
    contactor = False
    state = "A"
    fault = 0
    pilot = 0
    lock = False

class Evse:
    def __init__(self):
        self.outputs = Out()
        self.authorized = False
        self.fault = 0
        self.claim = None
    def set_claim_ma(self, who, ma):
        self.claim = ma
    def authorize(self):
        self.authorized = True

class Rt:
    def __init__(self, path, clk):
        self.store = Store(path, clock_ms=clk.ticks_ms, epoch_s=lambda: 0)
        self.config = Config(self.store)
        assert not self.config.set("ocpp_url", "ws://127.0.0.1:9/ocpp")
        self.evse = Evse()
        self.unplugs = 0
        self.features = {}
        self.power_w = 0
        self.i_ma = [0, 0, 0]
        self.v_mv = [230000, 230000, 230000]
        self.temp_dc = -32768
        self.meter_error = None
    def note_command(self):
        pass

clk = Clock()
O.time = clk
rt = Rt(data, clk)
o = O.Ocpp(rt)
sent = []
reply = [("ok", {})]
async def fake_call(action, p, msg_id=None):
    sent.append(action)
    return reply[0]
o._call = fake_call

def adv(ms, poll=False, step=3600000):
    while ms > 0:
        d = ms if ms < step else step
        clk.t = time.ticks_add(clk.t, d)
        ms -= d
        rt.store.uptime_s()
        if poll:
            o.poll(clk.t)

def send():
    asyncio.run(o._send_one())

def accepted():
    o.boot = "Accepted"
    o._status = o._st0 = None
"""


def run(mp, data_dir, code):
    return mp.run(PRELUDE + code, data_dir)


def test_vm_wraps_like_the_chip(mp, data_dir):
    # the premise of every test here: past 2**29 ms a kept timestamp reads as the future
    assert run(mp, data_dir, "result = time.ticks_diff((1 << 29) + 5, 0)") < 0


def test_transaction_message_sent_in_upper_half_period(mp, data_dir):
    """Item 7: _tx_retry_at was 0 and never cleared: a StartTransaction queued 6.2..12.4 days
    after boot sat in the queue (ticks_diff(now, 0) < 0)."""
    r = run(mp, data_dir, """
accepted()
adv(6 * 86400000 + 8 * 3600000)  # day 6.33
o.q.put("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0,
                             "timestamp": "x"}, o.q.new_ref(), opens=True)
send()
result = [sent, len(o.q)]
""")
    assert r == [["StartTransaction"], 0]


def test_transaction_message_after_old_failure(mp, data_dir):
    """Item 7: a failure at day 0 left _tx_retry_at at day 0 + 60 s; a message queued a week
    later sat in the queue for up to 6.2 more days."""
    r = run(mp, data_dir, """
accepted()
ref = o.q.new_ref()
o.q.put("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0,
                             "timestamp": "x"}, ref, opens=True)
reply[0] = ("timeout", None)
send()                      # attempt 1 fails: retry in 60 s
early = list(sent)
adv(30000); send()          # not yet
at30 = list(sent)
reply[0] = ("ok", {"transactionId": 7})
adv(31000); send()          # attempt 2 at 61 s: confirmed
at61 = list(sent)
adv(7 * 86400000)
o.q.put("MeterValues", {"connectorId": 1, "transactionId": 0, "meterValue": []}, ref)
send()
result = [early, at30, at61, sent, len(o.q)]
""")
    assert r[0] == ["StartTransaction"]
    assert r[1] == ["StartTransaction"]  # the RetryInterval is still kept
    assert r[2] == ["StartTransaction"] * 2
    assert r[3] == ["StartTransaction"] * 2 + ["MeterValues"]
    assert r[4] == 0


def test_transaction_retry_after_week_offline(mp, data_dir):
    """Item 7: a failed attempt, then the link down for a week: after the reconnect the retry
    waited up to 6.2 more days (its due time had aged past 2**29 ms)."""
    r = run(mp, data_dir, """
accepted()
o.q.put("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0,
                             "timestamp": "x"}, o.q.new_ref(), opens=True)
reply[0] = ("timeout", None)
send()
adv(7 * 86400000)           # offline: the sender does not run
o._on_open()
o.boot = "Accepted"
reply[0] = ("ok", {"transactionId": 7})
send()
result = [sent, len(o.q)]
""")
    assert r == [["StartTransaction"] * 2, 0]


def test_boot_interval_clamped_heartbeat(mp, data_dir):
    """Item 10: BootNotification.conf interval 10**6 s (> 2**29 ms): no heartbeat ever, and
    TriggerMessage(Heartbeat) raised in ticks_add. Clamped to the HeartbeatInterval key's
    range, 10..86400 s."""
    r = run(mp, data_dir, """
from firmware.links import ocpp_keys
row = [k for k in ocpp_keys.KEYS if k[0] == "HeartbeatInterval"][0]
reply[0] = ("ok", {"status": "Accepted", "interval": 1000000, "currentTime": "x"})
o._on_open()
send()
hb = o.hb_ms
reply[0] = ("ok", {})
adv(86400000 - 1000); send()
before = list(sent)
adv(2000); send()
after = list(sent)
trig = o.on_TriggerMessage({"requestedMessage": "Heartbeat"})
send()
o.boot = None
reply[0] = ("ok", {"status": "Accepted", "interval": 3, "currentTime": "x"})
send()
result = [row[2], row[3], hb, before, after, trig, sent[-2], o.hb_ms]
""")
    lo, hi, hb, before, after, trig, trig_sent, hb_low = r
    assert (lo, hi) == (10, 86400)
    assert hb == hi * 1000
    assert before == ["BootNotification"]
    assert after == ["BootNotification", "Heartbeat"]
    assert trig == {"status": "Accepted"} and trig_sent == "Heartbeat"
    assert hb_low == lo * 1000


def test_boot_pending_interval_clamped(mp, data_dir):
    """Item 10: Pending with interval >= 536871 s raised OverflowError in ticks_add; _sender
    logged it and retried every second: a BootNotification flood. Now at most 86400 s."""
    r = run(mp, data_dir, """
reply[0] = ("ok", {"status": "Pending", "interval": 1000000, "currentTime": "x"})
o._on_open()
err = None
try:
    send()
except OverflowError as e:
    err = repr(e)
adv(1000); send()
adv(86400000 - 2000); send()
before = list(sent)
adv(2000); send()
result = [err, o.boot, before, sent]
""")
    assert r[0] is None
    assert r[1] == "Pending"
    assert r[2] == ["BootNotification"]
    assert r[3] == ["BootNotification"] * 2


def test_charging_profile_claim_in_upper_half(mp, data_dir):
    """Item 8: _claim_at = 0: a profile set 6.2..12.4 days after boot was applied once, and
    its schedule's next period not for up to 6.2 days (the once-a-second claim did not run)."""
    r = run(mp, data_dir, """
adv(6 * 86400000 + 8 * 3600000, poll=True)
st = o.on_SetChargingProfile({"connectorId": 0, "csChargingProfiles": {
    "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "ChargePointMaxProfile",
    "chargingProfileKind": "Absolute", "chargingSchedule": {
        "startSchedule": o.ts(), "chargingRateUnit": "A", "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 16}, {"startPeriod": 10, "limit": 8}]}}})
first = rt.evse.claim
adv(15000, poll=True, step=250)
result = [st, first, rt.evse.claim]
""")
    assert r == [{"status": "Accepted"}, 16000, 8000]


def test_meter_values_after_change_configuration_in_upper_half(mp, data_dir):
    """Item 9: ChangeConfiguration(MeterValueSampleInterval) set _mv_at = 0: 6.2..12.4 days
    after boot the periodic MeterValues of the running transaction stopped."""
    r = run(mp, data_dir, """
rt.evse.outputs.state = "C"
adv(6 * 86400000 + 8 * 3600000)
o.poll(clk.t)             # free charging: the transaction starts
n0 = len(o.q)
ch = o.on_ChangeConfiguration({"key": "MeterValueSampleInterval", "value": "10"})
adv(25000, poll=True, step=250)
result = [o.tx is not None, n0, ch, len(o.q) - n0]
""")
    assert r[:3] == [True, 1, {"status": "Accepted"}]
    assert r[3] >= 2  # a sample every 10 s


def test_status_last_csms_after_a_week(mp, data_dir):
    """Low (ocpp.py:187): "last_csms ... s ago" went negative a week after the last frame."""
    r = run(mp, data_dir, """
asyncio.run(o._on_text('[3,"x",{}]'))
adv(7 * 86400000)
result = o.status()["last_csms"]
""")
    assert r == "CALLRESULT 604800 s ago"


def test_bad_json_logged_after_a_week(mp, data_dir):
    """Low (ocpp.py:410): after > 6.2 days without one, invalid frames were not logged for up
    to 6.2 days (the once-a-minute suppression read the old time as the future)."""
    r = run(mp, data_dir, """
async def no_send(*a):
    pass
o._send_error = no_send
asyncio.run(o._on_text('[2,"a",'))
asyncio.run(o._on_text('[2,"b",'))   # the same minute: not logged again
adv(7 * 86400000)
asyncio.run(o._on_text('[2,"c",'))
result = [o.bad_frames, len([e for e in rt.store.events() if e["type"] == "ocpp_bad_json"])]
""")
    assert r == [3, 2]
