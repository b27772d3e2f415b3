# Validated configuration: one schema row per key; every change is checked
# against it, and a bad value or file never reaches the rest of the firmware.
from micropython import const

# kinds
_INT = const(0)  # lo..hi
_INT0 = const(1)  # 0 or lo..hi
_BOOL = const(2)
_STR = const(3)  # length lo..hi, printable ASCII
_STR0 = const(4)  # "" or length lo..hi
_ID = const(5)  # length lo..hi of [a-zA-Z0-9_-]
_TOPIC = const(6)  # like _STR, no MQTT wildcards, no leading/trailing '/'
_ONEOF = const(7)  # lo is the tuple of allowed values
_LIST = const(8)  # list of len(default) ints, each lo..hi

_SECRET = const(1)

# One row per key, "key|kind|lo|hi|default|flags" (kind: the digit of a const above; _ONEOF:
# lo is the allowed values, comma-separated; _LIST: default is the comma-separated ints;
# _BOOL default 0/1; flags 1 = secret). Adding a key is one line here, and its help text one
# line in firmware/services/config_help.py (same order; loaded by describe() only).
# One str constant, parsed a row at a time when a key is looked up: in a ROMFS image its
# text stays in flash, where 52 tuples of tuples cost ~7 KB of a 96 KB heap (tools/bench_runtime.py
# heap96k.breakdown). _row() gives the tuple (key, kind, lo, hi, default, flags).
SCHEMA = """
id|5|1|24|wb1|0
board|3|0|24||0
max_current_a|0|6|80|16|0
cable_fixed_a|1|6|80|0|0
require_auth|2|0|0|0|0
ventilation|2|0|0|0|0
phases|7|1,3|0|3|0
phase_switch|2|0|0|0|0
lock|2|0|0|0|0
fallback_current_a|1|6|80|6|0
fallback_timeout_s|0|0|86400|0|0
min_off_s|0|0|600|60|0
fault_retry_s|0|5|600|60|0
ev_off_s|0|0|60|5|0
max_phase_switches|0|0|20|5|0
control_period_ms|0|1|50|10|0
meter|7|none,internal,sdm120,sdm630|0|internal|0
meter_addr|0|1|247|1|0
mains_v|0|100|260|230|0
ct_cal_pm|8|500|2000|1000,1000,1000|0
cp_gain_pm|0|800|1200|1000|0
cp_offset_mv|0|-2000|2000|0|0
wifi_ssid|3|0|32||0
wifi_password|4|8|63||1
mqtt_host|3|0|253||0
mqtt_port|0|1|65535|1883|0
mqtt_user|3|0|64||0
mqtt_password|3|0|128||1
mqtt_tls|2|0|0|0|0
mqtt_ca|3|0|64||0
mqtt_client_id|5|0|23||0
mqtt_base|6|0|64||0
ha_discovery|2|0|0|1|0
ha_prefix|6|1|64|homeassistant|0
telemetry_s|0|1|3600|10|0
ocpp_url|3|0|200||0
ocpp_id|5|0|48||0
ocpp_password|4|16|40||1
ocpp_ca|3|0|64||0
ocpp_timeout_s|0|2|120|30|0
ota|2|0|0|1|0
ota_healthy_s|0|1|3600|60|0
web_port|0|0|65535|0|0
web_public_status|2|0|0|0|0
web_session_h|0|1|168|12|0
web_password|4|1|100||1
control_thread|2|0|0|1|0
web_cert|3|0|64||0
web_key|3|0|64||0
"""

# Rows of optional features, in the same format, live in their own modules (SCHEMA and HELP,
# one help line per row), imported only once a key of theirs is looked up, set or listed:
# the rows of a feature that is not configured cost no heap (the 96 KB boards). A key is in
# Config._v once set, loaded or read (get() keeps its default then); Config.peek() reads a
# key without importing an extension.
EXT_SCHEMAS = ("firmware.services.config_lm",)  # load management (docs/load-management.md)

