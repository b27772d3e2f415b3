# Push button with debounce: pressed() is the level stable for debounce_ms.
import time


class Button:
    def __init__(self, pin, active=0, debounce_ms=30):
        self._pin = pin
        self._act = active
        self._db = debounce_ms
        self._raw = False
        self._t = time.ticks_ms()
        self.state = False
        self.presses = 0  # count of debounced press edges

    def pressed(self):
        raw = self._pin.value() == self._act
        now = time.ticks_ms()
        if raw != self._raw:
            self._raw = raw
            self._t = now
        elif raw != self.state and time.ticks_diff(now, self._t) >= self._db:
            self.state = raw
            if raw:
                self.presses += 1
        return self.state
