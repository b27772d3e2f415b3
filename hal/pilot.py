# Control pilot (CP) generator + sampler, and proximity pilot (PP) reader.
#
# CP: a 1 kHz machine.PWM drives a +-12 V op-amp stage (board option: the
# stage inverts). A divider brings CP into the ADC range:
#     V_adc = AT0 + (AT12 - AT0) * V_cp / 12 V          (iec61851.md section 7)
# with AT0 = ADC mV at CP 0 V and AT12 = ADC mV at CP +12 V, the board's two
# calibration points. sample() reads the ADC for at least one PWM period (by the
# clock, not by a read count: a fast host reads 2000 samples in under 1 ms); the
# high level is the mean of the top few readings, the low level the mean of the
# bottom few (esp32-evse scheme). Conversion, all integers, floor division:
#     adc_mv = mean * num // den      (read_u16: num=ADC_FS_MV, den=65535;
#                                      read_uv:  num=1, den=1000)
#     cp_mv  = (adc_mv - AT0) * 12000 // (AT12 - AT0)
# Per-tick methods (set, sample) allocate nothing.
from micropython import const
import array
import time

from firmware.core.consts import PILOT_OFF, PILOT_PLUS12, PILOT_PWM, PILOT_MINUS12, PP_OPEN_OHM


_PWM_HZ = const(1000)
_U16 = const(65535)
_BIG = const(0x3FFFFFFF)  # largest small int on 32-bit ports
_MAX_WINDOW_FACTOR = const(4)  # hard bound on one sample() call: 4 windows of time


def duty_u16(duty_pm, invert):
    """Permille (0..1000, clamped) -> PWM duty_u16, rounded; inverted for an
    inverting op-amp stage."""
    if duty_pm < 0:
        duty_pm = 0
    elif duty_pm > 1000:
        duty_pm = 1000
    d = (duty_pm * _U16 + 500) // 1000
    return _U16 - d if invert else d


class Pilot:
    def __init__(self, pwm, adc, at0_mv, at12_mv, invert=False, enable=None, use_uv=False,
                 adc_fs_mv=3300, rail_lo_mv=20, rail_hi_mv=3280, n_samples=100, top=3,
                 window_us=1100):
        self._pwm = pwm
        self._en = enable  # Pin: 1 = generator on; None = not fitted
        self._invert = invert
        self._at0 = at0_mv
        self._span = at12_mv - at0_mv
        self._read = adc.read_uv if use_uv else adc.read_u16
        self._num = 1 if use_uv else adc_fs_mv
        self._den = 1000 if use_uv else _U16
        self._rail_lo = rail_lo_mv
        self._rail_hi = rail_hi_mv
        self._window_us = window_us
        self.buf = array.array("i", bytes(4 * n_samples))  # last sample()'s raw readings
        self._top = array.array("i", bytes(4 * top))
        self._bot = array.array("i", bytes(4 * top))
        self.n_read = 0  # readings taken by the last sample()
        self.high_mv = 0
        self.low_mv = 0
        self.error = None
        self.off_is_minus12 = enable is None  # documented: no 0 V without an enable pin
        self.mode = -1
        self.duty_pm = -1
        self._u16 = -1
        pwm.freq(_PWM_HZ)
        self.set(PILOT_OFF, 0)

    def set(self, mode, duty_pm):
        """Drive the pilot; touches hardware only when mode/duty change."""
        if mode == self.mode and (mode != PILOT_PWM or duty_pm == self.duty_pm):
            return
        if mode == PILOT_PWM:
            d = duty_u16(duty_pm, self._invert)
        elif mode == PILOT_PLUS12:
            d = duty_u16(1000, self._invert)
        elif mode == PILOT_MINUS12 or mode == PILOT_OFF:
            d = duty_u16(0, self._invert)
        else:  # unknown mode: safe state, named error, never raise
            self.error = "pilot_mode"
            mode = PILOT_OFF
            d = duty_u16(0, self._invert)
        if self._en is not None:
            if mode == PILOT_OFF:
                self._en.value(0)  # disable first: no -12 V glitch is needed
        if d != self._u16:
            self._pwm.duty_u16(d)
            self._u16 = d
        if self._en is not None and mode != PILOT_OFF:
            self._en.value(1)
        self.mode = mode
        self.duty_pm = duty_pm

    def sample(self):
        """Read CP for >= one PWM period; fill high_mv/low_mv. False + error on
        ADC at a rail (open input, broken divider, shorted supply)."""
        read = self._read
        buf = self.buf
        nbuf = len(buf)
        top = self._top
        bot = self._bot
        k = len(top)
        for j in range(k):
            top[j] = -1
            bot[j] = _BIG
        kl = k - 1
        n = 0
        win = self._window_us
        t0 = time.ticks_us()
        while True:
            v = read()
            if n < nbuf:
                buf[n] = v
            n += 1
            if v > top[kl]:
                j = kl
                while j > 0 and top[j - 1] < v:
                    top[j] = top[j - 1]
                    j -= 1
                top[j] = v
            if v < bot[kl]:
                j = kl
                while j > 0 and bot[j - 1] > v:
                    bot[j] = bot[j - 1]
                    j -= 1
                bot[j] = v
            # Stop on time: at least one PWM period and nbuf readings, whatever the
            # ADC's speed; a slow ADC ends after _MAX_WINDOW_FACTOR windows anyway.
            el = time.ticks_diff(time.ticks_us(), t0)
            if el >= win and (n >= nbuf or el >= _MAX_WINDOW_FACTOR * win):
                break
        self.n_read = n
        hs = 0
        ls = 0
        for j in range(k):
            hs += top[j]
            ls += bot[j]
        hi_adc = (hs // k) * self._num // self._den
        lo_adc = (ls // k) * self._num // self._den
        if hi_adc >= self._rail_hi or lo_adc <= self._rail_lo:
            self.error = "cp_adc_rail"
            return False
        self.high_mv = (hi_adc - self._at0) * 12000 // self._span
        self.low_mv = (lo_adc - self._at0) * 12000 // self._span
        self.error = None
        return True


class Proximity:
    """PP: cable resistor Rc to PE, pull-up R_pu to V_pu, ADC on the PP line:
        V = V_pu * Rc / (Rc + R_pu)  ->  Rc = R_pu * V // (V_pu - V)
    V within open_margin of V_pu -> PP_OPEN_OHM (no cable; not an error);
    V at the bottom rail -> 0 ohm with error "pp_short"."""

    def __init__(self, adc, pullup_ohm, vpu_mv, use_uv=False, adc_fs_mv=3300, n=8,
                 open_margin_mv=100, rail_lo_mv=20):
        self._read = adc.read_uv if use_uv else adc.read_u16
        self._num = 1 if use_uv else adc_fs_mv
        self._den = 1000 if use_uv else _U16
        self._rpu = pullup_ohm
        self._vpu = vpu_mv
        self._n = n
        self._open = vpu_mv - open_margin_mv
        self._lo = rail_lo_mv
        self.mv = 0
        self.error = None

    def read_ohm(self):
        s = 0
        for _ in range(self._n):
            s += self._read()
        mv = (s // self._n) * self._num // self._den
        self.mv = mv
        if mv >= self._open:
            self.error = None
            return PP_OPEN_OHM
        if mv <= self._lo:
            self.error = "pp_short"
            return 0
        self.error = None
        ohm = self._rpu * mv // (self._vpu - mv)
        return PP_OPEN_OHM if ohm > PP_OPEN_OHM else ohm
