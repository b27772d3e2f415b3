# Per-phase current transformers (CT + burden, biased to mid-rail) read by ADC.
#
# RMS over whole mains cycles, integer math, in small chunks: each update()
# samples for at most chunk_us, every reading goes into one of _BINS phase bins
# of the mains period (by its ticks_us time). When every bin has readings and
# window_ms has passed, the window closes:
#     ms   = mean over bins of (sum of (x - bias)^2 / count)     x in 12-bit counts
#     rms  = isqrt(ms)                                            counts
#     ma   = rms * (adc_fs_mv * 10^6 // 4096 * 1000 // uv_per_a) // 1000 * cal_pm // 1000
#            (burden uV = counts * fs / 4096 * 1000; scale precomputed, small ints)
# so a window is a whole cycle's phases no matter when update() is called
# (call it at a period that is not a multiple of 10 ms, or from run()).
# bias = phase-weighted mean reading of the previous window (mid-rail tracking; starts at
# half scale); the window's own mean offset is subtracted (ms - dm^2).
#
# Hard over-current needs an answer within half a mains cycle, not a 200 ms window: every
# reading (update()'s chunks and the control tick's read_peak()) also feeds a per-phase
# peak |x - bias| over the running half cycle. read_peak() returns the RMS equivalent of
# the peak (peak / sqrt 2, in mA) of the running and the last complete half cycle, so a
# draw far above the offer shows within 10 ms (50 Hz) of reaching the CT.
from micropython import const
import array
import asyncio
import time

_BINS = const(20)
_PER_BIN = const(200)  # readings kept per bin and window: 200 * 2048^2 stays a small int
_SQRT2_PM = const(1414)  # peak -> RMS of a sine: / sqrt(2)


def isqrt(n):
    if n <= 0:
        return 0
    x = n
    y = (x + 1) // 2
    while y < x:
        x = y
        y = (x + n // x) // 2
    return x


class CurrentSensor:
    def __init__(self, adcs, uv_per_a, cal_pm=(1000, 1000, 1000), adc_fs_mv=3300,
                 mains_hz=50, window_ms=200, chunk_us=2000, step_us=200):
        self._adcs = list(adcs)  # 1..3 ADC objects (read_u16)
        self._n = len(self._adcs)
        self._uv_per_a = uv_per_a  # burden uV RMS per primary A RMS
        self._cal = list(cal_pm)
        self._fs = adc_fs_mv
        self._period = 1000000 // mains_hz
        self._bin_us = self._period // _BINS
        self._window_ms = window_ms
        self._chunk_us = chunk_us
        self._step_us = step_us
        n = 3 * _BINS
        self._sq = array.array("i", bytes(4 * n))
        self._cnt = array.array("i", bytes(4 * n))
        self._bs = array.array("i", bytes(4 * n))  # per-bin sum of readings
        self.bias = array.array("i", [2048, 2048, 2048])  # 12-bit counts
        self._pk = array.array("i", [0, 0, 0])  # peak |x - bias| in the running half cycle
        self._pk_last = array.array("i", [0, 0, 0])  # ... in the last complete one
        self._half_us = self._period // 2
        self._hc0 = time.ticks_us()
        # mA (x1000) per count of peak, computed once: the hot path stays in small ints
        self._pk_scale = adc_fs_mv * 1000000 // 4096 * 1000 // uv_per_a
        self.ma = [0, 0, 0]
        self.windows = 0  # windows completed
        self.error = None
        self._t0 = time.ticks_us()
        self._w0 = time.ticks_ms()

    def _clear(self):
        for i in range(3 * _BINS):
            self._sq[i] = 0
            self._cnt[i] = 0
            self._bs[i] = 0
        self._w0 = time.ticks_ms()

    def update(self):
        """Sample for <= chunk_us; close the window when complete. True if
        ma was refreshed by this call."""
        t_start = time.ticks_us()
        t_next = t_start
        while True:
            now = time.ticks_us()
            if time.ticks_diff(now, t_start) >= self._chunk_us:
                break
            if time.ticks_diff(now, t_next) < 0:
                continue
            t_next = time.ticks_add(t_next, self._step_us)
            b = (time.ticks_diff(now, self._t0) % self._period) // self._bin_us
            if b >= _BINS:
                b = _BINS - 1
            self._half(now)
            pk = self._pk
            for p in range(self._n):
                i = p * _BINS + b
                x = self._adcs[p].read_u16() >> 4
                d = x - self.bias[p]
                if d < 0:
                    d = -d
                if d > pk[p]:
                    pk[p] = d
                if self._cnt[i] < _PER_BIN:
                    d = x - self.bias[p]
                    self._sq[i] += d * d
                    self._cnt[i] += 1
                    self._bs[i] += x
        if time.ticks_diff(time.ticks_ms(), self._w0) < self._window_ms:
            return False
        for i in range(self._n * _BINS):
            if self._cnt[i] == 0:
                return False
        self._finish()
        return True

    def _half(self, now):
        """Close the running half cycle when it is over (allocates nothing)."""
        if time.ticks_diff(now, self._hc0) >= self._half_us:
            self._hc0 = now
            pk = self._pk
            last = self._pk_last
            for p in range(3):
                last[p] = pk[p]
                pk[p] = 0

    def read_peak(self):
        """For the control tick: one reading per phase into the half-cycle peaks; returns
        the highest phase's RMS equivalent of its peak (mA) over the running and the last
        complete half cycle. A few ADC reads, small-int math: no allocation."""
        self._half(time.ticks_us())
        pk = self._pk
        last = self._pk_last
        best = 0
        for p in range(self._n):
            d = (self._adcs[p].read_u16() >> 4) - self.bias[p]
            if d < 0:
                d = -d
            if d > pk[p]:
                pk[p] = d
            if last[p] > d:
                d = last[p]
            if pk[p] > d:
                d = pk[p]
            ma = d * self._pk_scale // 1000 * self._cal[p] // 1000 * 1000 // _SQRT2_PM
            if ma > best:
                best = ma
        return best

    def _finish(self):
        err = None
        for p in range(self._n):
            ms = 0
            mean = 0
            for b in range(_BINS):
                i = p * _BINS + b
                ms += self._sq[i] // self._cnt[i]
                mean += self._bs[i] // self._cnt[i]
            mean //= _BINS  # phase-weighted mean: the DC level
            dm = mean - self.bias[p]  # remove what the old bias left: variance
            rms = isqrt(ms // _BINS - dm * dm)
            if mean < 256 or mean > 3840:  # bias far off mid-rail: CT input broken
                err = "ct_bias"
            self.bias[p] = mean
            # counts -> mA with the precomputed scale: small ints on a 32-bit port too
            # (rms * fs * 1000 would be a long int there, allocated every window)
            self.ma[p] = rms * self._pk_scale // 1000 * self._cal[p] // 1000
        self.error = err
        self.windows += 1
        self._clear()

    async def run(self, period_ms=7):
        # 7 ms is not a divisor of the mains period: successive chunks walk
        # through every phase bin.
        while True:
            self.update()
            await asyncio.sleep_ms(period_ms)
