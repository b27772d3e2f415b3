# Socket lock actuator with optional feedback switch.
#   level: one output pin, 1 = locked (solenoid held)
#   pulse: motor driven through pin_lock / pin_unlock (H-bridge) for pulse_ms;
#          set() starts the pulse, update() (every tick) ends it. Never blocks.
import time


class Lock:
    def __init__(self, pin_lock, pin_unlock=None, fb=None, fb_locked=1, pulse_ms=600):
        self._a = pin_lock
        self._b = pin_unlock  # None: level mode
        self._fb = fb
        self._fb_locked = fb_locked
        self._pulse_ms = pulse_ms
        self._t = 0
        self.busy = False  # a pulse is running
        self.locked = None  # last commanded state (None: never set)
        self.error = None
        pin_lock.value(0)
        if pin_unlock is not None:
            pin_unlock.value(0)

    def set(self, locked):
        locked = bool(locked)
        if locked == self.locked:
            return
        self.locked = locked
        if self._b is None:
            self._a.value(1 if locked else 0)
            return
        # never drive both bridge halves at once
        (self._b if locked else self._a).value(0)
        (self._a if locked else self._b).value(1)
        self._t = time.ticks_ms()
        self.busy = True

    def update(self):
        if self.busy and time.ticks_diff(time.ticks_ms(), self._t) >= self._pulse_ms:
            self._a.value(0)
            self._b.value(0)
            self.busy = False
            fb = self.feedback()
            self.error = None if fb < 0 or fb == self.locked else "lock_fb"

    def feedback(self):
        if self._fb is None:
            return -1
        return 1 if self._fb.value() == self._fb_locked else 0
