# The web page's HTTP front (docs/web.md): accepts connections, reads each request with
# hard limits, and hands it to microdot (firmware/vendor/microdot.py) for routing and the
# response. microdot's own reader is not used: it has no timeout, no bound on the number of
# header lines, and reads a line of any length into RAM before it checks the length, so a
# slow or hostile client could hold a connection or the heap. Here:
#   - at most MAX_CONN connections are served at once; one more gets "503 busy" and is
#     closed at once (no parsing, a few hundred bytes of heap while it lasts);
#   - request line + headers at most MAX_HEAD bytes (431), body at most the route's limit
#     (413), no chunked bodies (501), read in bounded chunks, never a line at a time;
#   - the whole request must arrive within HEAD_MS (408), every write must drain within
#     WRITE_MS: a slowloris costs one slot for a few seconds, never the loop;
#   - one response per connection (HTTP/1.0 style close): nothing is kept between requests.
import asyncio
from micropython import const

from firmware.vendor import microdot as md

MAX_CONN = const(3)
MAX_HEAD = const(2048)
MAX_BODY = const(2048)
MAX_HEADERS = const(24)
HEAD_MS = const(5000)
WRITE_MS = const(5000)
READ_MS = const(10000)  # a streamed upload: each chunk within this
_CHUNK = const(256)
_OUT = const(512)  # responses are written in one go up to this size (no Nagle stalls)
METHODS = ("GET", "HEAD", "POST")

_REASONS = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 413: "Payload Too Large", 429: "Too Many Requests",
            431: "Request Header Fields Too Large", 501: "Not Implemented", 503: "Service Unavailable",
            505: "HTTP Version Not Supported"}


class BodyReader:
    """A streamed request body (firmware upload): `async read(n)` gives at most n bytes,
    b"" after Content-Length; each read must arrive within READ_MS, so a stalled upload
    frees its slot. The bytes that came with the head are handed out first."""

    def __init__(self, reader, first, size):
        self.r = reader
        self.first = first
        self.left = size

    async def read(self, n=512):
        if self.left <= 0:
            return b""
        if self.first:
            b = self.first[:n]
            self.first = self.first[n:]
        else:
            try:
                b = await asyncio.wait_for_ms(self.r.read(min(n, self.left)), READ_MS)
            except asyncio.TimeoutError:
                raise HttpError(408, "upload stalled")
            if not b:
                raise HttpError(400, "connection closed mid-upload")
        self.left -= len(b)
        return b


class HttpError(Exception):
    def __init__(self, status, why):
        super().__init__(why)
        self.status = status
        self.why = why


class Writer:
    """The stream microdot writes to: small writes are gathered (microdot writes each header
    line on its own) and every drain is bounded by WRITE_MS."""

    def __init__(self, s):
        self.s = s
        self.buf = bytearray()
        self.sent = 0
        self.got = False  # any request byte arrived (with TLS: the handshake is done)

    async def awrite(self, data):
        self.buf.extend(data)
        if len(self.buf) >= _OUT:
            await self.flush()

    async def flush(self):
        if self.buf:
            b = self.buf
            self.buf = bytearray()
            self.s.write(b)
            self.sent += len(b)
            await asyncio.wait_for_ms(self.s.drain(), WRITE_MS)

    async def aclose(self):
        try:
            await self.flush()
        finally:
            await _close(self.s)

    def get_extra_info(self, what):
        return self.s.get_extra_info(what)


async def _close(s):
    try:
        s.close()
        await asyncio.wait_for_ms(s.wait_closed(), 500)
    except Exception:
        pass


def _parse_head(head):
    """(method, url, version, headers) from the bytes before the blank line, or HttpError."""
    try:
        text = head.decode()
    except Exception:
        raise HttpError(400, "request is not UTF-8")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[1].startswith("/"):
        raise HttpError(400, "malformed request line")
    method, url, version = parts
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise HttpError(505, "HTTP/1.0 or HTTP/1.1 only")
    if method not in METHODS:
        raise HttpError(501, "method not supported")
    for c in url:
        if c <= " " or c == "\x7f":
            raise HttpError(400, "control character in URL")
    if len(lines) - 1 > MAX_HEADERS:
        raise HttpError(431, "too many header lines")
    headers = md.NoCaseDict()
    for ln in lines[1:]:
        i = ln.find(":")
        if i <= 0 or ln[0] in " \t":
            raise HttpError(400, "malformed header line")
        name = ln[:i]
        if " " in name or "\t" in name:
            raise HttpError(400, "malformed header name")
        if name in headers:  # a repeated header (e.g. two Content-Length) is an attack or a bug
            raise HttpError(400, "repeated header " + name)
        headers[name] = ln[i + 1:].strip()
    if "Transfer-Encoding" in headers:
        raise HttpError(501, "chunked bodies are not supported")
    cl = headers.get("Content-Length", "0")
    if not cl.isdigit() or len(cl) > 7:
        raise HttpError(400, "bad Content-Length")
    if method != "POST" and cl != "0":
        raise HttpError(400, "body only with POST")
    return method, url, version, headers


