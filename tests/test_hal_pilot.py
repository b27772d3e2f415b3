"""CP generator and sampler, PP reader (hal/pilot.py) on the fake `machine`.

Expected values come from the physics of the front ends described in
boards/README.md (resistor networks solved here in floating point) and from the
conversion formula documented in hal/pilot.py, computed here independently."""
import pytest

# CP dividers: (R_up to 3V3, R_down to GND, R_cp from CP) per board (boards/README.md)
DIVIDERS = {"esp32_devkit": (33e3, 27e3, 150e3), "rp2040_pico_w": (47e3, 68e3, 200e3)}
CAL = {"esp32_devkit": (1351, 2432), "rp2040_pico_w": (1713, 3177)}
USE_UV = {"esp32_devkit": True, "rp2040_pico_w": False}

BUILD = """
import machine, boards
machine.reset()
b = boards.load(data)
hw = boards.build(b)
G['hw'] = hw
G['pwm'] = [o for o in machine.created if isinstance(o, machine.PWM)][0]
G['cpadc'] = [o for o in machine.created if isinstance(o, machine.ADC) and o.pin.id == b.CP_ADC_PIN][0]
G['ppadc'] = [o for o in machine.created if isinstance(o, machine.ADC) and o.pin.id == b.PP_ADC_PIN][0]
G['en'] = machine.pins.get(b.CP_ENABLE_PIN)
"""


def v_adc(board, v_cp):
    """Node voltage (V) of the 3-resistor divider: nodal analysis."""
    ru, rd, rc = DIVIDERS[board]
    return (3.3 / ru + v_cp / rc) / (1 / ru + 1 / rd + 1 / rc)


def counts(volts):
    return max(0, min(65535, int(round(volts / 3.3 * 65535))))


