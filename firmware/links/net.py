# Small network helpers the links share: an address test, a DNS look-up done once (it blocks
# in C: callers resolve only when the reconnect gate allows), the reconnect backoff with jitter.
import socket

try:
    from random import getrandbits
except ImportError:  # a port without random: fixed bits, no jitter
    def getrandbits(n):
        return 0x5A5A5A5A & ((1 << n) - 1)


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
