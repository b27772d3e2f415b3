# NTC thermistor through a divider to the ADC, read in deci-degC.
# Divider: fixed resistor R_fix from V_ref to the ADC node, NTC from the node
# to GND (ntc_low=True, default) or the other way round:
#     ntc_low:  R = R_fix * V // (V_ref - V)      else:  R = R_fix * (V_ref - V) // V
# Temperature from R by the Beta equation 1/T = 1/T25 + ln(R/R25)/B, turned into
# a table (every 5 degC, -40..150) once at construction (floats only there);
# read_dc() interpolates the table with integers. Open or shorted sensor, or
# outside the table -> TEMP_NONE with `error` set.
from micropython import const
import array
import math

from firmware.core.consts import TEMP_NONE
_T_LO = const(-40)
_T_STEP = const(5)
_N = const(39)  # -40 .. 150 degC


def ntc_table(r25, beta):
    """Resistances (ohm) at -40, -35, .. 150 degC."""
    t = array.array("i", bytes(4 * _N))
    for k in range(_N):
        tk = _T_LO + _T_STEP * k + 273.15
        t[k] = int(r25 * math.exp(beta * (1.0 / tk - 1.0 / 298.15)) + 0.5)
    return t


class Ntc:
    def __init__(self, adc, r_fix, r25=10000, beta=3950, vref_mv=3300, adc_fs_mv=3300,
                 ntc_low=True, n=4, rail_mv=15):
        self._adc = adc
        self._rfix = r_fix
        self._vref = vref_mv
        self._fs = adc_fs_mv
        self._low = ntc_low
        self._n = n
        self._rail = rail_mv
        self._tab = ntc_table(r25, beta)
        self.ohm = 0
        self.error = None

    def read_dc(self):
        s = 0
        for _ in range(self._n):
            s += self._adc.read_u16()
        mv = (s // self._n) * self._fs // 65535
        hi = mv >= self._vref - self._rail
        lo = mv <= self._rail
        if hi or lo:
            self.error = "temp_open" if (hi == self._low) else "temp_short"
            return TEMP_NONE
        if self._low:
            r = self._rfix * mv // (self._vref - mv)
        else:
            r = self._rfix * (self._vref - mv) // mv
        self.ohm = r
        tab = self._tab
        if r > tab[0] or r < tab[_N - 1]:
            self.error = "temp_range"
            return TEMP_NONE
        k = 0
        while tab[k + 1] > r:  # table falls with temperature
            k += 1
        r0 = tab[k]
        r1 = tab[k + 1]
        self.error = None
        return (_T_LO + _T_STEP * k) * 10 + (r0 - r) * _T_STEP * 10 // (r0 - r1)
