# The one command API: the console, the MQTT link and the sim harness all go through
# it, so every entry point validates the same way. Each call returns (True, value) or
# (False, "what is wrong and what is allowed") and changes nothing on error.
from firmware.core import evse as E

_TRUE = ("true", "1", "on", "yes")
_FALSE = ("false", "0", "off", "no")


def parse_bool(v):
    """True/False from a bool or the words HA, evcc and people use; None if neither."""
    if v is True or v is False:
        return v
    if isinstance(v, (bytes, bytearray)):
        v = v.decode()
    if isinstance(v, str):
        t = v.strip().lower()
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
    return None


def parse_amps_ma(v):
    """mA from 16, 16.0, "10.5", b"6" (A, at most 0.1 A resolution); None if not a number."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (bytes, bytearray)):
        try:
            v = v.decode()
        except Exception:
            return None
    if isinstance(v, str):
        t = v.strip()
        if not t or len(t) > 12:
            return None
        try:
            v = float(t) if ("." in t or "e" in t or "E" in t) else int(t)
        except ValueError:
            return None
    if isinstance(v, int):
        return v * 1000
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return None
        return int(round(v * 10)) * 100
    return None


class Commands:
    def __init__(self, rt):
        self.rt = rt

    def set_current(self, amps):
        """Backend/user current limit in A: 0 pauses, else 6..max_current_a."""
        rt = self.rt
        ma = parse_amps_ma(amps)
        top = rt.config.get("max_current_a")
        if ma is None:
            return False, "current must be a number of amps, e.g. 16 or 10.5"
        if ma != 0 and not (6000 <= ma <= top * 1000):
            return False, "current %s A out of range: 0 (pause) or 6..%d A" % (
                _fmt_a(ma), top)
        err = rt.evse.set_backend_limit_ma(ma)
        if err:
            return False, err
        rt.store.set_setpoints(current_ma=ma)
        rt.note_command()
        return True, ma / 1000

    def enable(self, on):
        b = parse_bool(on)
        if b is None:
            return False, "enable must be true or false (also 1/0, on/off)"
        rt = self.rt
        rt.evse.set_enabled(b)
        rt.store.set_setpoints(enabled=b)
        rt.note_command()
        return True, b

    def authorize(self):
        rt = self.rt
        if not rt.config.get("require_auth"):
            return True, "authorization not required on this wallbox"
        rt.evse.authorize()
        rt.store.event("authorized", "")
        return True, True

    def set_phases(self, n):
        if isinstance(n, (str, bytes)):
            t = n.decode() if isinstance(n, bytes) else n
            n = int(t.strip()) if t.strip() in ("1", "3") else t
        if type(n) is not int or n not in (1, 3):  # not 3.0, not True
            return False, "phases must be 1 or 3"
        rt = self.rt
        err = rt.evse.request_phases(n)
        if err:
            return False, err
        rt.store.set_setpoints(phases=n)
        rt.note_command()
        return True, n

    def reset_faults(self):
        rt = self.rt
        before = rt.evse.fault
        rt.evse.reset_faults()
        rt.store.event("fault_reset", ",".join(E.fault_names(before)), 0)
        return True, E.fault_names(before)

    def status(self):
        return True, self.rt.status()


def _fmt_a(ma):
    return "%d.%d" % (ma // 1000, abs(ma) % 1000 // 100) if ma >= 0 else "%.1f" % (ma / 1000)
