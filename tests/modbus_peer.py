"""pymodbus (an independent Modbus RTU implementation) as an SDM630 slave on a pty pair, for
the unix-port tests of hal/meter.py and firmware/services/mains.py: the slave's pty, a relay
thread between the two ptys (which can corrupt or drop the slave's replies), the device's pty."""
import asyncio
import contextlib
import os
import select
import struct
import threading
import tty

from pymodbus.datastore import (ModbusDeviceContext, ModbusSequentialDataBlock,
                                ModbusServerContext)
from pymodbus.server import ServerAsyncStop, StartAsyncSerialServer


def registers(values):
    """Input registers 0..0x5F holding {register address: float} as IEEE 754 pairs."""
    regs = [0] * 0x60
    for addr, v in values.items():
        hi, lo = struct.unpack(">HH", struct.pack(">f", v))
        regs[addr], regs[addr + 1] = hi, lo
    return regs


def _relay(a, b, stop, mode_file):
    # Bytes between the two ptys; with a mode file the slave's replies (a -> b) are passed
    # ("ok"), corrupted ("garbage") or dropped ("silent") as it says.
    while not stop.is_set():
        r, _, _ = select.select([a, b], [], [], 0.05)
        mode = "ok"
        if mode_file:
            try:
                mode = open(mode_file).read().strip()
            except OSError:
                pass
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


@contextlib.contextmanager
def sdm_slave(addr, values, mode_file=None):
    """A pymodbus slave at `addr` serving `values`; yields the device side's pty path."""
    ma, sa = os.openpty()  # pymodbus side
    mb, sb = os.openpty()  # MicroPython side
    for fd in (sa, sb):
        tty.setraw(fd)
    stop = threading.Event()
    t_relay = threading.Thread(target=_relay, args=(ma, mb, stop, mode_file), daemon=True)
    t_relay.start()
    # pymodbus addresses block index = register address + 1 (1-based data model)
    ctx = ModbusServerContext(devices={addr: ModbusDeviceContext(
        ir=ModbusSequentialDataBlock(1, registers(values)))}, single=False)
    loop = asyncio.new_event_loop()

    def serve():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(StartAsyncSerialServer(
            context=ctx, port=os.ttyname(sa), baudrate=9600, framer="rtu"))

    t_srv = threading.Thread(target=serve, daemon=True)
    t_srv.start()
    try:
        yield os.ttyname(sb)
    finally:
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
