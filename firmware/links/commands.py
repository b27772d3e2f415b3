# The one command API: the console, the MQTT link and the sim harness all go through
# it, so every entry point validates the same way. Each call returns (True, value) or
# (False, "what is wrong and what is allowed") and changes nothing on error.
from micropython import const

from firmware.core import evse as E

_TRUE = ("true", "1", "on", "yes")
_FALSE = ("false", "0", "off", "no")


def parse_bool(v):
    """True/False from a bool or the words HA, evcc and people use; None if neither."""
    if v is True or v is False:
        return v
    if isinstance(v, (bytes, bytearray)):
        v = utf8(v)
    if isinstance(v, str):
        t = v.strip().lower()
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
    return None


def parse_nonneg(v, what="value"):
    """(number, None) or (None, error) for anything a wallbox is set to (current, power,
    time): an int (not a bool), a finite float, or text/bytes that are exactly one RFC 8259
    number ("16", "10.5", "1e1"; not "+5", "0x10", "1_0", "nan", " 1 2"). Negative numbers,
    -0 included, are rejected: `-0.01` must not round to 0 and pause."""
    if isinstance(v, (bytes, bytearray, str)):
        t = (v.encode() if isinstance(v, str) else bytes(v)).strip()
        n = _number(t)
        if n is None:
            return None, "%s must be a number, e.g. 16 or 10.5" % what
        if t[:1] == b"-":
            return None, "%s must not be negative" % what
        return n, None
    if type(v) is int:
        return (None, "%s must not be negative" % what) if v < 0 else (v, None)
    if type(v) is float:
        if v != v or v in (float("inf"), float("-inf")):
            return None, "%s must be a finite number" % what
        if v < 0 or ("%r" % v)[0] == "-":  # -0.0 too
            return None, "%s must not be negative" % what
        return v, None
    return None, "%s must be a number, e.g. 16 or 10.5" % what


def _milli(n):
    """n (int/float, >= 0) * 1000 as an int, saturated far above any real setting."""
    if n > 1000000:
        return 1000000000
    return n * 1000 if type(n) is int else int(round(n * 1000))


def parse_amps_ma(v):
    """mA from 16, 16.0, "10.5", b"6" (A, rounded to 0.1 A); None if not a number >= 0."""
    n, err = parse_nonneg(v)
    if err:
        return None
    return (_milli(n) + 50) // 100 * 100


