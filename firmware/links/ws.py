# Non-blocking asyncio WebSocket client (RFC 6455) for OCPP-J: ws:// and wss://, one
# subprotocol, masking, ping/pong, fragmented messages, close codes, a bound on message size,
# reconnect with jittered backoff behind a gate (may_connect), like mqtt_client.py.
# Every read is bounded by a timeout or by the ping watchdog. See docs/ocpp.md "Transport".
import asyncio
import binascii
from micropython import const
from time import ticks_ms, ticks_diff

from firmware.links.net import getrandbits, resolve, run_link, split_url, tls_context

_OP_CONT = const(0)
_OP_TEXT = const(1)
_OP_BIN = const(2)
_OP_CLOSE = const(8)
_OP_PING = const(9)
_OP_PONG = const(10)
# Close codes (RFC 6455 §7.4.1)
CLOSE_NORMAL = const(1000)
CLOSE_PROTOCOL = const(1002)
CLOSE_BAD_DATA = const(1007)
CLOSE_TOO_BIG = const(1009)
_HDR_MAX = const(2048)  # HTTP upgrade response bound
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3
_SCHEMES = (("ws", 80), ("wss", 443))


class WSError(Exception):
    pass


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2); None without sha1."""
    try:
        import hashlib
        return binascii.b2a_base64(hashlib.sha1(key + _GUID).digest()).strip()
    except (ImportError, AttributeError):
        return None


class WSClient:
    def __init__(self, url, subprotocol="ocpp1.6", auth=None, tls=None, max_msg=8192,
                 ping_s=60, pong_ms=10000, connect_timeout_ms=10000, io_ms=10000,
                 backoff_min_ms=2000, backoff_max_ms=120000, may_connect=None,
                 on_message=None, on_open=None, on_close=None):
        sc, self.host, self.port, self.path = split_url(url, _SCHEMES)
        self.tls = sc == "wss"
        self.subprotocol = subprotocol
        self._auth = auth  # (user, password) -> HTTP basic (OCPP security profile 1/2)
        self._ctx_in = tls  # CA as DER bytes (verified), an ssl context, or None/True
        self.max_msg = max_msg
        self.ping_ms = ping_s * 1000
        self._pong_ms = pong_ms
        self._conn_ms = connect_timeout_ms
        self._io_ms = io_ms
        self._bo_min = backoff_min_ms
        self._bo_max = backoff_max_ms
        self.may_connect = may_connect or (lambda: True)
        self.on_message = on_message
        self.on_open = on_open
        self.on_close = on_close
        self._ip = None  # resolved once: getaddrinfo blocks in C
        self._s = None
        self._lock = asyncio.Lock()  # one frame at a time on the wire
        self._dead = asyncio.Event()
        self._halt = asyncio.Event()
        self._stop = False
        self._last_rx = self._last_tx = self._ping_t = 0
        self._ping_out = False
        self.connected = False
        self.connects = self.attempts = self.errors = 0
        self.bytes_in = self.bytes_out = 0
        self.last_error = None
        self.close_code = None  # the last close code received or sent

    # ---- API ----

    async def send(self, text):
        """Send one text message; False if not connected or it failed (never raises)."""
        s = self._s
        if s is None or not self.connected:
            return False
        try:
            await self._frame(s, _OP_TEXT, text.encode() if isinstance(text, str) else text)
            return True
        except Exception as e:
            self._fail(e)
            return False

    async def close(self, code=CLOSE_NORMAL):
        """Close the connection (run() reconnects after its backoff)."""
        s = self._s
        if s is not None and self.connected:
            try:
                await self._frame(s, _OP_CLOSE, bytes((code >> 8, code & 0xFF)))
                self.close_code = code
            except Exception:
                pass
        self._dead.set()

    async def stop(self):
        """Close and make run() return."""
        self._stop = True
        self._halt.set()
        await self.close()

    async def run(self):
        await run_link(self, 30000)  # a session that lived 30 s resets the backoff

    # ---- internals ----

    def _addr(self):
        if self._ip is None:
            self._ip = resolve(self.host, self.port)  # once: getaddrinfo blocks in C
        return self._ip

    def _ctx(self):
        if not self.tls:
            return None
        self._ctx_in = tls_context(self._ctx_in)  # made once, kept
        return self._ctx_in

    def _request(self, key):
        hp = self.host if self.port == (443 if self.tls else 80) else "%s:%d" % (self.host, self.port)
        r = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Protocol: %s\r\n") % (self.path, hp, key.decode(), self.subprotocol)
        if self._auth:
            u, p = self._auth
            r += "Authorization: Basic %s\r\n" % binascii.b2a_base64(
                ("%s:%s" % (u, p)).encode()).strip().decode()
        return (r + "\r\n").encode()

    async def _handshake(self, s):
        raw = bytes(getrandbits(8) for _ in range(16))
        key = binascii.b2a_base64(raw).strip()
        req = self._request(key)
        s.write(req)
        await asyncio.wait_for_ms(s.drain(), self._conn_ms)  # TLS handshake runs here (C)
        self.bytes_out += len(req)
        n = 0
        status = None
        hdr = {}
        while True:
            ln = await asyncio.wait_for_ms(s.readline(), self._conn_ms)
            n += len(ln)
            if not ln or n > _HDR_MAX:
                raise WSError("bad upgrade response")
            ln = ln.strip()
            if not ln:
                break
            if status is None:
                status = ln
                continue
            i = ln.find(b":")
            if i > 0:
                hdr[ln[:i].strip().lower()] = ln[i + 1:].strip()
        self.bytes_in += n
        parts = status.split() if status else ()
        if len(parts) < 2 or parts[1] != b"101":
            raise WSError("upgrade refused: %s" % (status or b"").decode())
        want = accept_key(key)
        if want is not None and hdr.get(b"sec-websocket-accept") != want:
            raise WSError("bad Sec-WebSocket-Accept")
        if hdr.get(b"sec-websocket-protocol", b"").decode() != self.subprotocol:
            raise WSError("server did not accept subprotocol %s" % self.subprotocol)

    async def _session(self):
        ctx = self._ctx()
        host = self._addr()
        s = None
        rt = pt = None
        self._dead.clear()
        self.close_code = None
        try:
            if ctx:
                s, _ = await asyncio.wait_for_ms(asyncio.open_connection(
                    host, self.port, ssl=ctx, server_hostname=self.host), self._conn_ms)
            else:
                s, _ = await asyncio.wait_for_ms(asyncio.open_connection(host, self.port),
                                                 self._conn_ms)
            await self._handshake(s)
            self._s = s
            self._last_rx = self._last_tx = ticks_ms()
            self._ping_out = False
            self.connected = True
            self.connects += 1
            rt = asyncio.create_task(self._reader(s))
            pt = asyncio.create_task(self._pinger(s))
            if self.on_open:
                try:
                    self.on_open()
                except Exception as e:
                    self.last_error = repr(e)
            await self._dead.wait()
            return True
        finally:
            was = self.connected
            self.connected = False
            self._s = None
            for t in (rt, pt):
                if t:
                    t.cancel()
            if s:
                try:
                    await s.wait_closed()
                except Exception:
                    pass
            if was and self.on_close:
                try:
                    self.on_close()
                except Exception:
                    pass

    def _fail(self, e):
        self.errors += 1
        self.last_error = repr(e)
        self._dead.set()

    async def _frame(self, s, op, payload):
        # Client frames are always masked (RFC 6455 §5.3); one FIN frame per message.
        n = len(payload)
        if n < 126:
            h = bytearray((0x80 | op, 0x80 | n))
        elif n < 65536:
            h = bytearray((0x80 | op, 0x80 | 126, n >> 8, n & 0xFF))
        else:
            h = bytearray((0x80 | op, 0x80 | 127, 0, 0, 0, 0,
                           (n >> 24) & 0xFF, (n >> 16) & 0xFF, (n >> 8) & 0xFF, n & 0xFF))
        m = getrandbits(32)
        mask = bytes((m >> 24, (m >> 16) & 0xFF, (m >> 8) & 0xFF, m & 0xFF))
        body = bytearray(payload)
        for i in range(n):
            body[i] ^= mask[i & 3]
        async with self._lock:
            s.write(h + mask)
            s.write(body)
            await asyncio.wait_for_ms(s.drain(), self._io_ms)
        self.bytes_out += len(h) + 4 + n
        self._last_tx = ticks_ms()

    async def _read(self, s, n):
        b = await asyncio.wait_for_ms(s.readexactly(n), self._io_ms)
        self.bytes_in += n
        return b

    async def _protocol_close(self, s, code, why):
        self.close_code = code
        try:
            await self._frame(s, _OP_CLOSE, bytes((code >> 8, code & 0xFF)))
            await self._linger(s)
        except Exception:
            pass
        raise WSError(why)

    async def _linger(self, s):
        # Read (and drop) what the server still sends until it closes, for at most ~1 s:
        # closing a socket with unread data sends a TCP RST, which can destroy our close frame.
        t0 = ticks_ms()
        while ticks_diff(ticks_ms(), t0) < 1000:
            b = await asyncio.wait_for_ms(s.read(512), 1000)
            if not b:
                return

    async def _reader(self, s):
        parts = []  # fragments of the message being received
        size = 0
        op_msg = 0
        try:
            while True:
                h = await s.readexactly(2)  # idle wait: bounded by the ping watchdog
                self.bytes_in += 2
                fin, op, masked, n = h[0] & 0x80, h[0] & 0x0F, h[1] & 0x80, h[1] & 0x7F
                if h[0] & 0x70 or masked:  # no extension negotiated; servers never mask
                    await self._protocol_close(s, CLOSE_PROTOCOL, "bad frame header")
                if n == 126:
                    b = await self._read(s, 2)
                    n = b[0] << 8 | b[1]
                elif n == 127:
                    b = await self._read(s, 8)
                    n = 0
                    for x in b:
                        n = n << 8 | x
                if op >= 8:  # control frame: <= 125 bytes, never fragmented (§5.5)
                    if n > 125 or not fin:
                        await self._protocol_close(s, CLOSE_PROTOCOL, "bad control frame")
                    body = await self._read(s, n) if n else b""
                    self._last_rx = ticks_ms()
                    if op == _OP_PING:
                        await self._frame(s, _OP_PONG, body)
                    elif op == _OP_PONG:
                        self._ping_out = False
                    elif op == _OP_CLOSE:
                        code = body[0] << 8 | body[1] if n >= 2 else CLOSE_NORMAL
                        self.close_code = code
                        try:
                            await self._frame(s, _OP_CLOSE, body[:2])
                        except Exception:
                            pass
                        raise WSError("closed by server (%d)" % code)
                    else:
                        await self._protocol_close(s, CLOSE_PROTOCOL, "opcode %d" % op)
                    continue
                if op == _OP_CONT:
                    if not parts:
                        await self._protocol_close(s, CLOSE_PROTOCOL, "stray continuation")
                elif op in (_OP_TEXT, _OP_BIN):
                    if parts:
                        await self._protocol_close(s, CLOSE_PROTOCOL, "interleaved message")
                    op_msg = op
                else:
                    await self._protocol_close(s, CLOSE_PROTOCOL, "opcode %d" % op)
                size += n
                if size > self.max_msg:  # bounded: never allocate what a peer announces
                    await self._protocol_close(s, CLOSE_TOO_BIG, "message of %d+ bytes" % size)
                parts.append(await self._read(s, n) if n else b"")
                self._last_rx = ticks_ms()
                if not fin:
                    continue
                msg = parts[0] if len(parts) == 1 else b"".join(parts)
                parts = []
                size = 0
                if op_msg != _OP_TEXT:  # OCPP-J is text only
                    await self._protocol_close(s, 1003, "binary message")
                try:
                    text = msg.decode()
                except UnicodeError:
                    await self._protocol_close(s, CLOSE_BAD_DATA, "not UTF-8")
                if self.on_message:
                    try:
                        await self.on_message(text)
                    except Exception as e:
                        self.last_error = repr(e)  # an app bug must not drop the link
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._fail(e)

    async def _pinger(self, s):
        # Ping when nothing was received for ping_s; no pong within pong_ms: the link is dead.
        try:
            while self.ping_ms:
                now = ticks_ms()
                if self._ping_out:
                    left = self._pong_ms - ticks_diff(now, self._ping_t)
                    if left <= 0:
                        raise WSError("pong timeout")
                else:
                    left = self.ping_ms - ticks_diff(now, self._last_rx)
                    if left <= 0:
                        self._ping_t = now
                        self._ping_out = True
                        await self._frame(s, _OP_PING, b"wb")
                        left = self._pong_ms
                await asyncio.sleep_ms(min(left, 1000))
            await self._dead.wait()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._fail(e)
