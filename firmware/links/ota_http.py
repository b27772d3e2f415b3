# HTTP/HTTPS download of an update bundle as a stream (docs/ota.md "Transports"): one
# HTTP/1.0 GET on asyncio streams (no chunked encoding, no redirects), then the body is
# read in small pieces by the installer. Imported only when a URL update starts. The
# update's signature authenticates the bundle; TLS, when used, only hides it on the way.
import asyncio
from micropython import const

from firmware.links import net

_HEAD_MAX = const(2048)  # status line + headers
_TIMEOUT_MS = const(15000)  # per read: a server that stops sending ends the update


class HttpError(Exception):
    pass


def split_url(url):
    """(tls, host, port, path) of an http:// or https:// URL; ValueError if not one."""
    sc, host, port, path = net.split_url(url, (("http", 80), ("https", 443)))
    if ":" in host:  # only [addr] gets here: net.split_url took the :port off
        raise ValueError("IPv6 literals are not supported")
    return sc == "https", host, port, path


class Body:
    """The response body: async read(n) -> bytes (b"" at the end), size (or None), close()."""

    def __init__(self, reader, writer, size, first):
        self.r = reader
        self.w = writer
        self.size = size
        self._first = first
        self._left = size

    async def read(self, n):
        if self._first:
            b = self._first[:n]
            self._first = self._first[n:]
        else:
            if self._left is not None and self._left <= 0:
                return b""
            b = await asyncio.wait_for_ms(self.r.read(n), _TIMEOUT_MS)
        if self._left is not None:
            b = b[:self._left]
            self._left -= len(b)
        return b

    def close(self):
        try:
            self.w.close()
        except Exception:  # noqa
            pass


async def open_url(url, rt=None):
    tls, host, port, path = split_url(url)
    if tls:  # not verified: the bundle's signature is what is trusted
        conn = asyncio.open_connection(host, port, ssl=net.tls_context(True),
                                       server_hostname=host)
    else:
        conn = asyncio.open_connection(host, port)
    r, w = await asyncio.wait_for_ms(conn, _TIMEOUT_MS)
    try:
        w.write(("GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: open-wallbox\r\n\r\n" % (
            path, host)).encode())
        await w.drain()
        head = b""
        while b"\r\n\r\n" not in head:
            b = await asyncio.wait_for_ms(r.read(512), _TIMEOUT_MS)
            if not b:
                raise HttpError("connection closed before the response headers")
            head += b
            if len(head) > _HEAD_MAX + 512:
                raise HttpError("response headers too long")
        i = head.find(b"\r\n\r\n")
        first = head[i + 4:]
        lines = head[:i].decode().split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise HttpError("not an HTTP response")
        if parts[1] != "200":
            raise HttpError("HTTP %s %s" % (parts[1], parts[2] if len(parts) > 2 else ""))
        size = None
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            if k.strip().lower() == "content-length":
                size = int(v.strip())
            elif k.strip().lower() == "transfer-encoding" and "chunked" in v.lower():
                raise HttpError("chunked transfer encoding not supported")
        return Body(r, w, size, first)
    except Exception:
        w.close()
        raise