def status_bytes(status, why):
    body = why.encode()
    return b"HTTP/1.0 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
        status, _REASONS.get(status, "Error").encode(), len(body), body)


class Server:
    """Serves `app` (a microdot.Microdot) on `port`. `body_limit(method, path)` gives the
    largest body a route accepts (default MAX_BODY); a negative limit -N means the route
    streams a body of up to N bytes (req.stream, a BodyReader; the head alone must arrive
    within HEAD_MS, each chunk after it within READ_MS). Counters for status() and bench."""

    def __init__(self, app, port, host="0.0.0.0", body_limit=None, tls=None):
        self.app = app
        self.tls = tls  # an ssl.SSLContext (server side) for https, or None
        self.port = port
        self.host = host
        self.body_limit = body_limit
        self.active = 0
        self.served = 0
        self.busy = 0  # refused: all slots taken
        self.refused = 0  # refused: bad, too large, too slow
        self.last_refusal = ""
        self.server = None

    def status(self):
        return {"port": self.port, "https": self.tls is not None, "active": self.active,
                "served": self.served,
                "busy": self.busy, "refused": self.refused}

    async def run(self):
        # TLS is not handed to start_server: _conn wraps each socket itself, so that the
        # handshake runs on the first read inside the HEAD_MS budget and the TCP socket is
        # closed whatever the handshake did (a plain-HTTP client on the TLS port otherwise
        # left its socket open).
        self.server = await asyncio.start_server(self._conn, self.host, self.port, backlog=4)
        try:
            while True:
                await asyncio.sleep_ms(1000)
        finally:
            self.server.close()

    async def _conn(self, reader, writer):
        if self.active >= MAX_CONN:
            self.busy += 1
            try:
                writer.write(status_bytes(503, "busy: try again in a moment"))
                await asyncio.wait_for_ms(writer.drain(), 500)
            except Exception:
                pass
            await _close(writer)
            return
        self.active += 1
        raw = None
        if self.tls is not None:
            raw = writer.s
            try:
                t = self.tls.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
                reader = writer = asyncio.StreamReader(t, {"peername": writer.get_extra_info("peername")})
            except Exception:
                raw.close()
                self.active -= 1
                self.refused += 1
                return
        w = Writer(writer)
        try:
            try:
                req = await asyncio.wait_for_ms(self._read(reader, w), HEAD_MS)
            except asyncio.TimeoutError:
                raise HttpError(408, "request too slow")
            res = await self.app.dispatch_request(req)
            self.served += 1
            if res is not md.Response.already_handled:
                await res.write(w)
        except HttpError as ex:
            self.refused += 1
            self.last_refusal = "%d %s" % (ex.status, ex.why)
            if w.got:  # a client that sent nothing (or never finished TLS) gets no answer
                try:
                    w.buf = bytearray()
                    await w.awrite(status_bytes(ex.status, ex.why))
                except Exception:
                    pass
        except Exception as ex:  # a client gone mid-write, a timeout while writing: just close
            self.last_refusal = repr(ex)[:60]
        finally:
            try:
                await w.aclose()
            except Exception:
                pass
            if raw is not None:
                raw.close()  # the TCP socket itself, whatever state TLS is in
            self.active -= 1

    async def _read(self, reader, w):
        buf = bytearray()
        end = -1
        while end < 0:
            chunk = await reader.read(_CHUNK)
            if not chunk:
                raise HttpError(400, "connection closed mid-request")
            w.got = True
            start = len(buf) - 3 if len(buf) > 3 else 0
            buf.extend(chunk)
            end = buf.find(b"\r\n\r\n", start)
            if end < 0 and len(buf) > MAX_HEAD:
                raise HttpError(431, "request head over %d bytes" % MAX_HEAD)
        if end > MAX_HEAD:
            raise HttpError(431, "request head over %d bytes" % MAX_HEAD)
        method, url, version, headers = _parse_head(bytes(buf[:end]))
        n = int(headers.get("Content-Length", "0"))
        path = url.split("?", 1)[0]
        limit = self.body_limit(method, path) if self.body_limit is not None else MAX_BODY
        stream = None
        if limit < 0:  # a streamed body: the route reads it (from its own task, bounded)
            if n > -limit:
                raise HttpError(413, "body over %d bytes" % -limit)
            stream = BodyReader(reader, bytes(buf[end + 4:end + 4 + n]), n)
            n = 0
            buf = buf[:end + 4]
        elif n > limit:
            raise HttpError(413, "body over %d bytes" % limit)
        body = buf[end + 4:]
        if len(body) > n:
            raise HttpError(400, "more data than Content-Length")
        while len(body) < n:
            chunk = await reader.read(min(_CHUNK, n - len(body)))
            if not chunk:
                raise HttpError(400, "connection closed mid-body")
            body.extend(chunk)
        try:
            req = md.Request(self.app, w.get_extra_info("peername"), method, url, version[5:],
                             headers, body=bytes(body), stream=stream, sock=(reader, w))
        except Exception:
            raise HttpError(400, "malformed request")
        if stream is not None:
            req.max_content_length = -limit  # microdot's own check; the limit is ours (above)
        return req
