"""The persisted OCPP transaction queue (firmware/links/ocpp_queue.py) in the MicroPython unix
port: 100 offline transactions' worth of messages replayed in order with their transactionIds,
a reopened store gives the same queue, and the transactions a cut left open are found."""
import shutil
import tempfile

PRELUDE = """
from firmware.services.store import Store
from firmware.links.ocpp_queue import TxQueue, CAP
def reopen(path):
    return TxQueue(Store(path))
"""


def test_hundred_offline_transactions_replay_in_order(mp):
    d = tempfile.mkdtemp(prefix="ocppq-")
    try:
        code = PRELUDE + """
q = reopen(data)
refs = []
wh = 0
for t in range(100):
    ref = q.new_ref()
    refs.append(ref)
    q.put("StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": wh,
                               "timestamp": "x"}, ref, opens=True)
    for i in range(6):
        wh += 3
        q.put("MeterValues", {"connectorId": 1, "transactionId": 0, "meterValue": [
            {"timestamp": "x", "sampledValue": [{"value": str(wh)}]}]}, ref)
    q.put("StopTransaction", {"transactionId": 0, "meterStop": wh, "timestamp": "x",
                              "reason": "EVDisconnected"}, ref, closes=True)
n = len(q)
q = reopen(data)  # a reboot: everything is still there, nothing open
assert len(q) == n and q.open is None and q.unstopped() == []
sent = []
ids = set()
txid = 500
while True:
    h = q.peek()
    if h is None:
        break
    mid, action, p, ref = h
    assert mid not in ids
    ids.add(mid)
    if action == "StartTransaction":
        txid += 1
        q.confirm(txid, ref)
        sent.append((action, txid, p["meterStart"]))
    else:
        v = p["meterStop"] if action == "StopTransaction" else int(
            p["meterValue"][0]["sampledValue"][0]["value"])
        sent.append((action, p["transactionId"], v))
        q.confirm(ref=ref, ends=action == "StopTransaction")
    if len(sent) == 350:
        q = reopen(data)  # reboot in the middle of the replay
result = [n, sent, len(q), q.max_wh(), q.ids]
"""
        n, sent, left, max_wh, ids = mp.run(code, d)
        assert n == 800 and left == 0 and len(sent) == 800
        assert ids == {}  # every finished transaction's id forgotten
        assert max_wh == 100 * 18
        # in order: each transaction Start, 6 MeterValues, Stop with one id; registers rising
        regs = [s[2] for s in sent]
        assert regs == sorted(regs)
        for t in range(100):
            block = sent[t * 8:(t + 1) * 8]
            assert [b[0] for b in block] == ["StartTransaction"] + ["MeterValues"] * 6 + [
                "StopTransaction"]
            assert len({b[1] for b in block}) == 1 and block[0][1] == 501 + t
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_open_transaction_and_full_queue(mp):
    d = tempfile.mkdtemp(prefix="ocppq-")
    try:
        code = PRELUDE + """
q = reopen(data)
a = q.new_ref()
q.put("StartTransaction", {"meterStart": 1}, a, opens=True)
b = q.new_ref()  # a Start on flash whose header commit was cut: found by scanning
q.put("StartTransaction", {"meterStart": 2}, b)
q = reopen(data)
un = q.unstopped()
# full: MeterValues are refused first, Start/Stop keep their reserve
mv = 0
while q.put("MeterValues", {"meterValue": []}, a):
    mv += 1
stop_ok = q.put("StopTransaction", {"meterStop": 3}, a, closes=True)
result = [un, len(q), stop_ok, q.dropped, CAP]
"""
        un, n, stop_ok, dropped, cap = mp.run(code, d)
        assert sorted(un) == [1, 2]
        assert stop_ok and dropped == 1 and n == cap - 80 + 1
    finally:
        shutil.rmtree(d, ignore_errors=True)