_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"
_TRUE = ("true", "1", "on", "yes")
_FALSE = ("false", "0", "off", "no")
_REC = "config"
_REC_VER = const(1)


def _tname(v):
    return "bool" if type(v) is bool else type(v).__name__


def _as_int(key, v):
    """(int, None) or (None, error): bools and fractional floats are not ints."""
    if type(v) is int:
        return v, None
    if type(v) is float:
        try:
            i = int(v)
        except (OverflowError, ValueError):
            return None, "%s: %r is not a whole number" % (key, v)
        if i == v:
            return i, None
        return None, "%s: %r is not a whole number" % (key, v)
    return None, "%s: expected int, got %s" % (key, _tname(v))


def _negative(v):
    """True for a negative number, -0.0 included (a list: any element)."""
    if type(v) in (list, tuple):
        return any(_negative(x) for x in v)
    if type(v) is int:
        return v < 0
    return type(v) is float and (v < 0 or ("%r" % v)[0] == "-")


def _int_text(t):
    """int from text that is exactly [-]digits (no '+', '_', '0x', spaces inside), else None."""
    d = t[1:] if t[:1] == "-" else t
    if not d or len(d) > 18:
        return None
    for c in d:
        if not "0" <= c <= "9":
            return None
    return int(t)


def _ext(mod):
    """An extension schema module, imported on first use (a key of it looked up, set or
    listed) and kept from then on: a feature whose keys nobody touches costs nothing."""
    return __import__(mod, None, None, ("SCHEMA",))


def _parse_row(line):
    """(key, kind, lo, hi, default, flags) from a SCHEMA line."""
    k, kind, lo, hi, d, fl = line.split("|")
    kind = int(kind)
    if kind == _ONEOF:
        lo = tuple(int(x) if x.isdigit() else x for x in lo.split(","))
        if type(lo[0]) is int:
            d = int(d)
    else:
        lo = int(lo)
        if kind == _INT or kind == _INT0:
            d = int(d)
        elif kind == _BOOL:
            d = d == "1"
        elif kind == _LIST:
            d = tuple(int(x) for x in d.split(","))
    return (k, kind, lo, int(hi), d, int(fl))


def _rows_of(text):
    return [_parse_row(ln) for ln in text.split("\n") if ln]


def _find(text, key):
    """The row of `key` in one schema text, or None."""
    if type(key) is not str or "|" in key or "\n" in key:
        return None  # (never part of a key: a look-up for it cannot match a row's text)
    i = text.find("\n" + key + "|")
    if i < 0:
        return None
    return _parse_row(text[i + 1:text.find("\n", i + 1)])


def rows():
    """Every row: SCHEMA, then the extensions' (allocates: for listings, not hot paths)."""
    out = _rows_of(SCHEMA)
    for mod in EXT_SCHEMAS:
        out.extend(_rows_of(_ext(mod).SCHEMA))
    return out


def _row(key):
    """The row of `key`, or None (a text search: no table nor index kept in RAM)."""
    r = _find(SCHEMA, key)
    if r is None:
        for mod in EXT_SCHEMAS:
            r = _find(_ext(mod).SCHEMA, key)
            if r is not None:
                break
    return r


def helps():
    """Help text per row of rows() (same order): firmware/services/config_help.py, then
    each extension's HELP."""
    from firmware.services.config_help import HELP
    out = HELP.split("\n")
    for mod in EXT_SCHEMAS:
        out.extend(_ext(mod).HELP.split("\n"))
    return out


