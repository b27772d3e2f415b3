# Energy meters behind one interface: async poll() -> True/False, and
# v_mv[3], i_ma[3], p_w, e_wh, error.
#
# SdmMeter: Eastron SDM120 (1 phase) / SDM630 (3 phase) over Modbus RTU,
# function 0x04, IEEE-754 float32, high word first. Register map (input regs):
#   SDM630: 0x0000/02/04 V L1-3, 0x0006/08/0A A L1-3, 0x0034 total W, 0x0048 import kWh
#   SDM120: 0x0000 V, 0x0006 A, 0x000C W, 0x0048 import kWh
# InternalMeter: nominal/configured voltage x CT currents, integrated to Wh with
# the remainder kept (nothing lost between polls), in 31-bit small ints (a chip's).
from micropython import const
import struct
import time

from hal.modbus import ModbusRtu

SDM120 = "sdm120"
SDM630 = "sdm630"

_REG_V = const(0x0000)
_REG_P630 = const(0x0034)
_REG_E = const(0x0048)
_MJ_PER_WH = const(3600000)  # mW*s in one Wh: a small int on 32-bit ports (uW*ms is not)
_LIMIT = 1.0e7  # plausibility bound for any value (V, A, W); kWh checked apart


def _f32(mv, off):
    return struct.unpack_from(">f", mv, off)[0]


def _scaled(x, k):
    """float x * k -> int, or None if x is NaN/inf/implausible."""
    if x != x or x > _LIMIT or x < -_LIMIT:
        return None
    return int(x * k)


class SdmMeter:
    def __init__(self, uart, addr=1, model=SDM630, baud=9600, timeout_ms=300, retries=2,
                 de=None):
        self.bus = uart if isinstance(uart, ModbusRtu) else ModbusRtu(
            uart, baud, timeout_ms, retries, de)
        self.addr = addr
        self.model = model
        self.phases = 3 if model == SDM630 else 1
        self.v_mv = [0, 0, 0]
        self.i_ma = [0, 0, 0]
        self.p_w = 0
        self.e_wh = 0
        self.error = None if model in (SDM120, SDM630) else "meter_model"
        self.ok_polls = 0

    async def poll(self):
        if self.error == "meter_model":
            return False
        bus = self.bus
        if self.model == SDM630:
            d = await bus.read_input(self.addr, _REG_V, 12)  # V1-3, I1-3
            if d is None:
                return self._fail()
            v = [_scaled(_f32(d, 4 * k), 1000) for k in range(3)]
            i = [_scaled(_f32(d, 12 + 4 * k), 1000) for k in range(3)]
            d = await bus.read_input(self.addr, _REG_P630, 2)
            if d is None:
                return self._fail()
            p = _scaled(_f32(d, 0), 1)
        else:
            d = await bus.read_input(self.addr, _REG_V, 14)  # V .. W at 0x000C
            if d is None:
                return self._fail()
            v = [_scaled(_f32(d, 0), 1000), 0, 0]
            i = [_scaled(_f32(d, 12), 1000), 0, 0]
            p = _scaled(_f32(d, 24), 1)
        d = await bus.read_input(self.addr, _REG_E, 2)
        if d is None:
            return self._fail()
        e = _f32(d, 0)
        e = None if (e != e or e < 0 or e > 1.0e9) else int(e * 1000)
        if None in v or None in i or p is None or e is None:
            self.error = "meter_range"
            return False
        self.v_mv[:] = v
        self.i_ma[:] = i
        self.p_w = p
        self.e_wh = e
        self.error = None
        self.ok_polls += 1
        return True

    def _fail(self):
        self.error = self.bus.error
        return False


class InternalMeter:
    def __init__(self, current, voltage_mv=230000, phases=3):
        self._ct = current  # object with ma[3] (hal.current.CurrentSensor)
        self.v_mv = [voltage_mv if k < phases else 0 for k in range(3)]
        self.i_ma = [0, 0, 0]
        self.p_w = 0
        self.e_wh = 0
        self._mj = 0  # mW*s not yet a whole Wh
        self._uj = 0  # mW*ms not yet a whole mW*s
        self._t = None
        self.error = None

    def add(self, p_mw, dt_ms):
        """Integrate p_mw over dt_ms (exact in mW*ms, remainder kept). As W and mW, 1 s at a
        time: every product stays a small int on a 32-bit port (22 kW x 1 s in mW*ms would
        be 2.2e10, a long int allocated every poll)."""
        w = p_mw // 1000
        r = p_mw - w * 1000
        mj = self._mj
        uj = self._uj
        while dt_ms > 0:
            n = dt_ms if dt_ms < 1000 else 1000
            dt_ms -= n
            uj += r * n
            mj += w * n + uj // 1000
            uj %= 1000
            wh = mj // _MJ_PER_WH
            self.e_wh += wh
            mj -= wh * _MJ_PER_WH
        self._mj = mj
        self._uj = uj

    def power_mw(self):
        """Take the CT currents; the sum over phases of V x I in mW. V in 0.1 V steps: mV x
        mA (230 V x 32 A: 7.4e9) would be a long int on a 32-bit port."""
        acc = 0  # 0.1 V x mA
        for k in range(3):
            self.i_ma[k] = self._ct.ma[k]
            acc += self.v_mv[k] // 100 * self.i_ma[k]
        return acc // 10

    async def poll(self):
        now = time.ticks_ms()
        p_mw = self.power_mw()
        if self._t is not None:
            # energy of the interval at the power seen at its end
            self.add(p_mw, time.ticks_diff(now, self._t))
        self._t = now
        self.p_w = p_mw // 1000
        self.error = getattr(self._ct, "error", None)
        return True
