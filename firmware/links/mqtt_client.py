# Non-blocking asyncio MQTT 3.1.1 client (QoS 0/1, will, TLS, auth, keepalive).
# Every socket read/write is bounded by a timeout or by the session watchdog
# (ping timeout) that cancels the reader; run() keeps reconnecting forever.
# See docs/mqtt_client.md.
import asyncio
from micropython import const
from time import ticks_ms, ticks_diff

from firmware.links.net import resolve, run_link, tls_context

_CONNECT = const(0x10)
_CONNACK = const(2)
_PUBLISH = const(3)
_PUBACK = const(4)
_SUBSCRIBE = const(0x82)
_SUBACK = const(9)
_UNSUBACK = const(11)
_PINGRESP = const(13)
_CTL_MAX = const(32)  # queued PUBACK/SUBSCRIBE items before the reader waits
_MAX_RL = const(268435455)
# Send lanes (publish(lane=...)); the writer serves control packets, then the urgent lane,
# then replies and the normal queue in turn. docs/mqtt_client.md "Lanes".
LANE_NORMAL = const(0)  # state, telemetry, sessions: refused beyond queue_len (counted)
LANE_REPLY = const(1)  # command replies; the PUBACK of an incoming message follows them
LANE_URGENT = const(2)  # events: its own room, sent first
_URGENT_MAX = const(16)
_RQ_HOLD = const(16)  # reply lane this long: the reader holds the next incoming PUBLISH
_REPLY_MAX = const(48)  # reply lane length for a reply (only reached without _RQ_HOLD)
_RQ_MAX = const(64)  # ... and for an incoming PUBACK (beyond: sent at once, on the control lane)
_SKIP_CHUNK = const(256)  # an oversize packet is read past in pieces of this size


class ProtocolError(Exception):
    pass


def _enc_rl(buf, i, n):
    # MQTT remaining length (§2.2.3) into buf at i; returns the next index.
    while True:
        b = n & 0x7F
        n >>= 7
        buf[i] = b | 0x80 if n else b
        i += 1
        if not n:
            return i