class Commands:
    def __init__(self, rt):
        self.rt = rt

    def set_current(self, amps):
        """Backend/user current limit in A: 0 pauses, else 6..max_current_a."""
        rt = self.rt
        n, err = parse_nonneg(amps, "current")
        top = rt.config.get("max_current_a")
        if err:
            return False, err + ": 0 (pause) or 6..%d A" % top
        raw = _milli(n)
        # only an exact 0 pauses: 0.04 A is out of range, not a pause
        if raw != 0 and not (6000 <= raw <= top * 1000):
            return False, "current %s A out of range: 0 (pause) or 6..%d A" % (
                _fmt_a(raw), top)
        ma = (raw + 50) // 100 * 100  # 0.1 A resolution
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

    def authorize(self, id_tag=None):
        """Authorize the next charge; with an idTag (RFID, console) and OCPP configured, the
        tag goes to OCPP (Authorize, local list/cache) and starts or stops its transaction."""
        rt = self.rt
        if id_tag is not None:
            ocpp = rt.features.get("ocpp")
            if ocpp is None:
                return False, "an idTag needs OCPP (ocpp_url); authorize() without one"
            return ocpp.present_tag(id_tag)
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
    if ma >= 1000000000:
        return "> 1000000"
    f = ma % 1000
    if not f:
        return "%d" % (ma // 1000)
    return ("%d.%03d" % (ma // 1000, f)).rstrip("0")


# ---- strict input: the one parser for every entry point ----------------------------
# MicroPython's json and bytes.decode are lax (measured on the unix port: trailing commas,
# duplicate keys, `[1 2]`, `01`, lone surrogates, overlong UTF-8 all pass), so the text is
# checked here: UTF-8 by RFC 3629 §3-4, JSON by RFC 8259 (no NaN/Infinity, no duplicate keys).

_JSON_DEPTH = const(8)
_WS = b" \t\n\r"


class InputError(ValueError):
    pass


def utf8(b):
    """str from bytes that are valid UTF-8 (RFC 3629: no overlong forms, no surrogates,
    nothing above U+10FFFF), else None. A str is checked the same way (its UTF-8 bytes)."""
    if isinstance(b, str):
        b = b.encode()
    n = len(b)
    if not n or max(b) < 0x80:  # ASCII: the common case, checked in C
        return bytes(b).decode()
    i = 0
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k, lo, hi = 1, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            k = 2
            lo = 0xA0 if c == 0xE0 else 0x80  # E0 80..9F: overlong
            hi = 0x9F if c == 0xED else 0xBF  # ED A0..BF: surrogates
        elif 0xF0 <= c <= 0xF4:
            k = 3
            lo = 0x90 if c == 0xF0 else 0x80
            hi = 0x8F if c == 0xF4 else 0xBF  # F4 90..: above U+10FFFF
        else:  # C0, C1 (overlong), F5..FF, a lone continuation byte
            return None
        if i + k >= n:
            return None  # truncated sequence
        if not lo <= b[i + 1] <= hi:
            return None
        for j in range(i + 2, i + k + 1):
            if not 0x80 <= b[j] <= 0xBF:
                return None
        i += k + 1
    try:
        return bytes(b).decode()
    except Exception:
        return None


def _num_end(b, i):
    """End index of an RFC 8259 number at b[i] (a '-' included), or -1."""
    n = len(b)
    j = i
    if j < n and b[j] == 0x2D:  # '-'
        j += 1
    if j >= n or not 0x30 <= b[j] <= 0x39:
        return -1
    if b[j] == 0x30:
        j += 1  # no leading zeros: "01" is not a number
    else:
        while j < n and 0x30 <= b[j] <= 0x39:
            j += 1
    if j < n and b[j] == 0x2E:  # '.'
        j += 1
        k = j
        while j < n and 0x30 <= b[j] <= 0x39:
            j += 1
        if j == k:
            return -1
    if j < n and b[j] in b"eE":
        j += 1
        if j < n and b[j] in b"+-":
            j += 1
        k = j
        while j < n and 0x30 <= b[j] <= 0x39:
            j += 1
        if j == k:
            return -1
    return j


def _number(t):
    """int or finite float from bytes/str that are exactly one RFC 8259 number, else None."""
    if isinstance(t, str):
        t = t.encode()
    if not t or len(t) > 16 or _num_end(t, 0) != len(t):
        return None
    s = bytes(t).decode()
    if b"." in t or b"e" in t or b"E" in t:
        v = float(s)
        if v in (float("inf"), float("-inf")):
            return None  # 1e400
        return v
    return int(s)


number = _number  # the public name (negative numbers too: the mains feed's export)


class _Json:
    # Recursive descent over validated UTF-8 bytes (MicroPython str indexing is O(n)).
    def __init__(self, b):
        self.b = b
        self.i = 0

    def err(self, what):
        raise InputError("invalid JSON at byte %d: %s" % (self.i, what))

    def ws(self):
        b = self.b
        while self.i < len(b) and b[self.i] in _WS:
            self.i += 1

    def value(self, depth):
        self.ws()
        b = self.b
        if self.i >= len(b):
            self.err("value expected")
        c = b[self.i]
        if c == 0x7B or c == 0x5B:  # { or [
            return self.items(depth + 1, c + 2)  # closed by } or ]
        if c == 0x22:  # "
            return self.string()
        for word, v in ((b"true", True), (b"false", False), (b"null", None)):
            if b[self.i:self.i + len(word)] == word:
                self.i += len(word)
                return v
        j = _num_end(b, self.i)
        if j < 0:
            self.err("value expected (NaN, Infinity, 01, .5 are not JSON)")
        v = _number(b[self.i:j])
        if v is None:
            self.err("number out of range")
        self.i = j
        return v

    def items(self, depth, close):
        # An object (close '}') or an array (close ']'): the one loop of both, items
        # separated by ',', no trailing comma.
        if depth > _JSON_DEPTH:
            self.err("nested too deep")
        b = self.b
        self.i += 1
        out = {} if close == 0x7D else []
        self.ws()
        if self.i < len(b) and b[self.i] == close:
            self.i += 1
            return out
        while True:
            if close == 0x7D:
                self.member(out, depth)
            else:
                out.append(self.value(depth))
            self.ws()
            c = b[self.i] if self.i < len(b) else 0
            self.i += 1
            if c == close:
                return out
            if c != 0x2C:
                self.i -= 1
                self.err("',' or '%s' expected" % chr(close))
            self.ws()
            if self.i < len(b) and b[self.i] == close:
                self.err("trailing comma")

    def member(self, d, depth):
        # "key": value into d (one key once); items() skipped the white space before it
        b = self.b
        if self.i >= len(b) or b[self.i] != 0x22:
            self.err("key string expected")
        k = self.string()
        if k in d:
            self.err("duplicate key %r" % k)
        self.ws()
        if self.i >= len(b) or b[self.i] != 0x3A:
            self.err("':' expected")
        self.i += 1
        d[k] = self.value(depth)

    def string(self):
        b = self.b
        self.i += 1
        out = []
        while True:
            # the plain run up to the next quote or backslash, checked in C (find, min)
            q = b.find(b'"', self.i)
            if q < 0:
                self.err("unterminated string")
            e = b.find(b"\\", self.i, q)
            k = q if e < 0 else e
            if k > self.i:
                seg = b[self.i:k]
                if min(seg) < 0x20:
                    self.err("control character in string")
                out.append(bytes(seg).decode())
            self.i = k + 1
            if e < 0:
                return "".join(out)
            c = b[self.i] if self.i < len(b) else 0
            self.i += 1
            j = b'"\\/bfnrt'.find(bytes((c,)))
            if j >= 0:
                out.append('"\\/\b\f\n\r\t'[j])
            elif c == 0x75:  # \uXXXX, a surrogate only as a pair
                u = self.hex4()
                if 0xDC00 <= u <= 0xDFFF:
                    self.err("lone surrogate")
                if 0xD800 <= u <= 0xDBFF:
                    if b[self.i:self.i + 2] != b"\\u":
                        self.err("lone surrogate")
                    self.i += 2
                    lo = self.hex4()
                    if not 0xDC00 <= lo <= 0xDFFF:
                        self.err("lone surrogate")
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00)
                if u == 0:
                    self.err("\\u0000 not allowed")
                out.append(chr(u))
            else:
                self.i -= 1
                self.err("bad escape")

    def hex4(self):
        h = self.b[self.i:self.i + 4]
        if len(h) != 4 or any(c not in b"0123456789abcdefABCDEF" for c in h):
            self.err("\\u needs 4 hex digits")
        self.i += 4
        return int(bytes(h).decode(), 16)


def json_strict(data):
    """(value, None) or (None, error) from bytes/str that are exactly one JSON text
    (RFC 8259) in valid UTF-8: no trailing commas, NaN, Infinity, duplicate keys,
    leading zeros, lone surrogates, control characters in strings, depth <= 8."""
    if isinstance(data, str):
        data = data.encode()
    elif not isinstance(data, bytes):
        data = bytes(data)  # bytearray/memoryview: find() below needs bytes
    if utf8(data) is None:
        return None, "not valid UTF-8 text"
    p = _Json(data)
    try:
        v = p.value(0)
        p.ws()
        if p.i != len(data):
            p.err("extra data after the value")
        return v, None
    except InputError as e:
        return None, str(e)
    except (ValueError, IndexError, MemoryError, RuntimeError) as e:  # RuntimeError: recursion
        return None, "invalid JSON: %s" % type(e).__name__


def json_head(data, n):
    """The first n values of a JSON array, read strictly, whatever follows them (so that a
    message that is not valid JSON as a whole can still be answered by its id); None if
    they cannot be read."""
    p = _Json(data.encode() if isinstance(data, str) else bytes(data))
    b = p.b
    out = []
    try:
        p.ws()
        for k in range(n):
            if p.i >= len(b) or b[p.i] != (0x2C if k else 0x5B):  # '[' first, then ','
                return None
            p.i += 1
            out.append(p.value(1))
            p.ws()
        return out
    except (InputError, ValueError, IndexError, MemoryError, RuntimeError):
        return None


def text_ok(s, max_len=64):
    """None if s is a str of at most max_len chars with no control characters, else why."""
    if type(s) is not str:
        return "must be text"
    if len(s) > max_len:
        return "text longer than %d chars" % max_len
    for c in s:
        if c < " " or c == "\x7f":
            return "control character %r not allowed" % c
    return None


def parse_payload(payload, max_len=64):
    """(req, value, None) or (req, None, error): the one reading of a command payload for
    MQTT, the web page and OCPP. The payload (bytes/str) must be valid UTF-8 of at most
    max_len bytes; either plain text (the value is that text, stripped, no control
    characters) or a strict JSON object {"value": <any JSON>, "req": "<id <= 32 chars>"}
    (both optional, no other keys). Values are then checked by the command that takes them."""
    if isinstance(payload, str):
        payload = payload.encode()
    if len(payload) > max_len:
        return None, None, "payload too long (max %d bytes)" % max_len
    text = utf8(payload)
    if text is None:
        return None, None, "payload must be valid UTF-8 text"
    text = text.strip()
    if not text.startswith("{"):
        err = text_ok(text, max_len)
        return None, (None if err else text), (("payload: " + err) if err else None)
    obj, err = json_strict(text)
    if err:
        return None, None, "payload: " + err
    if type(obj) is not dict:
        return None, None, "payload: not a JSON object"
    req = obj.get("req")
    if req is not None and (text_ok(req, 32) is not None):
        return None, None, "req must be a string of at most 32 chars"
    for k in obj:
        if k != "req" and k != "value":
            return req, None, "payload: unknown key %r (allowed: value, req)" % k
    return req, obj.get("value"), None
