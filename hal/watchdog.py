# Hardware watchdog. Once started it cannot be stopped: feed() it only from a
# healthy control loop. RP2040's WDT allows at most 8388 ms.
from micropython import const
import machine

_RP2_MAX_MS = const(8388)


class Watchdog:
    def __init__(self, timeout_ms, max_ms=_RP2_MAX_MS):
        self.timeout_ms = min(timeout_ms, max_ms)
        self._wdt = machine.WDT(timeout=self.timeout_ms)
        self.feeds = 0

    def feed(self):
        self._wdt.feed()
        self.feeds += 1
