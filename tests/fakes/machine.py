# Fake `machine` for the unix port: records what the drivers do and lets tests
# script what they read. Put first on MICROPYPATH (tests/conftest.py `mp_fakes`).
#
#   Pin:  .history [(value)...] of writes; input reads come from .source()
#         (a callable) when set, else the last written/initial value.
#   ADC:  reads come from .source() if set, else from .queue (cycled list of
#         u16 counts); read_uv() = (counts * UV_FS/1000 // 65535) * 1000.
#   PWM:  .history [(freq, duty_u16)] of every write.
#   UART: .tx bytearray of all bytes written; a simulated .device object
#         (method reply(frame_bytes) -> bytes or None) answers each write after
#         .delay_ms; .rx holds unread bytes.
#   WDT:  .timeout, .feeds.
# Every created object is appended to `created`; `reset()` clears the registry.
import time

created = []
pins = {}


def reset():
    created.clear()
    pins.clear()


def _ticks_ms():
    return time.ticks_ms()


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = id
        self.mode = mode
        self.pull = pull
        self._v = 0 if value is None else int(bool(value))
        self.history = []
        self.source = None
        self.handler = None
        self.trigger = 0
        self.hard = False
        if value is not None:
            self.history.append(self._v)
        pins[id] = self
        created.append(self)

    def init(self, mode=-1, pull=-1, value=None):
        self.mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            if self.source is not None:
                return int(bool(self.source()))
            return self._v
        self._v = int(bool(v))
        _rec(self.history, self._v)
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def irq(self, handler=None, trigger=3, hard=False):
        self.handler = handler
        self.trigger = trigger
        self.hard = hard

    def fire(self):
        # test helper: run the IRQ handler as the port would on an edge
        if self.handler:
            self.handler(self)


class Signal:
    def __init__(self, pin, invert=False):
        self.pin = pin
        self.invert = invert

    def value(self, v=None):
        if v is None:
            return self.pin.value() ^ self.invert
        self.pin.value(bool(v) ^ self.invert)


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    WIDTH_12BIT = 3
    UV_FS = 3300000  # what read_uv() reports at 65535 counts

    def __init__(self, pin, atten=None):
        self.pin = pin
        self.atten_v = atten
        self.queue = [32768]
        self._i = 0
        self.source = None
        self.reads = 0
        created.append(self)

    def atten(self, a):
        self.atten_v = a

    def width(self, w):
        self.width_v = w

    def feed(self, values):
        self.queue = list(values)
        self._i = 0

    def read_u16(self):
        self.reads += 1
        if self.source is not None:
            v = int(self.source())
        else:
            q = self.queue
            v = q[self._i % len(q)]
            self._i += 1
        return 0 if v < 0 else 65535 if v > 65535 else v

    def read_uv(self):
        # as the ESP32 port: the calibrated millivolts times 1000, so a small int on a
        # 32-bit chip (counts * UV_FS would be a long int there: 31-bit small ints)
        return self.read_u16() * (self.UV_FS // 1000) // 65535 * 1000


def _rec(lst, item):
    # record, but keep working under micropython.heap_lock() (tests prove the
    # drivers allocate nothing; the fake's own bookkeeping may not)
    try:
        lst.append(item)
    except MemoryError:
        pass


class PWM:
    def __init__(self, pin, freq=None, duty_u16=None, invert=False):
        self.pin = pin
        self._freq = freq or 0
        self._duty = duty_u16 or 0
        self.history = [(self._freq, self._duty)]
        self.deinited = False
        created.append(self)

    def freq(self, f=None):
        if f is None:
            return self._freq
        self._freq = f
        self.history.append((self._freq, self._duty))

    def duty_u16(self, d=None):
        if d is None:
            return self._duty
        if not 0 <= d <= 65535:
            raise ValueError("duty_u16")
        self._duty = d
        try:
            self.history.append((self._freq, self._duty))
        except MemoryError:  # under heap_lock: see _rec
            pass

    def deinit(self):
        self.deinited = True


class UART:
    def __init__(self, id, baudrate=9600, bits=8, parity=None, stop=1, tx=None, rx=None,
                 timeout=0, **kw):
        self.id = id
        self.baudrate = baudrate
        self.tx = bytearray()
        self.rx = bytearray()
        self.device = None
        self.delay_ms = 2
        self._due = 0
        self._pending = b""
        self.writes = 0
        created.append(self)

    def _deliver(self):
        if self._pending and time.ticks_diff(time.ticks_ms(), self._due) >= 0:
            self.rx.extend(self._pending)
            self._pending = b""

    def write(self, buf):
        b = bytes(buf)
        self.tx.extend(b)
        self.writes += 1
        if self.device is not None:
            r = self.device.reply(b)
            if r:
                self._pending = bytes(r)
                self._due = time.ticks_add(time.ticks_ms(), self.delay_ms)
        return len(b)

    def txdone(self):
        return True

    def any(self):
        self._deliver()
        return len(self.rx)

    def read(self, n=-1):
        self._deliver()
        if not self.rx:
            return None
        if n < 0 or n > len(self.rx):
            n = len(self.rx)
        out = bytes(self.rx[:n])
        self.rx = self.rx[n:]
        return out

    def readinto(self, buf, n=-1):
        self._deliver()
        if n < 0:
            n = len(buf)
        k = min(n, len(self.rx))
        if k == 0:
            return None
        buf[:k] = self.rx[:k]
        self.rx = self.rx[k:]
        return k


class WDT:
    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        created.append(self)

    def feed(self):
        self.feeds += 1


def freq():
    return 240000000


def unique_id():
    return b"\x01\x02\x03\x04\x05\x06"


def reset_cause():
    return 1


def idle():
    pass
