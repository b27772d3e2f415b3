# Main contactor (coil output + optional mirror-contact feedback) and an
# optional second contactor that adds L2/L3 (1/3-phase switching).
# set() writes the coil only on change and allocates nothing. An interlock
# (e.g. the RCD fault line, see hal/rcd.py attach()) keeps the coil open while
# it reports a fault, whatever set() asks for.


class Contactor:
    def __init__(self, coil, fb=None, fb_closed=1, phase=None, phases=1):
        self._coil = coil  # Pin, 1 = energised
        self._fb = fb  # Pin or None (not fitted)
        self._fb_closed = fb_closed  # fb level that means "main contacts closed"
        self._phase = phase  # Pin or None; 1 = L2/L3 contactor energised
        self.interlock = None  # object with tripped() -> bool, or None
        self.on = False
        self.error = None
        # without a phase contactor the wiring fixes the phase count
        self.phases = phases if phase is None else 1
        coil.value(0)
        if phase is not None:
            phase.value(0)

    def set(self, on):
        on = bool(on)
        if on and self.interlock is not None and self.interlock.tripped():
            on = False
            self.error = "interlock"
        if on != self.on:
            self._coil.value(1 if on else 0)
            self.on = on

    def force_off(self):
        """Open now; safe to call from a hard IRQ (no allocation)."""
        self._coil.value(0)
        self.on = False

    def feedback(self):
        if self._fb is None:
            return -1
        return 1 if self._fb.value() == self._fb_closed else 0

    def set_phases(self, n):
        """1 or 3 phases. Returns None, or an error name and changes nothing."""
        if n != 1 and n != 3:
            return "bad_phases"
        if n == self.phases:
            return None
        if self._phase is None:
            return "no_phase_switch"
        if self.on:
            return "contactor_closed"  # switch only with the main contactor open
        self._phase.value(1 if n == 3 else 0)
        self.phases = n
        return None
