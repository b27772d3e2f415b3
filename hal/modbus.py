# Modbus RTU master over machine.UART, function 0x04 (read input registers).
# Asynchronous: writes the request, then polls uart.any() with
# asyncio.sleep_ms() until the reply is complete or the timeout passes, so the
# event loop never blocks. Never raises: read_input() returns the payload
# (a memoryview into a preallocated buffer, valid until the next call) or None
# with `error` set to one of
#   meter_timeout    no byte came back
#   meter_short      some bytes, but not a whole frame in time (or byte count wrong)
#   meter_crc        whole frame, bad CRC
#   meter_exception  the slave answered with an exception (code in `exc_code`)
#   meter_frame      a frame for another address/function
# Failed requests are retried (`retries`), exceptions are not.
from micropython import const
import asyncio
import time

_FC_READ_INPUT = const(0x04)
_MAX_REGS = const(60)


def crc16(buf, n=-1):
    """Modbus CRC-16 (poly 0xA001 reflected, init 0xFFFF) of buf[:n]."""
    if n < 0:
        n = len(buf)
    crc = 0xFFFF
    for i in range(n):
        crc ^= buf[i]
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


class ModbusRtu:
    def __init__(self, uart, baud=9600, timeout_ms=300, retries=2, de=None):
        self._uart = uart
        self._de = de  # RS-485 driver-enable Pin, or None (auto-direction transceiver)
        self.timeout_ms = timeout_ms
        self.retries = retries
        # 3.5 character times between frames (11 bits/char), at least 2 ms
        self._gap_ms = max(2, (35 * 11 * 1000) // (10 * baud) + 1)
        self._char_us = 11000000 // baud
        self._tx = bytearray(8)
        self._rx = bytearray(5 + 2 * _MAX_REGS)
        self._rxv = memoryview(self._rx)
        self.error = None
        self.exc_code = 0
        self.requests = 0
        if de is not None:
            de.value(0)

    def _frame(self, addr, fc, reg, count):
        t = self._tx
        t[0] = addr
        t[1] = fc
        t[2] = reg >> 8
        t[3] = reg & 0xFF
        t[4] = count >> 8
        t[5] = count & 0xFF
        c = crc16(t, 6)
        t[6] = c & 0xFF
        t[7] = c >> 8

    async def _send(self):
        u = self._uart
        while u.any():  # drop stale bytes from an earlier late reply
            u.read()
        if self._de is not None:
            self._de.value(1)
        u.write(self._tx)
        if self._de is not None:
            # sleep through most of the wire time, then spin the last ~2 chars:
            # DE must drop before the slave starts answering
            await asyncio.sleep_ms(max(0, 6 * self._char_us // 1000))
            if hasattr(u, "txdone"):
                t0 = time.ticks_us()
                while not u.txdone() and time.ticks_diff(time.ticks_us(), t0) < 4 * self._char_us:
                    pass
            else:
                await asyncio.sleep_ms(2 * self._char_us // 1000 + 1)
            self._de.value(0)

    async def _receive(self, addr, fc, count):
        u = self._uart
        rx = self._rx
        rxv = self._rxv
        want = 5 + 2 * count
        got = 0
        t0 = time.ticks_ms()
        while True:
            if u.any():
                k = u.readinto(rxv[got:want])
                if k:
                    got += k
                if got >= 2 and rx[1] == (fc | 0x80):
                    want = 5  # exception frame
                if got >= want:
                    break
            elif time.ticks_diff(time.ticks_ms(), t0) >= self.timeout_ms:
                self.error = "meter_timeout" if got == 0 else "meter_short"
                return None
            else:
                await asyncio.sleep_ms(2)
        if crc16(rx, want - 2) != rx[want - 2] | (rx[want - 1] << 8):
            self.error = "meter_crc"
            return None
        if rx[0] != addr or (rx[1] & 0x7F) != fc:
            self.error = "meter_frame"
            return None
        if rx[1] & 0x80:
            self.exc_code = rx[2]
            self.error = "meter_exception"
            return None
        if rx[2] != 2 * count:
            self.error = "meter_short"
            return None
        self.error = None
        return rxv[3:3 + 2 * count]

    async def read_input(self, addr, reg, count):
        """Registers reg..reg+count-1 of slave addr -> memoryview or None."""
        if not 1 <= count <= _MAX_REGS:
            self.error = "meter_count"
            return None
        self._frame(addr, _FC_READ_INPUT, reg, count)
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep_ms(self._gap_ms * 4)
            self.requests += 1
            try:
                await self._send()
                data = await self._receive(addr, _FC_READ_INPUT, count)
            except (OSError, ValueError, TypeError, IndexError):  # UART driver trouble
                self.error = "meter_io"
                data = None
            if data is not None:
                await asyncio.sleep_ms(self._gap_ms)
                return data
            if self.error == "meter_exception":
                return None
        return None
