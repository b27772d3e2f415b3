# The technician's functions behind the console (firmware/technician/console.py): each prints a
# report that fits an 80-column serial terminal and returns None, or raises
# ConsoleError with a message saying what is wrong and what is allowed (the console
# prints it without a traceback). State changes go through firmware/links/commands.py or
# Config; anything unsafe while an EV is connected is refused with the reason.
# data(what) prints the same facts as one JSON line for host tools (tools/wbctl.py).
import json
import time

from firmware.core import evse as E
from firmware.links.commands import Commands
from firmware.services.config import rows, helps
from firmware.services.runtime import VERSION

# Keys that change how CP is read, how the contactor switches or how the loop runs:
# only while no EV is connected.
_IDLE_ONLY = ("cp_gain_pm", "cp_offset_mv", "phases", "phase_switch", "ventilation", "lock",
              "control_period_ms", "board", "cable_fixed_a")
_STATE_TEXT = {
    "A": "no EV", "B1": "EV connected, not offered", "B2": "EV connected, offered",
    "C1": "EV asks, not offered", "C2": "charging", "D1": "EV asks (vent)",
    "D2": "charging (vent)", "E": "CP error (short/no pilot)", "F": "fault",
}


class ConsoleError(Exception):
    pass


def _a(ma):
    return "%d.%d" % (ma // 1000, ma % 1000 // 100) if ma >= 0 else "-%d.%d" % (
        -ma // 1000, -ma % 1000 // 100)


def hms(s):
    return "%d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60)


def _cut(s, n):
    s = str(s)
    return s if len(s) <= n else s[:n - 1] + "~"


class Service:
    def __init__(self, rt, safe_mode=False):
        self.rt = rt
        self.cmds = Commands(rt)
        self.safe_mode = safe_mode
        self._confirm = None  # factory reset code, valid 60 s

    # --- guards -----------------------------------------------------------------
    def busy(self):
        """None when no EV is connected and the contactor is open, else why not."""
        rt = self.rt
        o = rt.evse.outputs
        if o.contactor or rt.hw.contactor.feedback() == 1:
            return "the contactor is closed (charging)"
        if not self.safe_mode and o.state not in ("A", "E", "F"):
            return "an EV is connected (state %s)" % o.state
        if rt.store.session_open():
            return "a session is open: unplug the EV first"
        return None

    def refuse_busy(self, what):
        why = self.busy()
        if why:
            raise ConsoleError("%s refused: %s. Unplug the EV and retry." % (what, why))

    # --- reports ----------------------------------------------------------------
    def status(self):
        rt = self.rt
        s = rt.status()
        hw = rt.hw
        o = rt.evse.outputs
        st = s["state"]
        mode = "  SAFE MODE (application stopped)" if self.safe_mode else ""
        print("wallbox %s  fw %s  board %s  up %s%s" % (
            rt.config.get("id"), VERSION, getattr(rt, "board_name", "?"), hms(s["uptime_s"]), mode))
        print("state     %-3s %s" % (st, _STATE_TEXT.get(st, "")))
        print("power     contactor %s  charging %s  enabled %s  phases %d" % (
            "CLOSED" if o.contactor else "open", "yes" if o.charging else "no",
            "yes" if s["enabled"] else "no", s["phases"]))
        print("current   allowed %s A  limit %s A  max %d A  duty %d.%d %%" % (
            _a(o.allowed_ma), _a(rt.evse.backend_ma), rt.config.get("max_current_a"),
            s["duty_pm"] // 10, s["duty_pm"] % 10))
        print("measured  L1 %s  L2 %s  L3 %s A   %s/%s/%s V   %d W" % (
            _a(rt.i_ma[0]), _a(rt.i_ma[1]), _a(rt.i_ma[2]), rt.v_mv[0] // 1000,
            rt.v_mv[1] // 1000, rt.v_mv[2] // 1000, s["power_w"]))
        sess = rt.store.session_open()
        print("energy    %d Wh lifetime   session %s" % (
            s["energy_wh"], "%s %d Wh" % (sess["sid"], sess["wh"]) if sess else "none"))
        t = s["temp_c"]
        fb = hw.contactor.feedback()
        print("sensors   temp %s   RCD %s   meter %s   contactor fb %s" % (
            "%.1f C" % t if t is not None else "n/a", s["rcd"], s["meter_error"] or "ok",
            ("n/a", "open", "closed")[fb + 1]))
        wifi = hw.wifi
        net = "wifi %s" % (("up" if wifi.connected() else "down") if wifi is not None else "off")
        if getattr(hw, "no_network", False):
            net = "no network (this MicroPython image has no network module)"
        print("network   %s   mqtt %s" % (net, _cut(s["link"], 50)))
        print("faults    %s" % (", ".join(s["faults"]) or "none"))
        for f in rt.features.values():  # optional features with a console line (load mgmt)
            line = getattr(f, "line", None)
            if line is not None:
                print(line())
        print("loop      %d ms period  %s  %d ticks  max gap %d ms  free %d B" % (
            rt.period_ms, "thread" if rt.threaded else "single", s["ticks"], s["max_gap_ms"],
            s["mem_free"]))

    def faults(self):
        e = self.rt.evse
        names = E.fault_names(e.outputs.fault)
        print("active faults: %s" % (", ".join(names) or "none"))
        if names:
            print("  reset_faults() clears them once the cause is gone (latched: welded,"
                  " lock, lockout)")
        evs = [x for x in self.rt.store.events() if x["type"] in (
            "fault", "fault_clear", "fault_reset", "task_error", "control_dead",
            "meter_error", "config_corrupt")]
        print("recent fault events:")
        self._events(evs[-10:])

    def log(self, n=20):
        if type(n) is not int or n < 1:
            raise ConsoleError("log(n): n is how many events, e.g. log(20)")
        self._events(self.rt.store.events(n))

    def _events(self, evs):
        if not evs:
            print("  (none)")
        for x in evs:
            print("%5d %9s  %-14s %s" % (x["seq"], hms(x["up"]), _cut(x["type"], 14),
                                         _cut(x["detail"], 48)))

    def sessions(self, n=10):
        if type(n) is not int or n < 1:
            raise ConsoleError("sessions(n): n is how many sessions, e.g. sessions(10)")
        rows = self.rt.store.sessions(n)
        pend = [r["sid"] for r in self.rt.store.outbox_pending()]
        print("%-20s %9s %9s %8s %6s  %-16s" % ("session", "start up", "duration", "Wh",
                                               "max A", "reason"))
        for r in rows:
            print("%-20s %9s %9s %8d %6s  %-16s%s" % (
                _cut(r["sid"], 20), hms(r["start_up_s"]), hms(r["dur_s"]), r["wh"],
                _a(r["max_ma"]), _cut(r["reason"], 16), " *" if r["sid"] in pend else ""))
        o = self.rt.store.session_open()
        if o:
            print("%-20s %9s %9s %8d  (open)" % (_cut(o["sid"], 20), hms(o["start_up_s"]), "-",
                                                 o["wh"]))
        print("%d shown; * = not yet sent to the backend" % len(rows))

    def config(self, key=None):
        c = self.rt.config
        d = c.as_dict()
        if key is not None:
            if key not in d:
                raise ConsoleError("unknown key %r: config() lists them" % (key,))
            print("%s = %r" % (key, d[key]))
            return
        # describe() gives "key allowed default help" per SCHEMA row; keep the allowed part
        lines = c.describe().split("\n")
        hlps = helps()
        rs = rows()
        for i in range(len(rs)):
            r = rs[i]
            k, hlp = r[0], hlps[i]
            dflt = repr(list(r[4]) if type(r[4]) is tuple else r[4])
            mid = lines[i][20:lines[i].rindex(hlp)].strip()
            allowed = mid[:-len(dflt)].strip() if mid.endswith(dflt) else mid
            print("%-20s %-14s %-16s %s" % (k, _cut(repr(d[k]), 14), _cut(allowed, 16),
                                            _cut(hlp, 26)))

    def set(self, key, value):
        c = self.rt.config
        if type(key) is not str:
            raise ConsoleError("set(key, value): key is a name in quotes, e.g."
                               " set('max_current_a', 20)")
        old = c.as_dict().get(key, self)
        if old is self:
            raise ConsoleError("unknown key %r: config() lists the keys" % (key,))
        if key in _IDLE_ONLY:
            self.refuse_busy("changing %s" % key)
        # text ("20", "on", "1,1,1") is parsed for the key's type: what wbctl sends
        err = c.set_text(key, value) if type(value) is str else c.set(key, value)
        if err:
            raise ConsoleError(err + "  (nothing changed)")
        new = c.as_dict()[key]
        print("%s = %r (was %r)%s" % (key, new, old,
                                      "; takes effect within 1 s" if old != new else ""))

    def reset_faults(self):
        ok, val = self.cmds.reset_faults()
        print("cleared: %s" % (", ".join(val) or "nothing was active"))

    def factory_reset(self, confirm=None):
        self.refuse_busy("factory reset")
        now = time.ticks_ms()
        up = self.rt.store.uptime_s()  # (not ticks: an unused code would look new after 6.2 days)
        c = self._confirm
        if confirm is None or c is None or confirm != c[0] or up - c[1] > 60:
            code = "%04d" % (now % 10000)
            self._confirm = (code, up)
            print("factory_reset sets every config key to its default (WiFi, MQTT, limits).")
            print("Session records, the event log and the energy counter are kept.")
            print("To confirm within 60 s:  factory_reset('%s')" % code)
            return
        self._confirm = None
        self.rt.config.reset()
        self.rt.store.event("factory_reset", "console", 0)
        self.rt.store.flush()
        print("config reset to defaults and saved; reboot to apply network settings")

    # --- host tools ----------------------------------------------------------------
    def data(self, what, n=0):
        rt = self.rt
        if what == "status":
            d = rt.status()
            d["safe_mode"] = self.safe_mode
        elif what == "config":
            d = rt.config.as_dict()
        elif what == "log":
            d = rt.store.events(n)
        elif what == "sessions":
            pend = [r["sid"] for r in rt.store.outbox_pending()]
            d = rt.store.sessions(n)
            for r in d:
                r["sent"] = r["sid"] not in pend
        elif what == "faults":
            d = E.fault_names(rt.evse.outputs.fault)
        elif what in rt.features:  # an optional feature's status (e.g. "ota")
            d = rt.features[what].status()
        else:
            raise ConsoleError("data(what): one of status, config, log, sessions, faults")
        print(json.dumps(d))
