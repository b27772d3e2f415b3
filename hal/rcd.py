# Residual-current device (RDC-DD, IEC 62955): fault input and test output.
# tripped() / set_test() are per-tick and allocate nothing. selftest() runs the
# timing of iec61851.md section 8: after the test pulse starts the trip must be
# seen within 500 ms; after the pulse ends it must clear within 1.2 s.
# attach(contactor) makes the fault line an interlock of the contactor and, where
# the port has hard pin IRQs, opens the coil from the interrupt itself.
from micropython import const
import asyncio
import time

_TRIP_MS = const(500)
_CLEAR_MS = const(1200)
_POLL_MS = const(5)


class Rcd:
    def __init__(self, fault, test=None, fault_active=1, test_active=1):
        self._fault = fault  # Pin input
        self._test = test  # Pin output or None
        self._fa = fault_active
        self._ta = test_active
        self._contactor = None
        self.irq_count = 0
        self.test_on = False
        self.trip_ms = -1  # last selftest: ms from pulse to trip (-1 none)
        self.clear_ms = -1  # ms from pulse end to clear
        self.error = None
        if test is not None:
            test.value(1 - test_active)

    def tripped(self):
        return self._fault.value() == self._fa

    def set_test(self, on):
        if self._test is None:
            return
        on = bool(on)
        if on != self.test_on:
            self._test.value(self._ta if on else 1 - self._ta)
            self.test_on = on

    def attach(self, contactor, trigger=None, hard=True):
        """Interlock `contactor` with the fault line; IRQ opens it at once."""
        self._contactor = contactor
        contactor.interlock = self
        if trigger is not None:
            self._isr = self._on_irq  # bound once: the ISR must not allocate
            try:
                self._fault.irq(handler=self._isr, trigger=trigger, hard=hard)
            except (TypeError, ValueError):  # port without hard IRQs
                self._fault.irq(handler=self._isr, trigger=trigger)

    def _on_irq(self, pin):
        if pin.value() == self._fa:
            self._contactor.force_off()
            self.irq_count += 1

    async def _wait(self, want, limit_ms):
        t0 = time.ticks_ms()
        while self.tripped() != want:
            if time.ticks_diff(time.ticks_ms(), t0) >= limit_ms:
                return -1
            await asyncio.sleep_ms(_POLL_MS)
        return time.ticks_diff(time.ticks_ms(), t0)

    async def selftest(self, trip_ms=_TRIP_MS, clear_ms=_CLEAR_MS):
        """-> (ok, reason). reason None on pass, else rcd_no_test_pin,
        rcd_tripped_before_test, rcd_no_trip, rcd_no_clear."""
        if self._test is None:
            return False, "rcd_no_test_pin"
        if self.tripped():
            return False, "rcd_tripped_before_test"
        try:
            self.set_test(True)
            self.trip_ms = await self._wait(True, trip_ms)
            self.set_test(False)
            if self.trip_ms < 0:
                return False, "rcd_no_trip"
            self.clear_ms = await self._wait(False, clear_ms)
            if self.clear_ms < 0:
                return False, "rcd_no_clear"
            return True, None
        finally:
            self.set_test(False)
