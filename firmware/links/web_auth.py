# Who may use the web page (docs/web.md "Security"). No default password: until the owner
# sets one, the console prints a one-time setup code and the first visit must give it with
# the new password. The password is kept as a salted, iterated SHA-256 in the secret config
# key web_password ("s1$rounds$salt$hash"), so factory_reset or set('web_password', '') at
# the console clears it; sessions live in RAM (a reboot logs everyone out), each with its own
# CSRF token that every POST must carry. Failed logins and setup codes are rate limited
# for the whole box (an attacker can slow the owner down for a minute, never guess).
import asyncio
from micropython import const

try:
    import hashlib
except ImportError:  # some ports name it uhashlib
    import uhashlib as hashlib
try:
    from os import urandom
except ImportError:
    urandom = None

KEY = "web_password"
ITERATIONS = const(2000)  # hash rounds: yields to the loop every _SLICE rounds
_SLICE = const(100)
MAX_SESSIONS = const(4)  # a fifth login ends the oldest session
FAIL_MAX = const(5)  # failed logins / setup codes allowed ...
FAIL_WINDOW_S = const(60)  # ... per this window, for the whole box
PW_MIN = const(8)
PW_MAX = const(64)


def random_hex(nbytes):
    if urandom is not None:
        b = urandom(nbytes)
    else:  # pragma: no cover - every port we ship on has os.urandom
        import random
        b = bytes(random.getrandbits(8) for _ in range(nbytes))
    return "".join("%02x" % x for x in b)


def _eq(a, b):
    """Compare without stopping at the first difference."""
    if type(a) is not str or type(b) is not str or len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= ord(a[i]) ^ ord(b[i])
    return d == 0


async def hash_password(pw, salt, rounds=ITERATIONS):
    h = hashlib.sha256((salt + ":" + pw).encode()).digest()
    sb = salt.encode()
    for i in range(rounds):
        h = hashlib.sha256(h + sb).digest()
        if i % _SLICE == _SLICE - 1:
            await asyncio.sleep_ms(0)  # a login never holds the loop for long
    return "".join("%02x" % x for x in h)


def check_password_text(pw):
    """None or what is wrong with a new password."""
    if type(pw) is not str or not PW_MIN <= len(pw) <= PW_MAX:
        return "password: %d..%d characters" % (PW_MIN, PW_MAX)
    for c in pw:
        if not " " <= c <= "~":
            return "password: printable ASCII only"
    return None


def _stored(text):
    """(rounds, salt, hash) of a web_password value, or None (unset or not our format)."""
    p = text.split("$") if type(text) is str else ()
    if len(p) != 4 or p[0] != "s1" or not p[1].isdigit() or len(p[3]) != 64:
        return None
    return int(p[1]), p[2], p[3]


class Auth:
    def __init__(self, config, store, session_s, clock=None):
        self.config = config
        self.store = store
        self.session_s = session_s
        # Seconds of uptime, not ticks_ms: the ticks wrap every 2**30 ms (ticks_diff is
        # valid below 6.2 days, web_session_h goes to 168 h, and an unvisited session or
        # failure would come back as recent). store.uptime_s() is kept wrap-safe.
        self.clock = clock or store.uptime_s
        self.sessions = {}  # token -> [created_s, csrf]
        self.fails = []  # uptime_s of recent failures (at most FAIL_MAX)
        self.setup_code = None
        self.code_for()

    def has_password(self):
        return _stored(self.config.get(KEY)) is not None

    def code_for(self):
        """The setup code while no password is set (a new one, printed, when it was
        cleared at the console meanwhile); None once a password is set."""
        if self.has_password():
            self.setup_code = None
        elif self.setup_code is None:
            self.setup_code = "%08d" % (int(random_hex(4), 16) % 100000000)
            self.sessions = {}
            print("web: no password yet. Open the page on port %d and give setup code %s"
                  % (self.config.get("web_port"), self.setup_code))
        return self.setup_code

    # --- rate limit -------------------------------------------------------------
    def locked_s(self):
        """Seconds until another attempt is allowed (0 = now)."""
        now = self.clock()
        self.fails = [t for t in self.fails if now - t <= FAIL_WINDOW_S]  # whole seconds: >= 60 s
        if len(self.fails) < FAIL_MAX:
            return 0
        return FAIL_WINDOW_S - (now - self.fails[0]) + 1

    def _failed(self):
        self.fails.append(self.clock())
        if len(self.fails) > FAIL_MAX:
            self.fails.pop(0)

    # --- password ---------------------------------------------------------------
    async def setup(self, code, pw):
        """First password, with the console's setup code: (token, None) or (None, error)."""
        if self.code_for() is None:
            return None, "a password is already set: log in"
        wait = self.locked_s()
        if wait:
            return None, "too many wrong attempts: try again in %d s" % wait
        if not _eq(code, self.setup_code):
            self._failed()
            return None, "wrong setup code (printed on the console)"
        err = check_password_text(pw)
        if err:
            return None, err
        salt = random_hex(8)
        err = self.config.set(KEY, "s1$%d$%s$%s" % (ITERATIONS, salt, await hash_password(pw, salt)))
        if err:
            return None, err
        self.setup_code = None
        return self._new_session(), None

    async def login(self, pw):
        wait = self.locked_s()
        if wait:
            return None, "too many failed logins: try again in %d s" % wait
        rec = _stored(self.config.get(KEY))
        if rec is None:
            self.code_for()
            return None, "no password yet: set one with the setup code"
        ok = type(pw) is str and len(pw) <= PW_MAX and _eq(
            await hash_password(pw, rec[1], rec[0]), rec[2])
        if not ok:
            self._failed()
            self.store.event("web_login_failed", "")
            return None, "wrong password"
        return self._new_session(), None

    # --- sessions ----------------------------------------------------------------
    def _new_session(self):
        self._expire()
        if len(self.sessions) >= MAX_SESSIONS:
            oldest = None
            for t, s in self.sessions.items():
                if oldest is None or s[0] < self.sessions[oldest][0]:
                    oldest = t
            del self.sessions[oldest]
        tok = random_hex(16)
        self.sessions[tok] = [self.clock(), random_hex(16)]
        return tok

    def _expire(self):
        now = self.clock()
        for t in [t for t, s in self.sessions.items()
                  if now - s[0] >= self.session_s]:
            del self.sessions[t]

    def session(self, token):
        """The session [created_s, csrf] of a cookie value, or None (unknown or expired)."""
        if type(token) is not str or len(token) != 32 or not self.has_password():
            return None
        self._expire()
        for t, s in self.sessions.items():
            if _eq(t, token):
                return s
        return None

    def logout(self, token):
        s = self.session(token)
        if s is not None:
            for t in [t for t in self.sessions if _eq(t, token)]:
                del self.sessions[t]