def check(key, v):
    """(normalized value, None) or (None, error saying what is allowed)."""
    r = _row(key)
    if r is None:
        return None, "unknown key %r (see describe())" % (key,)
    kind, lo, hi = r[1], r[2], r[3]
    if kind == _BOOL:
        if type(v) is bool:
            return v, None
        return None, "%s: expected true or false, got %s" % (key, _tname(v))
    if kind in (_INT, _INT0, _LIST) and lo >= 0 and _negative(v):
        return None, "%s: negative values not allowed" % key
    if kind in (_INT, _INT0):
        v, err = _as_int(key, v)
        if err:
            return None, err
        if lo <= v <= hi or (kind == _INT0 and v == 0):
            return v, None
        alt = "0 or " if kind == _INT0 else ""
        return None, "%s: %d out of range, allowed %s%d..%d" % (key, v, alt, lo, hi)
    if kind == _ONEOF:
        if type(r[4]) is int:
            v2, err = _as_int(key, v)
            if err:
                return None, err
            v = v2
        elif type(v) is not str:
            return None, "%s: expected str, got %s" % (key, _tname(v))
        if v in lo:
            return v, None
        return None, "%s: %r not allowed, one of %s" % (key, v, "|".join(str(a) for a in lo))
    if kind == _LIST:
        n = len(r[4])
        if type(v) not in (list, tuple) or len(v) != n:
            return None, "%s: expected a list of %d ints" % (key, n)
        out = []
        for x in v:
            x2, err = _as_int(key, x)
            if err:
                return None, err
            if not lo <= x2 <= hi:
                return None, "%s: %d out of range, each allowed %d..%d" % (key, x2, lo, hi)
            out.append(x2)
        return tuple(out), None
    # strings
    if type(v) is not str:
        return None, "%s: expected str, got %s" % (key, _tname(v))
    n = len(v)
    if not (lo <= n <= hi or (kind == _STR0 and n == 0)):
        alt = "0 or " if kind == _STR0 else ""
        return None, "%s: length %d, allowed %s%d..%d" % (key, n, alt, lo, hi)
    for c in v:
        if kind == _ID:
            if c not in _ID_CHARS:
                return None, "%s: %r not allowed, only a-z A-Z 0-9 _ -" % (key, c)
        elif not " " <= c <= "~" or (kind == _TOPIC and c in "+#"):
            return None, "%s: character %r not allowed%s" % (
                key, c, " (no MQTT wildcards)" if kind == _TOPIC else "")
    if kind == _TOPIC and n and (v[0] == "/" or v[-1] == "/"):
        return None, "%s: no leading or trailing '/'" % key
    return v, None


def parse(key, text):
    """(value, None) or (None, error) from console/MQTT text for `key`."""
    r = _row(key)
    if r is None:
        return check(key, None)
    if type(text) is not str:
        return None, "%s: expected text" % key
    kind, t = r[1], text.strip()
    if kind == _BOOL:
        if t.lower() in _TRUE:
            return True, None
        if t.lower() in _FALSE:
            return False, None
        return None, "%s: %r is not a bool, use true|false|1|0|on|off" % (key, text)
    if kind in (_INT, _INT0, _LIST) or (kind == _ONEOF and type(r[4]) is int):
        parts = t.strip("[]()").split(",") if kind == _LIST else [t]
        vals = []
        for p in parts:
            p = p.strip()
            i = _int_text(p)
            if i is None:
                return None, "%s: %r is not an integer" % (key, p)
            if p[:1] == "-" and type(r[2]) is int and r[2] >= 0:
                return None, "%s: negative values not allowed" % key
            vals.append(i)
        return check(key, vals if kind == _LIST else vals[0])
    return check(key, text)  # strings keep their spaces


