# Fake `network` for the unix port: a WLAN whose connect() succeeds after
# `connect_after` status polls (None: never). Records calls in `calls`.
STA_IF = 0
AP_IF = 1
STAT_IDLE = 0
STAT_CONNECTING = 1
STAT_GOT_IP = 3
STAT_WRONG_PASSWORD = -3
STAT_NO_AP_FOUND = -2
STAT_CONNECT_FAIL = -1

wlans = []


class WLAN:
    connect_after = 2  # polls of isconnected() until it reports True

    def __init__(self, iface=STA_IF):
        self.iface = iface
        self._active = False
        self._polls = None
        self.calls = []
        wlans.append(self)

    def active(self, a=None):
        if a is None:
            return self._active
        self._active = bool(a)
        self.calls.append(("active", self._active))

    def connect(self, ssid=None, key=None, **kw):
        self.calls.append(("connect", ssid))
        self._polls = 0

    def disconnect(self):
        self.calls.append(("disconnect",))
        self._polls = None

    def isconnected(self):
        if self._polls is None or self.connect_after is None:
            return False
        self._polls += 1
        return self._polls > self.connect_after

    def status(self, *a):
        return STAT_GOT_IP if self.isconnected() else STAT_CONNECTING

    def ifconfig(self, *a):
        return ("10.0.0.2", "255.255.255.0", "10.0.0.1", "10.0.0.1")

    def config(self, *a, **kw):
        self.calls.append(("config", kw))
