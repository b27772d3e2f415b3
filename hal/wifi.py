# WiFi station with an async connect loop and exponential backoff.
# network.WLAN.connect() returns at once on ESP32/RP2 but association, DHCP and
# later DNS look-ups may block inside C for a while: `gate()` (if given) must
# return True before a (re)connect starts, so the firmware can hold reconnects
# while the contactor is closed (DESIGN.md, "Calls that block inside C").
from micropython import const
import asyncio
import time

import network

_BACKOFF_MIN_MS = const(1000)
_BACKOFF_MAX_MS = const(60000)


class Wifi:
    def __init__(self, ssid, password, gate=None, connect_timeout_ms=15000, hostname=None):
        self.ssid = ssid
        self._pw = password
        self._gate = gate
        self._timeout = connect_timeout_ms
        self._wlan = network.WLAN(network.STA_IF)
        self._hostname = hostname
        self.backoff_ms = _BACKOFF_MIN_MS
        self.attempts = 0
        self.error = None
        self.up = False

    def connected(self):
        return self._wlan.isconnected()

    async def _try(self):
        w = self._wlan
        w.active(True)
        if self._hostname:
            try:
                network.hostname(self._hostname)
            except Exception:  # older ports: no network.hostname
                pass
        self.attempts += 1
        w.connect(self.ssid, self._pw)
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < self._timeout:
            if w.isconnected():
                return True
            await asyncio.sleep_ms(200)
        w.disconnect()
        return False

    async def run(self):
        while True:
            if self.connected():
                self.up = True
                self.backoff_ms = _BACKOFF_MIN_MS
                await asyncio.sleep_ms(1000)
                continue
            self.up = False
            if self._gate is not None and not self._gate():
                await asyncio.sleep_ms(500)
                continue
            try:
                ok = await self._try()
            except OSError:
                ok = False
            if ok:
                self.error = None
                continue
            self.error = "wifi_connect"
            await asyncio.sleep_ms(self.backoff_ms)
            self.backoff_ms = min(self.backoff_ms * 2, _BACKOFF_MAX_MS)