def expected_cp_mv(board, raw):
    """Formula of hal/pilot.py: ADC mV from counts, then the two-point line."""
    if USE_UV[board]:
        adc_mv = (raw * 3300000 // 65535) // 1000  # fake read_uv, then uV -> mV
    else:
        adc_mv = raw * 3300 // 65535
    at0, at12 = CAL[board]
    num = (adc_mv - at0) * 12000
    return num // (at12 - at0)  # Python floor division, as the driver


@pytest.fixture(params=["esp32_devkit", "rp2040_pico_w"])
def board(request, mp_fakes):
    mp_fakes.run(BUILD, request.param)
    return request.param


def duty_u16(pm):
    return int(pm * 65535 / 1000 + 0.5)


@pytest.mark.parametrize("amps,pm", [(6, 100), (16, 267), (32, 533)])
def test_pwm_1khz_and_duty(mp_fakes, board, amps, pm):
    # the firmware's mapping (iec61851.md section 8): permille = mA / 60 for 6..51 A
    assert round(amps * 1000 / 60) == pm
    res = mp_fakes.run("G['hw'].pilot.set(2, data)\nresult = [G['pwm'].freq(), G['pwm'].duty_u16()]", pm)
    inverted = board == "rp2040_pico_w"
    want = 65535 - duty_u16(pm) if inverted else duty_u16(pm)
    assert res == [1000, want]


def test_steady_levels_and_enable(mp_fakes, board):
    code = """
p = G['hw'].pilot; en = G['en']
out = []
for mode in (1, 3, 0, 2):
    p.set(mode, 500)
    out.append([G['pwm'].duty_u16(), en.value() if en else None])
result = out
"""
    res = mp_fakes.run(code)
    inverted = board == "rp2040_pico_w"
    hi, lo = (0, 65535) if inverted else (65535, 0)
    half = duty_u16(500)
    if inverted:
        half = 65535 - half
    if board == "rp2040_pico_w":  # enable pin: OFF = generator disabled (0 V)
        assert res == [[hi, 1], [lo, 1], [lo, 0], [half, 1]]
    else:  # no enable pin: OFF = steady -12 V (documented)
        assert res == [[hi, None], [lo, None], [lo, None], [half, None]]


def test_set_writes_only_on_change(mp_fakes, board):
    code = """
p = G['hw'].pilot; pwm = G['pwm']
p.set(2, 267)
n0 = len(pwm.history)
for _ in range(50):
    p.set(2, 267)
n1 = len(pwm.history)
p.set(2, 533)
result = [n1 - n0, len(pwm.history) - n1]
"""
    assert mp_fakes.run(code) == [0, 1]


def test_bad_mode_is_safe_not_raised(mp_fakes, board):
    res = mp_fakes.run("p = G['hw'].pilot\np.set(9, 100)\nresult = [p.error, p.mode]")
    assert res == ["pilot_mode", 0]


@pytest.mark.parametrize("v_high,v_low", [(12.0, -12.0), (9.0, -12.0), (6.0, -12.0),
                                          (3.0, -12.0), (0.0, 0.0), (9.0, -5.0)])
def test_sample_levels(mp_fakes, board, v_high, v_low):
    hi, lo = counts(v_adc(board, v_high)), counts(v_adc(board, v_low))
    # one PWM period of 26.7 % duty: 27 high, 73 low readings, with a few
    # transition readings in between that must not disturb the top/bottom means
    mid = (hi + lo) // 2
    wave = [hi] * 27 + [mid, (mid + lo) // 2] + [lo] * 71 + [mid]
    res = mp_fakes.run("a = G['cpadc']; a.feed(data)\np = G['hw'].pilot\n"
                       "ok = p.sample()\nresult = [ok, p.high_mv, p.low_mv, p.error]", wave)
    assert res[0] is True and res[3] is None
    assert res[1] == expected_cp_mv(board, hi)
    assert res[2] == expected_cp_mv(board, lo)
    # and the physics agrees to within ADC quantisation + calibration rounding
    assert abs(res[1] - v_high * 1000) < 60
    assert abs(res[2] - v_low * 1000) < 60


def test_sample_averages_top_three(mp_fakes, board):
    base = counts(v_adc(board, 6.0))
    lo = counts(v_adc(board, -12.0))
    wave = [base - 30, base, base + 30] + [lo - 9, lo, lo + 12] + [(base + lo) // 2] * 50
    res = mp_fakes.run("a = G['cpadc']; a.feed(data)\np = G['hw'].pilot\n"
                       "p.sample()\nresult = [p.high_mv, p.low_mv, p.n_read]", wave)
    # the fake ADC cycles through `wave`: rebuild what the driver read
    seen = sorted((wave * (res[2] // len(wave) + 1))[:res[2]])
    top, bot = sum(seen[-3:]) // 3, sum(seen[:3]) // 3
    assert res[:2] == [expected_cp_mv(board, top), expected_cp_mv(board, bot)]


@pytest.mark.parametrize("wave", [[65535] * 10 + [30000] * 10, [0] * 10 + [40000] * 10,
                                  [0] * 20, [65535] * 20])
def test_adc_rail_is_named_error(mp_fakes, board, wave):
    res = mp_fakes.run("a = G['cpadc']; a.feed(data)\np = G['hw'].pilot\n"
                       "result = [p.sample(), p.error]", wave)
    assert res == [False, "cp_adc_rail"]


def test_sample_covers_a_pwm_period_and_allocates_nothing(mp_fakes, board):
    code = """
import micropython, time
p = G['hw'].pilot
G['cpadc'].feed([30000, 31000])
p.set(2, 100)
ok = None
t0 = time.ticks_us()
micropython.heap_lock()
try:
    ok = p.sample()
    p.set(2, 267)
    p.set(1, 0)
finally:
    micropython.heap_unlock()
result = [ok, p.n_read, time.ticks_diff(time.ticks_us(), t0)]
"""
    ok, n, us = mp_fakes.run(code)
    assert ok is True and n >= 100 and us >= 1100  # >= the 1.1 ms window, by the clock


@pytest.mark.parametrize("ohm", [1500, 680, 220, 100])
def test_pp_ohm(mp_fakes, board, ohm):
    v = 3.3 * ohm / (ohm + 1000.0)  # 1 kOhm pull-up to 3V3 (boards/README.md)
    raw = counts(v)
    res = mp_fakes.run("a = G['ppadc']; a.feed([data])\npp = G['hw'].pp\n"
                       "result = [pp.read_ohm(), pp.error]", raw)
    if USE_UV[board]:
        mv = (raw * 3300000 // 65535) // 1000
    else:
        mv = raw * 3300 // 65535
    assert res == [1000 * mv // (3300 - mv), None]
    assert abs(res[0] - ohm) <= max(6, ohm * 0.02)


def test_pp_open_and_short(mp_fakes, board):
    code = """
from hal.pilot import PP_OPEN_OHM
pp = G['hw'].pp; a = G['ppadc']; out = []
for raw in (65535, 0):
    a.feed([raw]); out.append([pp.read_ohm(), pp.error])
result = [PP_OPEN_OHM, out]
"""
    open_ohm, out = mp_fakes.run(code)
    assert open_ohm >= 4000  # firmware treats >= 4 kOhm as open
    assert out == [[open_ohm, None], [0, "pp_short"]]


def test_sample_with_a_slow_adc_ends_by_time_not_by_read_count(mp_fakes, board):
    """An ADC slower than the buffer needs (300 us a read here): sample() still covers the
    window by the clock and then stops, well before it has filled its 100-reading buffer."""
    code = """
import time
p = G['hw'].pilot
def slow():
    t = time.ticks_us()
    while time.ticks_diff(time.ticks_us(), t) < 300:
        pass
    return 30000
G['cpadc'].source = slow
t0 = time.ticks_us()
ok = p.sample()
result = [ok, p.n_read, time.ticks_diff(time.ticks_us(), t0)]
"""
    ok, n, us = mp_fakes.run(code)
    # 4 windows of 1.1 ms at >= 300 us a read: at most 15 reads plus the one in flight
    assert ok is True and us >= 1100 and 1 <= n <= 16
