"""The mains meter path (firmware/services/mains.py over hal/modbus.py) in the unix port
against pymodbus as a real SDM630 slave on a pty pair: signed phase currents from I and P,
then a meter that answers garbage (bad CRC), one that stops answering (the feed times out
to the safe current) and one that answers again (it recovers by itself)."""
import asyncio
import json
import os
import struct
import threading
import tty

import pytest

from mp import run_script

pytest.importorskip("serial")
from pymodbus.datastore import (ModbusDeviceContext, ModbusSequentialDataBlock,  # noqa: E402
                                ModbusServerContext)
from pymodbus.server import StartAsyncSerialServer, ServerAsyncStop  # noqa: E402

ADDR = 2
# I L1-3 (A, magnitude), P L1-3 (W, signed: L3 exports)
VALUES = {0x06: 12.5, 0x08: 3.25, 0x0A: 4.0, 0x0C: 2875.0, 0x0E: 747.5, 0x10: -920.0}


def registers():
    regs = [0] * 0x60
    for addr, v in VALUES.items():
        hi, lo = struct.unpack(">HH", struct.pack(">f", v))
        regs[addr], regs[addr + 1] = hi, lo
    return regs


def relay(a, b, stop, mode_file):
    """Bytes between the two ptys; the slave's replies (a -> b) are passed, corrupted or
    dropped as the mode file says (written by the device script)."""
    import select
    while not stop.is_set():
        r, _, _ = select.select([a, b], [], [], 0.05)
        try:
            mode = open(mode_file).read().strip()
        except OSError:
            mode = "ok"
        for fd in r:
            try:
                data = os.read(fd, 256)
            except OSError:
                return
            if fd == a:
                if mode == "silent":
                    continue
                if mode == "garbage":
                    data = bytes([data[0]]) + bytes(x ^ 0x5A for x in data[1:])
            os.write(b if fd == a else a, data)


@pytest.fixture
def sdm630(tmp_path):
    ma, sa = os.openpty()  # pymodbus side
    mb, sb = os.openpty()  # MicroPython side
    for fd in (sa, sb):
        tty.setraw(fd)
    mode_file = str(tmp_path / "mode")
    stop = threading.Event()
    t_relay = threading.Thread(target=relay, args=(ma, mb, stop, mode_file), daemon=True)
    t_relay.start()
    ctx = ModbusServerContext(devices={ADDR: ModbusDeviceContext(
        ir=ModbusSequentialDataBlock(1, registers()))}, single=False)
    loop = asyncio.new_event_loop()

    def serve():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(StartAsyncSerialServer(
            context=ctx, port=os.ttyname(sa), baudrate=9600, framer="rtu"))

    t_srv = threading.Thread(target=serve, daemon=True)
    t_srv.start()
    yield os.ttyname(sb), mode_file
    try:
        asyncio.run_coroutine_threadsafe(ServerAsyncStop(), loop).result(5)
    except Exception:
        pass
    stop.set()
    t_relay.join(2)
    t_srv.join(5)
    for fd in (ma, sa, mb, sb):
        try:
            os.close(fd)
        except OSError:
            pass


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