def _b(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def _str16(s):
    s = _b(s)
    return bytes((len(s) >> 8, len(s) & 0xFF)) + s


class MQTTClient:
    def __init__(self, client_id, host, port=1883, user=None, password=None,
                 keepalive_s=30, clean_session=True, will=None, tls=None,
                 connect_timeout_ms=10000, response_ms=10000, ping_timeout_ms=None,
                 max_packet=4096, queue_len=16, max_inflight=8,
                 backoff_min_ms=1000, backoff_max_ms=60000, may_connect=None,
                 on_message=None, on_connect=None, on_puback=None, on_disconnect=None,
                 out_buf=512):
        self.client_id = client_id
        self._host = host
        self._port = port if port else (8883 if tls else 1883)
        self._user = user
        self._pw = password
        self._ka_ms = keepalive_s * 1000
        self._clean = clean_session
        self._will = will  # (topic, payload, qos, retain)
        self._tls = tls  # CA in DER (bytes) -> verified; ssl context; True -> unverified
        self._conn_ms = connect_timeout_ms
        self._resp_ms = response_ms
        ka2 = self._ka_ms // 2
        self._ping_to = ping_timeout_ms or (min(ka2, response_ms) if ka2 else response_ms)
        self._max_pkt = max_packet
        self._qlen = queue_len
        self._max_infl = max_inflight
        self._bo_min = backoff_min_ms
        self._bo_max = backoff_max_ms
        self.may_connect = may_connect or (lambda: True)
        self.on_message = on_message
        self.on_connect = on_connect
        self.on_puback = on_puback
        self.on_disconnect = on_disconnect
        self._ip = None  # resolved once: getaddrinfo blocks
        self._q = []  # outgoing: int pid (QoS 1) or (topic, payload, retain) (QoS 0)
        self._uq = []  # the urgent lane (same items)
        self._rq = []  # the reply lane (same items, and -pid: PUBACK of an incoming message)
        self._turn = 0  # replies and the normal queue take turns
        self._unacked = {}  # pid -> [topic, payload, retain, sent]
        self._sent = []  # pids sent and not acked, in send order
        self._ctl = []  # int pid -> PUBACK; str topic -> SUBSCRIBE
        self._subs = {}  # topic -> qos, re-sent on every connect
        self._pid = 0
        self._obuf = bytearray(max(out_buf, 64))  # header+topic must fit: topic <= out_buf-11
        self._wake = asyncio.Event()
        self._dead = asyncio.Event()
        self._halt = asyncio.Event()
        self._stop = False
        self._s = None
        self._last_tx = self._last_rx = self._ping_t = 0
        self._ping_out = False
        self.connected = False
        self.connects = self.attempts = self.bytes_in = self.bytes_out = 0
        self.dropped = self.errors = self.sub_failures = 0
        self.dropped_urgent = self.dropped_reply = 0  # of `dropped`: the lanes that must not drop
        self.discarded = 0  # incoming packets read past (oversize, bad UTF-8 topic)
        self.on_oversize = None  # f(topic, size, retained): an incoming publish read past
        self.last_error = None

    # ---- API (never blocks, never raises) ----

    def publish(self, topic, payload, qos=0, retain=False, lane=LANE_NORMAL):
        """Queue a message. Returns the packet id (QoS 1), True (QoS 0) or False."""
        try:
            t = _b(topic)
            p = _b(payload)
            if lane == LANE_URGENT:
                q, full = self._uq, len(self._uq) >= _URGENT_MAX
            elif lane == LANE_REPLY:
                q, full = self._rq, len(self._rq) >= _REPLY_MAX
            else:
                q, full = self._q, len(self._q) >= self._qlen
            if (full or not t or b"+" in t or b"#" in t or len(t) > len(self._obuf) - 11
                    or len(p) > _MAX_RL - 600 or qos not in (0, 1) or self._stop
                    or (qos == 0 and not self.connected)):  # stale telemetry is useless
                self._drop(lane)
                return False
            if qos == 0:
                q.append((t, p, retain))
                self._wake.set()
                return True
            pid = self._next_pid()
            self._unacked[pid] = [t, p, retain, False]
            q.append(pid)
            self._wake.set()
            return pid
        except Exception:
            self._drop(lane)
            return False

    def _drop(self, lane):
        self.dropped += 1
        if lane == LANE_URGENT:
            self.dropped_urgent += 1
        elif lane == LANE_REPLY:
            self.dropped_reply += 1

    def subscribe(self, topic, qos=0):
        """Remember a subscription (sent now if connected, and on every connect)."""
        if qos not in (0, 1) or not topic:
            return False
        self._subs[topic] = qos
        if self.connected:
            self._ctl.append(topic)
            self._wake.set()
        return True

    def pending(self):
        """QoS 1 messages not yet acknowledged (queued or in flight)."""
        return len(self._unacked)

    async def disconnect(self):
        """Flush the queue, send DISCONNECT (no will), close; run() returns."""
        self._stop = True
        self._halt.set()
        self._wake.set()
        if self.connected:
            try:
                await asyncio.wait_for_ms(self._dead.wait(), self._resp_ms)
            except Exception:
                pass
        self._dead.set()

    async def run(self):
        """Stay connected until disconnect(); raises only CancelledError."""
        # A session that lived a keepalive period resets the backoff
        await run_link(self, max(self._ka_ms, 5000))

    # ---- internals ----

    def _next_pid(self):
        while True:
            self._pid = self._pid % 0xFFFF + 1
            if self._pid not in self._unacked:
                return self._pid

    def _addr(self):
        if self._ip is None:
            self._ip = resolve(self._host, self._port)  # once: getaddrinfo blocks in C
        return self._ip

    def _ctx(self):
        if not self._tls:
            return None
        self._tls = tls_context(self._tls)  # made once, kept
        return self._tls

    def _connect_pkt(self):
        flags = 2 if self._clean else 0
        pl = _str16(self.client_id)
        w = self._will
        if w:
            flags |= 4 | (w[2] << 3) | (0x20 if w[3] else 0)
            pl += _str16(w[0]) + _str16(w[1])
        if self._user is not None:
            flags |= 0x80
            pl += _str16(self._user)
            if self._pw is not None:
                flags |= 0x40
                pl += _str16(self._pw)
        ka = self._ka_ms // 1000
        vh = b"\x00\x04MQTT\x04" + bytes((flags, ka >> 8, ka & 0xFF))
        hdr = bytearray(5)
        hdr[0] = _CONNECT
        n = _enc_rl(hdr, 1, len(vh) + len(pl))
        return bytes(hdr[:n]) + vh + pl

    async def _session(self):
        # Returns True if CONNACK accepted; raises on any failure.
        ctx = self._ctx()
        host = self._addr()
        s = None
        rt = wt = None
        self._dead.clear()
        try:
            if ctx:
                s, _ = await asyncio.wait_for_ms(
                    asyncio.open_connection(host, self._port, ssl=ctx,
                                            server_hostname=self._host), self._conn_ms)
            else:
                s, _ = await asyncio.wait_for_ms(
                    asyncio.open_connection(host, self._port), self._conn_ms)
            self._s = s
            pkt = self._connect_pkt()
            s.write(pkt)  # TLS: the handshake runs here and in drain (blocks in C)
            await asyncio.wait_for_ms(s.drain(), self._conn_ms)
            self.bytes_out += len(pkt)
            ack = await asyncio.wait_for_ms(s.readexactly(4), self._conn_ms)
            self.bytes_in += 4
            if ack[0] != _CONNACK << 4 or ack[1] != 2:
                raise ProtocolError("bad CONNACK")
            if ack[3]:
                raise OSError("refused %d" % ack[3])
            self._last_tx = self._last_rx = ticks_ms()
            self._ping_out = False
            self._ctl = list(self._subs)
            # unacked QoS 1 go first again (with DUP=1 when sent before); PUBACKs owed to the
            # last session are void (clean session: the broker forgot those messages)
            self._uq = [p for p in self._sent if p in self._unacked] + self._uq
            self._sent = []
            self._rq = [m for m in self._rq if type(m) is not int or m > 0]
            self.connects += 1
            self.connected = True
            rt = asyncio.create_task(self._reader(s))
            wt = asyncio.create_task(self._writer(s))
            if self.on_connect:
                try:
                    self.on_connect()
                except Exception as e:
                    self.last_error = repr(e)
            await self._dead.wait()
            return True
        finally:
            was = self.connected
            self.connected = False
            if rt:
                rt.cancel()
            if wt:
                wt.cancel()
            self._s = None
            if s:
                try:
                    await s.wait_closed()  # closes the socket (does not yield)
                except Exception:
                    pass
            if was and self.on_disconnect:
                try:
                    self.on_disconnect()
                except Exception:
                    pass

    def _fail(self, e):
        self.errors += 1
        self.last_error = repr(e)
        self._dead.set()

    async def _read(self, s, n):
        b = await asyncio.wait_for_ms(s.readexactly(n), self._resp_ms)
        self.bytes_in += n
        return b

    async def _reader(self, s):
        try:
            while True:
                h = (await s.readexactly(1))[0]  # idle wait: bounded by the ping watchdog
                self.bytes_in += 1
                n = 0
                for i in range(4):
                    b = (await self._read(s, 1))[0]
                    n |= (b & 0x7F) << (7 * i)
                    if not b & 0x80:
                        break
                else:
                    raise ProtocolError("remaining length")
                if n > self._max_pkt:
                    await self._skip(s, h, n)
                    continue
                body = await self._read(s, n) if n else b""
                self._last_rx = ticks_ms()
                await self._handle(h >> 4, h & 15, body)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._fail(e)

    async def _skip(self, s, h, n):
        # An incoming packet above max_packet is read past in small pieces, not kept, and the
        # link stays up (a retained one would otherwise close every session it is sent in).
        # A PUBLISH is still acknowledged (QoS 1) and reported to
        # on_oversize(topic, payload_bytes, retained).
        self.discarded += 1
        topic = None
        qos = (h >> 1) & 3
        if h >> 4 == _PUBLISH and qos < 2 and n >= 2:
            b = await self._read(s, 2)
            tl = b[0] << 8 | b[1]
            n -= 2
            if 0 < tl <= 256 and tl + 2 * qos <= n:
                try:
                    topic = bytes(await self._read(s, tl)).decode()
                except UnicodeError:
                    pass
                n -= tl
                if qos:
                    b = await self._read(s, 2)
                    n -= 2
                    pid = b[0] << 8 | b[1]
                    if pid:
                        while len(self._rq) >= _RQ_MAX and len(self._ctl) >= _CTL_MAX:
                            await asyncio.sleep_ms(10)
                        self._ack(pid)
        size = n  # the payload, for a PUBLISH
        while n > 0:
            k = n if n < _SKIP_CHUNK else _SKIP_CHUNK
            await self._read(s, k)
            n -= k
        self._last_rx = ticks_ms()
        if topic is not None and self.on_oversize:
            await self._room()
            try:
                self.on_oversize(topic, size, bool(h & 1))
            except Exception as e:
                self.last_error = repr(e)

    async def _room(self):
        # Back-pressure on incoming publishes: while the reply lane is long, the next one waits
        # (TCP then holds the broker back). No deadlock: that lane is QoS 0 replies and PUBACKs,
        # which the writer sends without waiting for anything this reader would read.
        while len(self._rq) >= _RQ_HOLD and self.connected:
            await asyncio.sleep_ms(5)

    def _ack(self, pid):
        # The PUBACK of an incoming QoS 1 message waits behind the replies its handler queued:
        # so the broker's in-flight window bounds the commands we have not answered yet.
        if len(self._rq) < _RQ_MAX:
            self._rq.append(-pid)
        else:
            self._ctl.append(pid)
        self._wake.set()

    async def _handle(self, t, flags, body):
        n = len(body)
        if t == _PUBLISH:
            qos = (flags >> 1) & 3
            if qos > 1 or n < 2:
                raise ProtocolError("publish")
            tl = body[0] << 8 | body[1]
            i = 2 + tl
            if tl == 0 or i + 2 * qos > n:
                raise ProtocolError("publish")
            topic = body[2:i].decode()  # UnicodeError on bad UTF-8 -> closes
            pid = 0
            if qos:
                pid = body[i] << 8 | body[i + 1]
                i += 2
                if not pid:
                    raise ProtocolError("pid 0")
            if self.on_message:
                await self._room()
                try:
                    self.on_message(topic, body[i:], bool(flags & 1))
                except Exception as e:
                    self.last_error = repr(e)  # an app bug must not drop the link
            if qos:
                while len(self._rq) >= _RQ_MAX and len(self._ctl) >= _CTL_MAX:
                    await asyncio.sleep_ms(10)  # back-pressure on a flood
                self._ack(pid)
            return
        if flags:
            raise ProtocolError("flags")
        if t == _PUBACK and n == 2:
            pid = body[0] << 8 | body[1]
            if self._unacked.pop(pid, None) is not None:
                if pid in self._sent:
                    self._sent.remove(pid)
                self._wake.set()  # room in flight
                if self.on_puback:
                    try:
                        self.on_puback(pid)
                    except Exception as e:
                        self.last_error = repr(e)
        elif t == _PINGRESP and n == 0:
            self._ping_out = False
        elif t == _SUBACK and n >= 3:
            for rc in body[2:]:
                if rc & 0x80:
                    self.sub_failures += 1
        elif t == _UNSUBACK and n == 2:
            pass
        else:  # CONNACK twice, QoS 2 flow, client-only types, bad lengths
            raise ProtocolError("type %d" % t)

    async def _send(self, s, h0, topic, pid, payload):
        # One packet built in the preallocated buffer (single writer); a payload
        # that does not fit goes as a second write, still one drain.
        buf = self._obuf
        mv = memoryview(buf)
        tl = len(topic) if topic is not None else -2
        pl = len(payload) if payload else 0
        buf[0] = h0
        i = _enc_rl(buf, 1, tl + 2 + (2 if pid else 0) + pl)
        if topic is not None:
            buf[i] = tl >> 8
            buf[i + 1] = tl & 0xFF
            mv[i + 2:i + 2 + tl] = topic
            i += 2 + tl
        if pid:
            buf[i] = pid >> 8
            buf[i + 1] = pid & 0xFF
            i += 2
        n = i + pl
        if n <= len(buf):
            if pl:
                mv[i:n] = payload
            s.write(mv[:n])
        else:
            s.write(mv[:i])
            s.write(payload)
        await asyncio.wait_for_ms(s.drain(), self._resp_ms)  # buf reusable after this
        self.bytes_out += n
        self._last_tx = ticks_ms()

    async def _writer(self, s):
        try:
            while True:
                self._wake.clear()
                while self._ctl:
                    c = self._ctl.pop(0)
                    if isinstance(c, int):  # PUBACK for an incoming QoS 1
                        await self._send(s, _PUBACK << 4, None, c, None)
                    elif c in self._subs:  # SUBACK is only checked for failures
                        await self._send(s, _SUBSCRIBE, None, self._next_pid(),
                                         _str16(c) + bytes((self._subs[c],)))
                while not self._ctl:
                    q = self._next_lane()
                    if q is None:
                        break
                    await self._send_item(s, q.pop(0))
                if self._ctl:
                    continue
                if self._stop and (not (self._q or self._uq or self._rq)
                                   or len(self._sent) >= self._max_infl):
                    s.write(b"\xe0\x00")
                    await asyncio.wait_for_ms(s.drain(), self._resp_ms)
                    self.bytes_out += 2
                    self._dead.set()
                    return
                wait = self._keepalive(s)
                if wait < 0:
                    s.write(b"\xc0\x00")  # PINGREQ
                    await asyncio.wait_for_ms(s.drain(), self._resp_ms)
                    self.bytes_out += 2
                    self._last_tx = self._ping_t = ticks_ms()
                    self._ping_out = True
                    continue
                try:
                    await asyncio.wait_for_ms(self._wake.wait(), wait)
                except asyncio.TimeoutError:
                    pass
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self._fail(e)

    def _ready(self, q):
        # the head of lane q can go now (a QoS 1 message needs room in flight)
        if not q:
            return False
        m = q[0]
        return (type(m) is not int or m < 0 or m not in self._unacked
                or len(self._sent) < self._max_infl)

    def _next_lane(self):
        if self._ready(self._uq):
            return self._uq
        self._turn ^= 1
        a, b = (self._rq, self._q) if self._turn else (self._q, self._rq)
        if self._ready(a):
            return a
        return b if self._ready(b) else None

    async def _send_item(self, s, m):
        if type(m) is not int:  # QoS 0
            await self._send(s, 0x30 | (1 if m[2] else 0), m[0], 0, m[1])
        elif m < 0:  # PUBACK of an incoming message, after its replies
            await self._send(s, _PUBACK << 4, None, -m, None)
        else:
            u = self._unacked.get(m)
            if u is None:  # acked meanwhile (re-sent list)
                return
            h0 = 0x32 | (8 if u[3] else 0) | (1 if u[2] else 0)
            u[3] = True
            self._sent.append(m)
            await self._send(s, h0, u[0], m, u[1])

    def _keepalive(self, s):
        # ms until the next keepalive action; <0 = send PINGREQ now.
        # Ping when nothing was sent OR nothing received for keepalive/2:
        # the second detects a half-open TCP link while we only publish.
        if not self._ka_ms:
            return 1000
        now = ticks_ms()
        if self._ping_out:
            left = self._ping_to - ticks_diff(now, self._ping_t)
            if left <= 0:
                raise OSError("ping timeout")
            return left
        half = self._ka_ms // 2
        idle = max(ticks_diff(now, self._last_tx), ticks_diff(now, self._last_rx))
        return -1 if idle >= half else half - idle
