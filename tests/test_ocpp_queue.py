"""The persisted OCPP transaction queue (firmware/links/ocpp_queue.py) in the MicroPython unix
port: 100 offline transactions' worth of messages replayed in order with their transactionIds,
a reopened store gives the same queue, and the transactions a cut left open are found."""
import shutil
import tempfile

import pytest

from mp import MicroPython


@pytest.fixture(scope="module")
def mp():
    """A VM of its own: 800 queued messages must not depend on what other tests left in the
    shared VM's heap."""
    vm = MicroPython()
    yield vm
    vm.close()

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
import gc
gc.collect()
q = reopen(data)
wh = 0
for t in range(100):
    ref = q.new_ref()
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
reopened = [len(q) == n, q.open, q.unstopped()]
# replay, checked here (the shared VM's heap stays small): the order of each block,
# one transactionId per block, registers rising, no message id twice
ids = set()
txid = 500
count = 0
last_reg = -1
errors = []
block = []
while True:
    h = q.peek()
    if h is None:
        break
    mid, action, p, ref = h
    if mid in ids:
        errors.append("dup " + mid)
    ids.add(mid)
    if action == "StartTransaction":
        txid += 1
        q.confirm(txid, ref)
        block = [action]
        reg, tid = p["meterStart"], txid
    else:
        reg = p["meterStop"] if action == "StopTransaction" else int(
            p["meterValue"][0]["sampledValue"][0]["value"])
        tid = p["transactionId"]
        q.confirm(ref=ref, ends=action == "StopTransaction")
        block.append(action)
    if tid != txid:
        errors.append("txid %d != %d" % (tid, txid))
    if reg < last_reg:
        errors.append("register back at %s" % mid)
    last_reg = reg
    if action == "StopTransaction" and block != ["StartTransaction"] + ["MeterValues"] * 6 + [
            "StopTransaction"]:
        errors.append("block %d" % txid)
    count += 1
    if count == 350:
        q = reopen(data)  # reboot in the middle of the replay
        gc.collect()
result = [n, reopened, count, txid, len(q), q.max_wh(), len(q.ids), errors[:5]]
"""
        n, reopened, count, txid, left, max_wh, nids, errors = mp.run(code, d)
        assert n == 800 and reopened == [True, None, []]
        assert count == 800 and txid == 600 and left == 0 and errors == []
        assert nids == 0  # every finished transaction's id forgotten
        assert max_wh == 100 * 18
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
