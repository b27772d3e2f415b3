# The house around the simulated wallbox, for load management on the sim bench: other loads
# and PV per phase, the house's SDM630 mains meter on the RS-485 bus and the grid operator's
# dimming relay (§14a). Imported on first use only: by hal/sim.py World.house_model() or by
# boards/sim.py tasks() when load management reads the mains meter or the relay.
import asyncio
import struct

KINDS = {"house_l1_ma": int, "house_l2_ma": int, "house_l3_ma": int, "pv_ma": int,
         "mains_addr": int, "mains_dead": bool, "mains_garbage": bool, "dim": bool}


class House:
    def __init__(self, w):
        self.w = w
        self.house_l1_ma = 0  # other loads per phase
        self.house_l2_ma = 0
        self.house_l3_ma = 0
        self.pv_ma = 0  # PV generation per phase (export when above the loads)
        self.mains_addr = 2
        self.mains_dead = False  # the mains meter does not answer
        self.mains_garbage = False  # it answers NaN
        self.dim = False
        self.error = None
        self.requests = 0
        self._buf = bytearray(120)
        self._mv = memoryview(self._buf)

    def set(self, name, value):
        kind = KINDS[name]
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            return "%s must be %s" % (name, kind.__name__)
        setattr(self, name, value)
        return None

    def mains_ma(self, p):
        """Signed current through the house connection on phase p (import positive)."""
        w = self.w
        house = (self.house_l1_ma, self.house_l2_ma, self.house_l3_ma)[p]
        ev = w.draw_ma if p < w.live_phases() else 0
        return house + ev - self.pv_ma

    async def read_input(self, addr, reg, count):
        """The SDM630 at mains_addr: input registers 0x0006.. I L1-3 (A, magnitude) and
        0x000C.. P L1-3 (W, signed), float32 high word first (hal.modbus.ModbusRtu API)."""
        w = self.w
        self.requests += 1
        await asyncio.sleep_ms(20)  # ~a 9600 baud round trip
        if self.mains_dead or addr != self.mains_addr:
            await asyncio.sleep_ms(280)
            self.error = "meter_timeout"
            return None
        lk = getattr(w, "mutex", None)  # the world is shared with the control thread
        if lk is not None:
            lk.acquire()
        try:
            w.update()
            m = [self.mains_ma(p) for p in range(3)]
            mv = w.mains_mv
        finally:
            if lk is not None:
                lk.release()
        b = self._buf
        for k in range(count // 2):
            r = reg + 2 * k
            v = 0.0
            if 0x06 <= r <= 0x0A:
                v = abs(m[(r - 0x06) // 2]) / 1000
            elif 0x0C <= r <= 0x10:
                v = m[(r - 0x0C) // 2] * mv / 1000000000
            if self.mains_garbage:
                v = float("nan")
            struct.pack_into(">f", b, 4 * k, v)
        self.error = None
        return self._mv[:2 * count]

    def as_dict(self):
        return {"mains_ma": [self.mains_ma(p) for p in range(3)],
                "house_ma": [self.house_l1_ma, self.house_l2_ma, self.house_l3_ma],
                "pv_ma": self.pv_ma, "dim": self.dim}


def attach(hw):
    """The sim board's RS-485 bus (hw.modbus) and grid relay input (hw.dim_input)."""
    hw.modbus = hw.dim_input = _Port(hw.world)


class _Port:
    def __init__(self, w):
        self.w = w
        self.error = None

    async def read_input(self, addr, reg, count):
        h = self.w.house_model()
        d = await h.read_input(addr, reg, count)
        self.error = h.error
        return d

    def value(self):
        h = self.w.house
        return 1 if h is not None and h.dim else 0
