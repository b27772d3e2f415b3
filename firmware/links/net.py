# Small network helpers the links share: a URL splitter, an address test, a DNS look-up done
# once (it blocks in C: callers resolve only when the reconnect gate allows), the reconnect
# loop with its jittered backoff (ws.py and mqtt_client.py).
import asyncio
import socket
from micropython import const
from time import ticks_ms, ticks_diff

try:
    from random import getrandbits
except ImportError:  # a port without random: fixed bits, no jitter
    def getrandbits(n):
        return 0x5A5A5A5A & ((1 << n) - 1)

_GATE_POLL_MS = const(100)


def split_url(url, schemes):
    """(scheme, host, port, path) of scheme://host[:port][/path]; `schemes` is a tuple of
    (scheme, default port). An IPv6 host is written [addr] and returned without brackets.
    ValueError with the reason for anything else (also for user:password@ in the URL)."""
    if type(url) is not str:
        raise ValueError("url must be a string")
    for sc, port in schemes:
        if url.startswith(sc + "://"):
            rest = url[len(sc) + 3:]
            break
    else:
        raise ValueError("url must start with " + " or ".join(sc + "://" for sc, _ in schemes))
    i = rest.find("/")
    hp, path = (rest, "/") if i < 0 else (rest[:i], rest[i:])
    if "@" in hp:  # no link here sends user:password from a URL
        raise ValueError("credentials in the url are not supported")
    p = None
    if hp.startswith("["):  # [IPv6]:port
        j = hp.find("]")
        if j < 0:
            raise ValueError("url has an IPv6 host without its closing ]")
        host, tail = hp[1:j], hp[j + 1:]
        if tail:
            if not tail.startswith(":"):
                raise ValueError("url has text after its IPv6 host")
            p = tail[1:]
    elif ":" in hp:
        host, p = hp.rsplit(":", 1)
    else:
        host = hp
    if p is not None:
        if not p.isdigit():
            raise ValueError("url port must be a number 1..65535")
        port = int(p)
    if not host or not 0 < port < 65536:
        raise ValueError("url needs a host and a port 1..65535")
    return sc, host, port, path


def is_ip(h):
    """True for an IPv4 dotted quad or an IPv6 literal (no look-up needed)."""
    if ":" in h:
        return True
    p = h.split(".")
    return len(p) == 4 and all(x.isdigit() for x in p)


def resolve(host, port):
    """The address to connect to (getaddrinfo for a name: blocks in C)."""
    if is_ip(host):
        return host
    a = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]
    if isinstance(a, tuple):
        return a[0]
    f, ip, _ = socket.sockaddr(a)  # unix port: raw sockaddr
    return socket.inet_ntop(f, ip)


def backoff_ms(fails, lo_ms, hi_ms):
    """Exponential reconnect delay after `fails` failures, 50..100 % of it (jitter)."""
    d = min(hi_ms, lo_ms << min(fails, 16))
    return d - ((d * getrandbits(8)) >> 9)


def tls_context(t):
    """The SSL context for a link's TLS setting: a CA certificate (DER bytes) -> the server
    is verified against it; None or True -> encrypted, not verified; a context -> itself."""
    if t is None or t is True or isinstance(t, (bytes, bytearray)):
        import ssl
        c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if isinstance(t, (bytes, bytearray)):
            c.verify_mode = ssl.CERT_REQUIRED
            c.load_verify_locations(cadata=t)
        else:
            c.verify_mode = ssl.CERT_NONE
        t = c
    return t


def gate_open(may_connect):
    """The link's reconnect gate; a gate that raises is closed (no blocking handshake)."""
    try:
        return bool(may_connect())
    except Exception:
        return False


async def run_link(c, lived_ms):
    """The reconnect loop of a link client `c` (ws.WSClient, mqtt_client.MQTTClient): wait
    for its gate, run one c._session(), then back off with jitter before the next; a
    session that lived lived_ms resets the backoff. Returns when c._stop is set."""
    fails = 0
    c._stop = False
    c._halt.clear()
    while not c._stop:
        while not gate_open(c.may_connect):
            await asyncio.sleep_ms(_GATE_POLL_MS)
            if c._stop:
                return
        t0 = ticks_ms()
        up = False
        try:
            c.attempts += 1
            up = await c._session()
        except Exception as e:
            c.errors += 1
            c.last_error = repr(e)
        if c._stop:
            return
        if up and ticks_diff(ticks_ms(), t0) >= lived_ms:
            fails = 0
        d = backoff_ms(fails, c._bo_min, c._bo_max)
        fails += 1
        try:
            await asyncio.wait_for_ms(c._halt.wait(), d)
        except asyncio.TimeoutError:
            pass
