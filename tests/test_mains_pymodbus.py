"""The mains meter path (firmware/services/mains.py over hal/modbus.py) in the unix port
against pymodbus as a real SDM630 slave on a pty pair: signed phase currents from I and P,
then a meter that answers garbage (bad CRC), one that stops answering (the feed times out
to the safe current) and one that answers again (it recovers by itself)."""
import json

import pytest

from mp import run_script

pytest.importorskip("serial")
from modbus_peer import sdm_slave  # noqa: E402

ADDR = 2
# I L1-3 (A, magnitude), P L1-3 (W, signed: L3 exports)
VALUES = {0x06: 12.5, 0x08: 3.25, 0x0A: 4.0, 0x0C: 2875.0, 0x0E: 747.5, 0x10: -920.0}


@pytest.fixture
def sdm630(tmp_path):
    mode_file = str(tmp_path / "mode")  # written by the device script: ok, garbage, silent
    with sdm_slave(ADDR, VALUES, mode_file) as port:
        yield port, mode_file


SCRIPT = """
import sys, json, asyncio, time
sys.path.insert(0, 'tests/fakes')
from pty_uart import PtyUart
from hal.modbus import ModbusRtu
from firmware.core import evse as E
from firmware.services.config import Config
from firmware.services import mains as M

class Store:
    def __init__(self): self.ev = []
    def event(self, t, d='', hold=0): self.ev.append([t, d])
    def _epoch(self): return 0
    def get(self, name): return None
    def put(self, name, obj, hold=0): pass

class Hw:
    current = None

class Rt:
    def __init__(self, bus):
        self.hw = Hw(); self.hw.modbus = bus
        self.config = Config()
        self.config.update({'lm_mode': 'normal', 'mains_source': 'modbus', 'mains_addr': 2,
                            'mains_max_a': 25, 'mains_timeout_s': 3})
        self.evse = E.Evse(); self.store = Store(); self.i_ma = [0, 0, 0]; self.link = None
        self._meter_lock = asyncio.Lock()

mode_file = sys.argv[2]
def mode(m):
    with open(mode_file, 'w') as f: f.write(m)

rt = Rt(ModbusRtu(PtyUart(sys.argv[1]), timeout_ms=300, retries=1))
m = M.Mains(rt)
def snap():
    s = m.status()
    return [s['feed_ok'], s['error'], [int(round(x * 1000)) for x in s['mains_a']], s['reads'],
            s['bad'], rt.evse.claims[1], s['reason']]

async def main():
    mode('ok')
    await asyncio.sleep_ms(300)
    asyncio.create_task(m.poll_modbus())
    asyncio.create_task(m.run())
    out = []
    for md, ms in (('ok', 3000), ('garbage', 2500), ('silent', 3500), ('ok', 3000)):
        mode(md)
        await asyncio.sleep_ms(ms)
        out.append(snap())
    return [out, [e[0] for e in rt.store.ev]]
print(json.dumps(asyncio.run(main())))
"""


def test_mains_meter_against_pymodbus(sdm630):
    port, mode_file = sdm630
    out = run_script(SCRIPT, fakes=True, timeout=60, args=[port, mode_file])
    snaps, events = json.loads(out.strip().splitlines()[-1])
    ok, garbage, silent, back = snaps
    assert ok[0] is True and ok[1] is None and ok[3] >= 1
    assert ok[2] == [12500, 3250, -4000]  # L3 exports: negative
    assert ok[5] == 12000  # 25 A fuse - 12.5 A other load on L1 -> 12 A (whole amps)
    assert garbage[1] in ("mains: meter_crc", "mains: meter_frame", "mains: meter_short")
    assert garbage[4] > ok[4]
    assert silent[0] is False and silent[1] == "mains: meter_timeout"
    assert silent[5] == 6000 and silent[6] == "mains feed lost: 6 A"  # the safe current
    assert back[0] is True and back[1] is None and back[5] == 12000 and back[3] > silent[3]
    assert "mains_lost" in events and "mains_ok" in events