class Config:
    """Current configuration; persisted through a Store (or RAM only)."""

    def __init__(self, store=None):
        self.store = store
        self.version = 0  # bumped on every change: cheap for the runtime to poll
        self._v = {}
        self._defaults()
        if store is not None:
            self._load()

    def _defaults(self):
        self._v = {}  # keys appear here once loaded, set or read (get() below)

    def _load(self):
        saved = self.store.get(_REC, _REC_VER)
        bad = [p[1] for p in self.store.problems if p[0] == _REC]
        if saved is None:
            if bad:
                self.store.event("config_corrupt", "defaults: " + bad[-1], 0)
            return
        if type(saved) is not dict:
            self.store.event("config_corrupt", "defaults: not a dict", 0)
            return
        # a whole file with a key out of today's schema: keep the rest
        wrong = []
        for k in saved:
            v, err = check(k, saved[k])
            if err:
                wrong.append(k)
            else:
                self._v[k] = v
        if wrong:
            self.store.event("config_corrupt", "defaults for: " + ",".join(sorted(wrong)), 0)
            self._save()

    def _save(self):
        if self.store is not None:
            d = {}
            for k in self._v:  # (keys never read nor set stay out: at their defaults)
                v = self._v[k]
                d[k] = list(v) if type(v) is tuple else v
            self.store.put(_REC, d, 0, _REC_VER)

    def _log(self, keys):
        self.version += 1
        self._save()
        if self.store is not None:
            self.store.event("config", ",".join(keys))

    def get(self, key):
        v = self._v
        if key not in v:  # a key not read yet: its default (then kept: in use)
            r = _row(key)
            if r is None:
                raise KeyError(key)
            v[key] = r[4]
        return v[key]

    def peek(self, key, default=None):
        """The value if set, loaded or read, else the default of a SCHEMA key, else
        `default`, without looking up an extension schema (firmware/startup.py FEATURES: an
        unset feature key is off)."""
        v = self._v
        if key in v:
            return v[key]
        r = _find(SCHEMA, key)
        return default if r is None else r[4]

    def set(self, key, value):
        """None, or an error string (and nothing changed)."""
        v, err = check(key, value)
        if err:
            return err
        if self.get(key) != v:
            self._v[key] = v
            self._log((key,))
        return None

    def set_text(self, key, text):
        """Console/MQTT form: parse text for key, then set."""
        v, err = parse(key, text)
        return err or self.set(key, v)

    def update(self, values):
        """Set several keys, all or nothing: None or the first error."""
        if type(values) is not dict:
            return "expected a dict of key: value"
        new = {}
        for k in values:
            v, err = check(k, values[k])
            if err:
                return err
            new[k] = v
        changed = [k for k in new if self.get(k) != new[k]]
        for k in changed:
            self._v[k] = new[k]
        if changed:
            self._log(sorted(changed))
        return None

    def reset(self):
        """Back to defaults (persisted, logged)."""
        self._defaults()
        self._log(("reset",))

    def as_dict(self, redact=True):
        """Copy of all keys; secrets that are set show as '***'."""
        d = {}
        for r in rows():
            v = self._v.get(r[0], r[4])  # (no caching here: a listing is not a use)
            if type(v) is tuple:
                v = list(v)
            if redact and r[5] & _SECRET and v:
                v = "***"
            d[r[0]] = v
        return d

    def describe(self):
        """Help table for the console: key, allowed, default, help."""
        lines = []
        hlp = helps()
        rs = rows()
        for i in range(len(rs)):
            r = rs[i]
            kind, lo, hi = r[1], r[2], r[3]
            if kind == _BOOL:
                allowed = "bool"
            elif kind == _INT:
                allowed = "int %d..%d" % (lo, hi)
            elif kind == _INT0:
                allowed = "int 0|%d..%d" % (lo, hi)
            elif kind == _ONEOF:
                allowed = "|".join(str(a) for a in lo)
            elif kind == _LIST:
                allowed = "%d ints %d..%d" % (len(r[4]), lo, hi)
            else:
                allowed = "str %s%d..%d" % ("0|" if kind == _STR0 else "", lo, hi)
            dflt = list(r[4]) if type(r[4]) is tuple else r[4]
            lines.append("%-20s %-22s %-16s %s%s" % (
                r[0], allowed, repr(dflt), hlp[i], " (secret)" if r[5] & _SECRET else ""))
        return "\n".join(lines)

    def client_id(self):
        return self.get("mqtt_client_id") or "wallbox-" + self.get("id")

    def base_topic(self):
        return self.get("mqtt_base") or "wallbox/" + self.get("id")
